// Candlefish Collab's web app: sign in, pick a workspace, open or create a document,
// write together. Every panel uses the public REST API and the sync socket only.

import './style.css'
import { api, ApiError, type DocumentWithRole, type Workspace } from './api'
import { openDocument, type OpenDocument, type Person, type SyncState } from './editor'
import * as session from './session'
import { colorFor, h, initials, notice, show } from './ui'

const app = document.getElementById('app')!
let config: session.AppConfig | null = null
let open: OpenDocument | null = null

function navigate(path: string): void {
  if (location.pathname !== path) history.pushState(null, '', path)
  void route()
}

window.addEventListener('popstate', () => void route())
window.addEventListener('collab:signed-out', () => void route())
document.addEventListener('click', (event) => {
  const link = (event.target as Element).closest?.('a[data-nav]') as HTMLAnchorElement | null
  if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
    event.preventDefault()
    navigate(link.getAttribute('href')!)
  }
})

async function route(): Promise<void> {
  open?.destroy()
  open = null
  if (!config) {
    try {
      config = await session.config()
    } catch (error) {
      show(app, notice(`Cannot reach the server: ${(error as Error).message}`, 'error'))
      return
    }
  }
  const current = session.current()
  if (!current) return signInScreen(config)
  const match = location.pathname.match(/^\/d\/([0-9a-f-]{36})$/)
  if (match) return editorScreen(current, match[1])
  return homeScreen(current)
}

function header(current: session.Session, ...extra: Node[]): HTMLElement {
  return h(
    'header',
    { class: 'topbar' },
    h('a', { href: '/', 'data-nav': true, class: 'brand' }, 'Candlefish Collab'),
    ...extra,
    h(
      'div',
      { class: 'me' },
      h('span', { class: 'avatar', style: `background:${colorFor(current.userId)}`, 'aria-hidden': 'true' }, initials(current.name)),
      h('span', { class: 'me-name' }, current.name),
      h('button', {
        type: 'button',
        class: 'quiet',
        onclick: () => {
          session.signOut()
          navigate('/')
        },
      }, 'Sign out'),
    ),
  )
}

function signInScreen(cfg: session.AppConfig): void {
  const children: Node[] = [h('h1', {}, 'Sign in to Candlefish Collab')]
  if (cfg.dev_login) {
    const input = h('input', { id: 'dev-name', name: 'name', required: true, maxlength: 60, autocomplete: 'name' })
    const status = h('div', { 'aria-live': 'polite' })
    const form = h(
      'form',
      {
        class: 'card',
        onsubmit: async (event: Event) => {
          event.preventDefault()
          try {
            await session.devLogin(input.value.trim())
            void route()
          } catch (error) {
            show(status, notice((error as Error).message, 'error'))
          }
        },
      },
      h('p', {}, 'Development sign-in: any name, no password (this server runs with --dev-login).'),
      h('label', { for: 'dev-name' }, 'Your name'),
      input,
      h('button', { type: 'submit' }, 'Sign in'),
      status,
    )
    children.push(form)
  }
  if (cfg.oidc) {
    children.push(h('p', {}, `Sign-in through ${cfg.oidc.issuer} is configured.`))
  }
  if (!cfg.dev_login && !cfg.oidc) {
    children.push(
      notice(
        'Sign-in is not configured on this server: set COLLAB_OIDC_ISSUER and COLLAB_OIDC_CLIENT_ID, or start it with --dev-login for development.',
        'error',
      ),
    )
  }
  show(app, h('main', { class: 'signin' }, ...children))
  ;(app.querySelector('input') as HTMLInputElement | null)?.focus()
}

async function homeScreen(current: session.Session): Promise<void> {
  const main = h('main', { class: 'home' }, h('p', {}, 'Loading…'))
  show(app, header(current), main)
  let workspaces: Workspace[]
  try {
    workspaces = (await api.workspaces()).workspaces
  } catch (error) {
    show(main, notice((error as Error).message, 'error'))
    return
  }
  const chosen = workspaces.find((w) => w.id === localStorage.getItem('collab.workspace')) ?? workspaces[0]

  const newWorkspace = h('input', { id: 'new-workspace', name: 'workspace', required: true, maxlength: 100, placeholder: 'Acme' })
  const workspaceForm = h(
    'form',
    {
      class: 'inline',
      onsubmit: async (event: Event) => {
        event.preventDefault()
        try {
          const created = await api.createWorkspace(newWorkspace.value.trim())
          localStorage.setItem('collab.workspace', created.id)
          void route()
        } catch (error) {
          workspaceForm.append(notice((error as Error).message, 'error'))
        }
      },
    },
    h('label', { for: 'new-workspace' }, 'New workspace'),
    newWorkspace,
    h('button', { type: 'submit' }, 'Create workspace'),
  )

  if (!chosen) {
    show(main, h('section', { class: 'card' }, h('h1', {}, 'Welcome'), h('p', {}, 'Create a workspace for your team to start.'), workspaceForm))
    return
  }
  localStorage.setItem('collab.workspace', chosen.id)
  const switcher = h(
    'select',
    {
      id: 'workspace',
      onchange: (event: Event) => {
        localStorage.setItem('collab.workspace', (event.target as HTMLSelectElement).value)
        void route()
      },
    },
    ...workspaces.map((w) => h('option', { value: w.id, selected: w.id === chosen.id }, w.name)),
  )
  const list = h('ul', { class: 'documents', 'aria-label': 'Documents' })
  const newTitle = h('input', { id: 'new-document', name: 'title', required: true, maxlength: 200, placeholder: 'Meeting notes' })
  const documentForm = h(
    'form',
    {
      class: 'inline',
      onsubmit: async (event: Event) => {
        event.preventDefault()
        try {
          const created = await api.createDocument(chosen.id, newTitle.value.trim())
          navigate(`/d/${created.id}`)
        } catch (error) {
          documentForm.append(notice((error as Error).message, 'error'))
        }
      },
    },
    h('label', { for: 'new-document' }, 'New document'),
    newTitle,
    h('button', { type: 'submit' }, 'Create document'),
  )
  show(
    main,
    h('aside', { class: 'sidebar' }, h('label', { for: 'workspace' }, 'Workspace'), switcher, workspaceForm),
    h('section', { class: 'content' }, h('h1', {}, chosen.name), documentForm, list),
  )
  try {
    const { documents } = await api.documents(chosen.id)
    if (documents.length === 0) list.append(h('li', { class: 'empty' }, 'No documents yet.'))
    for (const d of documents) {
      list.append(
        h(
          'li',
          {},
          h('a', { href: `/d/${d.id}`, 'data-nav': true }, d.title),
          h('span', { class: 'meta' }, `${d.folder} · ${new Date(d.updated_at).toLocaleString()}`),
        ),
      )
    }
  } catch (error) {
    list.append(notice((error as Error).message, 'error'))
  }
}

const SYNC_LABEL: Record<SyncState, string> = {
  connecting: 'Connecting…',
  saving: 'Saving…',
  saved: 'Saved',
  offline: 'Offline — changes kept on this device',
}

async function editorScreen(current: session.Session, documentId: string): Promise<void> {
  const sync = h('span', { class: 'sync', role: 'status', 'data-state': 'connecting' }, SYNC_LABEL.connecting)
  const people = h('ul', { class: 'people', 'aria-label': 'People in this document' })
  const title = h('h1', { class: 'title' }, '…')
  const role = h('span', { class: 'role' })
  const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Formatting' })
  const surface = h('div', { class: 'surface' })
  const main = h(
    'main',
    { class: 'editor-screen' },
    h('div', { class: 'doc-head' }, h('a', { href: '/', 'data-nav': true, class: 'back' }, '← Documents'), title, role, people, sync),
    toolbar,
    surface,
  )
  show(app, header(current), main)

  let info: DocumentWithRole | null = null
  try {
    info = await api.document(documentId)
  } catch (error) {
    // Offline: the copy on this device still opens, editable; the server decides later.
    if (!(error instanceof ApiError) || error.status !== 0) {
      show(main, notice(error instanceof ApiError && error.status === 404 ? 'This document does not exist, or you cannot open it.' : (error as Error).message, 'error'))
      return
    }
  }
  const editable = info ? ['editor', 'admin', 'owner'].includes(info.role) : true
  title.textContent = info?.title ?? 'Document'
  document.title = `${title.textContent} — Candlefish Collab`
  role.textContent = editable ? '' : 'View only'

  const opened = await openDocument({
    documentId,
    token: current.token,
    user: { name: current.name, color: colorFor(current.userId) },
    element: surface,
    editable,
    onSyncState(state) {
      sync.dataset.state = state
      sync.textContent = SYNC_LABEL[state]
    },
    onPeople(list: Person[]) {
      show(
        people,
        ...list.map((p) =>
          h('li', { class: 'avatar', style: `background:${p.color}`, title: p.self ? `${p.name} (you)` : p.name }, h('span', { 'aria-hidden': 'true' }, initials(p.name)), h('span', { class: 'visually-hidden' }, p.self ? `${p.name} (you)` : p.name)),
        ),
      )
    },
  })
  open = opened
  if (editable) buildToolbar(toolbar, opened)
}

function buildToolbar(toolbar: HTMLElement, opened: OpenDocument): void {
  const editor = opened.editor
  const button = (label: string, run: () => void, active?: () => boolean) => {
    const b = h('button', { type: 'button', class: 'tool', 'aria-label': label, title: label, onclick: () => run() }, label)
    if (active) editor.on('transaction', () => b.setAttribute('aria-pressed', String(active())))
    return b
  }
  const chain = () => editor.chain().focus()
  toolbar.append(
    button('Bold', () => chain().toggleBold().run(), () => editor.isActive('bold')),
    button('Italic', () => chain().toggleItalic().run(), () => editor.isActive('italic')),
    button('Heading', () => chain().toggleHeading({ level: 2 }).run(), () => editor.isActive('heading')),
    button('Bullets', () => chain().toggleBulletList().run(), () => editor.isActive('bulletList')),
    button('Numbers', () => chain().toggleOrderedList().run(), () => editor.isActive('orderedList')),
    button('Tasks', () => chain().toggleTaskList().run(), () => editor.isActive('taskList')),
    button('Code', () => chain().toggleCodeBlock().run(), () => editor.isActive('codeBlock')),
    button('Table', () => chain().insertTable({ rows: 3, cols: 3, withHeaderRow: true }).run()),
    button('Link', () => {
      const url = prompt('Link address')
      if (url) chain().setLink({ href: url }).run()
      else chain().unsetLink().run()
    }, () => editor.isActive('link')),
    button('Undo', () => chain().undo().run()),
    button('Redo', () => chain().redo().run()),
  )
}

void route()
