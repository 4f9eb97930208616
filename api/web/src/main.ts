// Candlefish Collab's web app: sign in, pick a workspace, open or create a document,
// write together. Every panel uses the public REST API and the sync socket only.

import './style.css'
import { api, ApiError, keepLink, linkFor, setOpenDocument, type Document, type DocumentWithRole, type Workspace } from './api'
import { Comments } from './comments'
import { uploadInto } from './files'
import { exportPanel, historyPanel, sharePanel, type PanelContext } from './panels'
import { bell, stopFollowing } from './notifications'
import { openDocument, type OpenDocument, type Person, type SyncState } from './editor'
import * as session from './session'
import { colorFor, errorText, h, initials, inlineForm, notice, show } from './ui'

const app = document.getElementById('app')!
let config: session.AppConfig | null = null
// What the screen shown now must close when it goes (the open document, its comments).
let open: { destroy(): void } | null = null

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
  setOpenDocument(null)
  if (!config) {
    try {
      config = await session.config()
    } catch (error) {
      show(app, notice(`Cannot reach the server: ${errorText(error)}`, 'error'))
      return
    }
  }
  session.oidc(config)
  if (location.pathname === '/auth/callback') {
    // Back from the identity provider.
    try {
      history.replaceState(null, '', await session.completeSignIn(config))
    } catch (error) {
      history.replaceState(null, '', '/')
      show(app, h('main', { class: 'signin' }, h('h1', {}, 'Sign-in did not complete'), notice(errorText(error), 'error'), h('a', { href: '/', 'data-nav': true }, 'Try again')))
      return
    }
  }
  const current = session.current() ?? (await session.renew(config))
  if (!current) return signInScreen(config)
  const match = location.pathname.match(/^\/d\/([0-9a-f-]{36})$/)
  if (match) {
    // A share link's address: keep its token for this document, then drop it from the
    // address bar (it is a secret).
    const link = new URLSearchParams(location.search).get('link')
    if (link) {
      keepLink(match[1], link)
      history.replaceState(null, '', location.pathname)
    }
    return editorScreen(current, match[1])
  }
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
      bell(current, navigate),
      h('span', { class: 'avatar', style: `background:${colorFor(current.userId)}`, 'aria-hidden': 'true' }, initials(current.name)),
      h('span', { class: 'me-name' }, current.name),
      h('button', {
        type: 'button',
        class: 'quiet',
        onclick: async () => {
          stopFollowing()
          await session.signOut()
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
            show(status, notice(errorText(error), 'error'))
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
  const client = session.oidc(cfg)
  if (client && cfg.oidc) {
    const status = h('div', { 'aria-live': 'polite' })
    const provider = new URL(cfg.oidc.issuer).host
    children.push(
      h(
        'div',
        { class: 'card' },
        h('p', {}, `Your organisation signs you in at ${provider}.`),
        h('button', {
          type: 'button',
          onclick: async () => {
            try {
              await client.signinRedirect({ state: location.pathname + location.search })
            } catch (error) {
              show(status, notice(`Cannot reach ${provider}: ${errorText(error)}`, 'error'))
            }
          },
        }, `Sign in with ${provider}`),
        status,
      ),
    )
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
    show(main, notice(errorText(error), 'error'))
    return
  }
  const chosen = workspaces.find((w) => w.id === localStorage.getItem('collab.workspace')) ?? workspaces[0]

  const newWorkspace = h('input', { id: 'new-workspace', name: 'workspace', required: true, maxlength: 100, placeholder: 'Acme' })
  const workspaceForm = inlineForm(
    [h('label', { for: 'new-workspace' }, 'New workspace'), newWorkspace],
    'Create workspace',
    async () => {
      const created = await api.createWorkspace(newWorkspace.value.trim())
      localStorage.setItem('collab.workspace', created.id)
      void route()
    },
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
  const list = h('div', { class: 'documents-area' })
  const newTitle = h('input', { id: 'new-document', name: 'title', required: true, maxlength: 200, placeholder: 'Meeting notes' })
  const newFolder = h('input', { id: 'new-folder', name: 'folder', maxlength: 200, placeholder: '/' })
  const documentForm = inlineForm(
    [h('label', { for: 'new-document' }, 'New document'), newTitle, h('label', { for: 'new-folder' }, 'in folder'), newFolder],
    'Create document',
    async () => {
      const folder = newFolder.value.trim()
      const created = await api.createDocument(chosen.id, newTitle.value.trim(), folder || undefined)
      navigate(`/d/${created.id}`)
    },
  )
  const query = h('input', { id: 'search', type: 'search', placeholder: 'Search this workspace', autocomplete: 'off' })
  const results = h('div', { 'aria-live': 'polite' })
  let searchTimer: ReturnType<typeof setTimeout> | undefined
  query.addEventListener('input', () => {
    clearTimeout(searchTimer)
    searchTimer = setTimeout(async () => {
      const q = query.value.trim()
      if (!q) return show(results)
      try {
        const found = await api.search(q, chosen.id)
        show(
          results,
          h(
            'ul',
            { class: 'documents', 'aria-label': 'Search results' },
            ...(found.results.length
              ? found.results.map((hit) =>
                  h(
                    'li',
                    {},
                    h('a', { href: `/d/${hit.document_id}`, 'data-nav': true }, hit.title),
                    h('span', { class: 'meta' }, ...hit.snippet.map((p) => (p.highlight ? h('mark', {}, p.text) : p.text))),
                  ),
                )
              : [h('li', { class: 'empty' }, 'Nothing found.')]),
          ),
        )
      } catch (error) {
        show(results, notice(errorText(error), 'error'))
      }
    }, 200)
  })
  const archivedToggle = h('input', { id: 'show-archived', type: 'checkbox', onchange: () => void fillList() })
  show(
    main,
    h('aside', { class: 'sidebar' }, h('label', { for: 'workspace' }, 'Workspace'), switcher, workspaceForm),
    h(
      'section',
      { class: 'content' },
      h('h1', {}, chosen.name),
      h('div', { class: 'inline' }, h('label', { for: 'search' }, 'Search'), query),
      results,
      documentForm,
      h('div', { class: 'inline' }, archivedToggle, h('label', { for: 'show-archived' }, 'Show archived documents')),
      list,
    ),
  )
  const fillList = async () => {
    try {
      const { documents } = archivedToggle.checked ? await api.archivedDocuments(chosen.id) : await api.documents(chosen.id)
      if (documents.length === 0) return show(list, h('p', { class: 'empty' }, archivedToggle.checked ? 'No archived documents.' : 'No documents yet.'))
      // By folder, the root first.
      const folders = new Map<string, typeof documents>()
      for (const d of [...documents].sort((x, y) => x.folder.localeCompare(y.folder))) {
        folders.set(d.folder, [...(folders.get(d.folder) ?? []), d])
      }
      const sections: Node[] = []
      for (const [folder, docs] of folders) {
        sections.push(
          h('h2', { class: 'folder' }, folder === '/' ? 'Documents' : folder),
          h('ul', { class: 'documents', 'aria-label': folder === '/' ? 'Documents' : `Folder ${folder}` }, ...docs.map((d) => documentRow(d, archivedToggle.checked, fillList))),
        )
      }
      show(list, ...sections)
    } catch (error) {
      show(list, notice(errorText(error), 'error'))
    }
  }
  await fillList()
}

function documentRow(d: Document, archived: boolean, refresh: () => Promise<void>): HTMLElement {
  const status = h('span', { 'aria-live': 'polite' })
  const act = (label: string, run: () => Promise<unknown>) =>
    h('button', {
      type: 'button',
      class: 'quiet small',
      'aria-label': `${label} ${d.title}`,
      onclick: async () => {
        try {
          await run()
          await refresh()
        } catch (error) {
          show(status, notice(errorText(error), 'error'))
        }
      },
    }, label)
  const actions = archived
    ? [act('Restore', () => api.unarchive(d.id))]
    : [
        act('Rename', async () => {
          const title = prompt('New title', d.title)?.trim()
          if (title && title !== d.title) await api.updateDocument(d.id, { title })
        }),
        act('Move', async () => {
          const folder = prompt('Folder (/ or /a/b)', d.folder)?.trim()
          if (folder && folder !== d.folder) await api.updateDocument(d.id, { folder })
        }),
        act('Archive', () => api.archive(d.id)),
        act('Delete', async () => {
          if (confirm(`Delete “${d.title}”? Its history stays in the log; the document is gone for everyone.`)) await api.deleteDocument(d.id)
        }),
      ]
  return h(
    'li',
    {},
    h('div', {}, h('a', { href: `/d/${d.id}`, 'data-nav': true }, d.title), h('div', { class: 'meta' }, `Updated ${new Date(d.updated_at).toLocaleString()}`)),
    h('div', { class: 'row-actions' }, ...actions, status),
  )
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
  const uploads = h('ul', { class: 'uploads', 'aria-label': 'Uploads', 'aria-live': 'polite' })
  const side = h('aside', { class: 'side', 'aria-label': 'Document panels' })
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Panels' })
  const main = h(
    'main',
    { class: 'editor-screen' },
    h('div', { class: 'doc-head' }, h('a', { href: '/', 'data-nav': true, class: 'back' }, '← Documents'), title, role, people, sync, tabs),
    h('div', { class: 'editor-body' }, h('div', { class: 'editor-column' }, toolbar, uploads, surface), side),
  )
  show(app, header(current), main)

  let info: DocumentWithRole | null = null
  try {
    info = await api.document(documentId)
  } catch (error) {
    // Offline: the copy on this device still opens, editable; the server decides later.
    if (!(error instanceof ApiError) || error.status !== 0) {
      show(main, notice(error instanceof ApiError && error.status === 404 ? 'This document does not exist, or you cannot open it.' : errorText(error), 'error'))
      return
    }
  }
  const editable = info ? ['editor', 'admin', 'owner'].includes(info.role) : true
  title.textContent = info?.title ?? 'Document'
  document.title = `${title.textContent} — Candlefish Collab`
  role.textContent = editable ? '' : 'View only'

  setOpenDocument(documentId)
  // Files go into documents their editors can change, in the document's workspace. (The
  // editor's callbacks below run on people's clicks and drops, once everything exists.)
  const addFiles =
    editable && info
      ? (files: File[], at?: number) => {
          const target = { workspaceId: info.workspace_id, documentId, editor: opened.editor, list: uploads }
          for (const file of files) void uploadInto(target, file, at)
        }
      : undefined
  const opened = await openDocument({
    documentId,
    token: current.token,
    link: linkFor(documentId),
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
    onThreadClick(id) {
      void display('Comments', false).then(() => comments.select(id))
    },
    onFiles: addFiles,
  })
  if (editable) {
    buildToolbar(
      toolbar,
      opened,
      async () => {
        await display('Comments', false)
        comments.compose()
      },
      addFiles,
    )
  }

  const ctx: PanelContext = { documentId, workspaceId: info?.workspace_id ?? null, role: info?.role ?? 'viewer' }
  const count = h('span', { class: 'count' })
  const comments = new Comments({
    documentId,
    workspaceId: ctx.workspaceId,
    role: ctx.role,
    editor: opened.editor,
    onCount: (n) => {
      count.textContent = n > 0 ? String(n) : ''
    },
  })
  open = {
    destroy() {
      comments.destroy()
      opened.destroy()
    },
  }
  const panels: [string, () => Promise<HTMLElement> | HTMLElement, Node[]][] = [
    ['Comments', () => comments.panel, [count]],
    ['Share', () => sharePanel(ctx), []],
    ['History', () => historyPanel(ctx), []],
    ['Export', () => exportPanel(ctx, title.textContent ?? 'document'), []],
  ]
  let showing: string | null = null
  const buttons = new Map<string, HTMLButtonElement>()
  // Shows panel `name`, or (`toggle`) hides it when it is showing.
  async function display(name: string, toggle: boolean): Promise<void> {
    const [, make] = panels.find(([n]) => n === name)!
    if (showing === name && !toggle) return
    for (const other of buttons.values()) other.setAttribute('aria-expanded', 'false')
    if (showing === name) {
      showing = null
      side.replaceChildren()
      return
    }
    showing = name
    buttons.get(name)!.setAttribute('aria-expanded', 'true')
    show(side, h('p', {}, 'Loading…'))
    const panel = await make()
    if (showing === name) show(side, panel)
  }
  for (const [name, , extra] of panels) {
    const button = h('button', { type: 'button', class: 'quiet', 'aria-expanded': 'false', 'aria-controls': 'side' }, name, ...extra)
    button.addEventListener('click', () => void display(name, true))
    buttons.set(name, button)
    tabs.append(button)
  }
  side.id = 'side'
}

function buildToolbar(
  toolbar: HTMLElement,
  opened: OpenDocument,
  comment: () => Promise<void>,
  addFiles: ((files: File[]) => void) | undefined,
): void {
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
    button('Comment', () => void comment()),
    button('Link', () => {
      const url = prompt('Link address')
      if (url) chain().setLink({ href: url }).run()
      else chain().unsetLink().run()
    }, () => editor.isActive('link')),
    button('Undo', () => chain().undo().run()),
    button('Redo', () => chain().redo().run()),
  )
  if (addFiles) {
    // Files can also be dropped or pasted onto the text.
    const picker = h('input', { type: 'file', multiple: true, hidden: true, 'aria-label': 'Files to attach' })
    picker.addEventListener('change', () => {
      addFiles([...(picker.files ?? [])])
      picker.value = ''
    })
    toolbar.append(button('Attach', () => picker.click()), picker)
  }
}

void route()
