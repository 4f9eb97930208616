// Comments beside the editor: threads anchored to passages of the text, shown in the
// sidebar and marked in the editor, updating live.
//
// A thread's anchor is a pair of Yjs relative positions in the document's fragment
// (`default`), made here from the selection (y-prosemirror's conversion, re-made with the
// start sticking to the passage's first character and the end to its last) and sent to
// the server, which resolves them in its own copy. Every reader places the passage in
// their own copy from the same positions, so the marks follow the text as anyone types.
// The document's live feed (/v1/documents/{id}/events/live) says when a thread changed;
// the panel then reads the threads again, as of that event's position.

import { Extension, type Editor } from '@tiptap/core'
import { Plugin, PluginKey, type EditorState } from '@tiptap/pm/state'
import { Decoration, DecorationSet } from '@tiptap/pm/view'
import { absolutePositionToRelativePosition, relativePositionToAbsolutePosition, ySyncPluginKey } from '@tiptap/y-tiptap'
import * as Y from 'yjs'
import { api, liveFeed, sawPosition, type Comment, type Member, type Thread } from './api'
import * as session from './session'
import { errorText, h, notice, show } from './ui'

// ---------------------------------------------------------------------------------------
// Marks in the editor

interface Mark {
  id: string
  start: Y.RelativePosition
  end: Y.RelativePosition
}

interface MarkState {
  marks: Mark[]
  active: string | null
  decorations: DecorationSet
}

const marksKey = new PluginKey<MarkState>('comment-marks')

interface SyncState {
  doc: Y.Doc
  type: Y.XmlFragment
  binding: { mapping: Map<Y.AbstractType<unknown>, unknown> } | null
}

function syncOf(state: EditorState): SyncState | null {
  return (ySyncPluginKey.getState(state) as SyncState | undefined) ?? null
}

/// Where a Yjs position is in the editor's document (null when its text is gone).
function resolve(sync: SyncState, position: Y.RelativePosition): number | null {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const mapping = sync.binding!.mapping as any
  const direct = relativePositionToAbsolutePosition(sync.doc, sync.type, position, mapping)
  if (direct !== null) return direct
  // y-prosemirror takes a position in the first text node's first character for a
  // misplaced one; the same place expressed from the text node itself is not.
  const absolute = Y.createAbsolutePositionFromRelativePosition(position, sync.doc)
  if (!absolute || !(absolute.type instanceof Y.XmlText)) return null
  const again = Y.createRelativePositionFromTypeIndex(absolute.type, absolute.index, -1)
  return relativePositionToAbsolutePosition(sync.doc, sync.type, again, mapping)
}

/// Where the marks are in `state`'s document, from their Yjs positions.
function place(state: EditorState, marks: Mark[], active: string | null): DecorationSet {
  const sync = syncOf(state)
  if (!sync?.binding) return DecorationSet.empty
  const decorations: Decoration[] = []
  for (const mark of marks) {
    const from = resolve(sync, mark.start)
    const to = resolve(sync, mark.end)
    if (from === null || to === null || from >= to || to > state.doc.content.size) continue
    decorations.push(
      Decoration.inline(from, to, {
        class: mark.id === active ? 'comment-mark active' : 'comment-mark',
        'data-thread': mark.id,
      }),
    )
  }
  return DecorationSet.create(state.doc, decorations)
}

/// The TipTap extension that marks the threads' passages; `onSelect` is told which
/// thread's mark was clicked.
export const CommentMarks = Extension.create<{ onSelect: (id: string) => void }>({
  name: 'commentMarks',
  addOptions() {
    return { onSelect: () => {} }
  },
  addProseMirrorPlugins() {
    const onSelect = this.options.onSelect
    return [
      new Plugin<MarkState>({
        key: marksKey,
        state: {
          init: () => ({ marks: [], active: null, decorations: DecorationSet.empty }),
          apply(tr, value, _old, state) {
            const set = tr.getMeta(marksKey) as { marks?: Mark[]; active?: string | null } | undefined
            if (set) {
              const marks = set.marks ?? value.marks
              const active = set.active === undefined ? value.active : set.active
              return { marks, active, decorations: place(state, marks, active) }
            }
            if (!tr.docChanged) return value
            // A change from the shared document (someone else's, or a restore): place the
            // marks anew; this person's own typing: move them with it (the Yjs copy is
            // updated after this transaction).
            const remote = (tr.getMeta(ySyncPluginKey) as { isChangeOrigin?: boolean } | undefined)?.isChangeOrigin
            return {
              ...value,
              decorations: remote ? place(state, value.marks, value.active) : value.decorations.map(tr.mapping, tr.doc),
            }
          },
        },
        props: {
          decorations: (state) => marksKey.getState(state)?.decorations,
          handleClick(_view, _pos, event) {
            const mark = (event.target as Element | null)?.closest?.('[data-thread]')
            if (mark) onSelect(mark.getAttribute('data-thread')!)
            return false
          },
        },
      }),
    ]
  },
})

function decodePosition(base64: string): Y.RelativePosition {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
  return Y.decodeRelativePosition(bytes)
}

function encodePosition(position: Y.RelativePosition): string {
  return btoa(String.fromCharCode(...Y.encodeRelativePosition(position)))
}

/// The selection as a thread's anchor: null when nothing is selected.
export function selectionAnchor(editor: Editor): { root: string; start: string; end: string; quote: string } | null {
  const { from, to, empty } = editor.state.selection
  const sync = syncOf(editor.state)
  if (empty || !sync?.binding) return null
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const mapping = sync.binding.mapping as any
  const at = (pos: number, assoc: number) => {
    const relative = absolutePositionToRelativePosition(pos, sync.type, mapping)
    const absolute = Y.createAbsolutePositionFromRelativePosition(relative, sync.doc)
    return absolute ? Y.createRelativePositionFromTypeIndex(absolute.type, absolute.index, assoc) : relative
  }
  return {
    root: 'default',
    start: encodePosition(at(from, 0)),
    end: encodePosition(at(to, -1)),
    quote: editor.state.doc.textBetween(from, to, '\n'),
  }
}

// ---------------------------------------------------------------------------------------
// The sidebar

const REACTIONS = ['👍', '🎉', '❤️', '👀']
const WRITERS = ['commenter', 'editor', 'owner']

/// Mentions (`<@user-id>`) as names; the rest as text.
function bodyNodes(body: string, names: Map<string, string>): Node[] {
  const nodes: Node[] = []
  let last = 0
  for (const match of body.matchAll(/<@([^>\s]+)>/g)) {
    if (match.index > last) nodes.push(document.createTextNode(body.slice(last, match.index)))
    nodes.push(h('span', { class: 'mention' }, `@${names.get(match[1]) ?? match[1]}`))
    last = match.index + match[0].length
  }
  if (last < body.length) nodes.push(document.createTextNode(body.slice(last)))
  return nodes
}

let composerCount = 0

/// A text box for a comment: `@` followed by letters offers the people who can be
/// mentioned (arrows, Enter or Tab to pick, Escape to close); a pick writes `<@user-id>`.
function composer(
  label: string,
  submit: string,
  people: () => Member[],
  send: (body: string) => Promise<void>,
  begun: () => void,
): HTMLFormElement {
  const id = `composer-${++composerCount}`
  const input = h('textarea', {
    id,
    rows: 2,
    required: true,
    maxlength: 10000,
    'aria-autocomplete': 'list',
    'aria-controls': `${id}-people`,
  })
  const list = h('ul', { id: `${id}-people`, role: 'listbox', class: 'mentions', 'aria-label': 'People to mention', hidden: true })
  const status = h('div', { 'aria-live': 'polite' })
  let offered: Member[] = []
  let chosen = 0
  const close = () => {
    list.hidden = true
    offered = []
    input.removeAttribute('aria-activedescendant')
  }
  const typed = () => input.value.slice(0, input.selectionStart ?? input.value.length).match(/(^|\s)@([\p{L}\p{N}_.-]*)$/u)
  const pick = (member: Member) => {
    const match = typed()
    if (!match) return close()
    const end = input.selectionStart ?? input.value.length
    const start = end - match[2].length - 1
    const mention = `<@${member.user_id}> `
    input.value = input.value.slice(0, start) + mention + input.value.slice(end)
    input.selectionStart = input.selectionEnd = start + mention.length
    close()
    input.focus()
  }
  const render = () => {
    list.replaceChildren(
      ...offered.map((member, i) =>
        h(
          'li',
          {
            id: `${id}-person-${i}`,
            role: 'option',
            'aria-selected': String(i === chosen),
            onmousedown: (event: Event) => {
              event.preventDefault()
              pick(member)
            },
          },
          member.display_name ?? member.user_id,
          h('span', { class: 'meta' }, ` ${member.user_id}`),
        ),
      ),
    )
    input.setAttribute('aria-activedescendant', `${id}-person-${chosen}`)
  }
  input.addEventListener('input', () => {
    const match = typed()
    if (!match) return close()
    const word = match[2].toLowerCase()
    offered = people()
      .filter((m) => (m.display_name ?? '').toLowerCase().includes(word) || m.user_id.toLowerCase().includes(word))
      .slice(0, 8)
    if (offered.length === 0) return close()
    chosen = 0
    list.hidden = false
    render()
  })
  input.addEventListener('keydown', (event) => {
    if (list.hidden) return
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault()
      chosen = (chosen + (event.key === 'ArrowDown' ? 1 : offered.length - 1)) % offered.length
      render()
    } else if (event.key === 'Enter' || event.key === 'Tab') {
      event.preventDefault()
      pick(offered[chosen])
    } else if (event.key === 'Escape') {
      event.preventDefault()
      close()
    }
  })
  input.addEventListener('blur', () => setTimeout(close, 100))
  input.addEventListener('focus', begun)
  const form = h(
    'form',
    { class: 'composer' },
    h('label', { for: id }, label),
    input,
    list,
    h('button', { type: 'submit' }, submit),
    status,
  )
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const body = input.value.trim()
    if (!body) return
    try {
      await send(body)
      input.value = ''
      status.replaceChildren()
    } catch (error) {
      show(status, notice(errorText(error), 'error'))
    }
  })
  return form
}

export interface CommentsOptions {
  documentId: string
  workspaceId: string | null
  role: string
  editor: Editor
  /** Tells the page how many open threads there are (for the tab's label). */
  onCount(count: number): void
}

/// A document's comments while it is open: the live feed, the marks, and the sidebar.
export class Comments {
  readonly panel: HTMLElement
  private threads: Thread[] = []
  private showResolved = false
  private people: Member[] = []
  private names = new Map<string, string>()
  private cards = new Map<string, { card: HTMLElement; content: HTMLElement }>()
  private list: HTMLElement
  private newThread: HTMLElement
  private status: HTMLElement
  private feed = new AbortController()
  private refreshing: Promise<void> | null = null
  private again = false
  private active: string | null = null
  // What the editor was last told to mark.
  private marked = ''

  constructor(private readonly options: CommentsOptions) {
    this.list = h('div', { class: 'threads' })
    this.newThread = h('div')
    this.status = h('div', { 'aria-live': 'polite' })
    const resolvedToggle = h('input', {
      id: 'show-resolved',
      type: 'checkbox',
      onchange: (event: Event) => {
        this.showResolved = (event.target as HTMLInputElement).checked
        void this.refresh()
      },
    })
    this.panel = h(
      'section',
      { class: 'panel comments', 'aria-labelledby': 'comments-title' },
      h('h2', { id: 'comments-title' }, 'Comments'),
      this.newThread,
      h('div', { class: 'inline' }, resolvedToggle, h('label', { for: 'show-resolved' }, 'Show resolved')),
      this.status,
      this.list,
    )
    if (WRITERS.includes(options.role)) {
      const start = h('button', { type: 'button', disabled: true, onclick: () => this.compose() }, 'Comment on the selection')
      const hint = h('p', { class: 'meta' }, 'Select text in the document to comment on it.')
      const update = () => {
        const empty = options.editor.state.selection.empty
        start.toggleAttribute('disabled', empty)
        hint.hidden = !empty
      }
      options.editor.on('selectionUpdate', update)
      this.newThread.append(start, hint)
    }
    this.loadPeople()
    this.follow()
    window.addEventListener('collab:session', this.renewed)
    void this.refresh()
  }

  /// The people who can be mentioned (the workspace's members), read again whenever a
  /// comment is begun: someone added a moment ago is offered.
  private loadPeople = (): void => {
    if (!this.options.workspaceId) return
    api
      .members(this.options.workspaceId)
      .then(({ members }) => {
        this.people = members
        for (const m of members) if (m.display_name) this.names.set(m.user_id, m.display_name)
      })
      .catch(() => {})
  }

  destroy(): void {
    this.feed.abort()
    window.removeEventListener('collab:session', this.renewed)
  }

  // A renewed sign-in: follow the feed with the new token.
  private renewed = () => {
    this.feed.abort()
    this.feed = new AbortController()
    this.follow()
  }

  /// The thread `id` in view: its card shown, its mark highlighted. (The focus stays where
  /// it is: a click on marked text places the caret there, to type.)
  select(id: string): void {
    this.active = id
    this.setMarks()
    for (const [thread, { card }] of this.cards) card.classList.toggle('active', thread === id)
    this.cards.get(id)?.card.scrollIntoView({ block: 'nearest' })
  }

  /// Starts a thread on the selection (nothing when nothing is selected).
  compose(): void {
    const anchor = selectionAnchor(this.options.editor)
    if (!anchor) return
    const form = composer('Comment', 'Comment', () => this.people, async (body) => {
      const { root, start, end } = anchor
      const opened = await api.openThread(this.options.documentId, { root, start, end }, body)
      this.active = opened.thread_id
      this.newThread.querySelector('.draft')?.remove()
      await this.refresh()
    }, this.loadPeople)
    const draft = h('div', { class: 'draft' }, h('blockquote', {}, anchor.quote), form)
    this.newThread.querySelector('.draft')?.remove()
    this.newThread.append(draft)
    form.querySelector('textarea')?.focus()
  }

  private follow(): void {
    liveFeed(
      `/v1/documents/${this.options.documentId}/events/live`,
      this.feed.signal,
      (message) => {
        if (message.event === 'revoked') return this.feed.abort()
        const position = Number(message.id)
        if (position > 0) sawPosition(position)
        if (message.data) void this.refresh()
      },
      () => void this.refresh(),
    )
  }

  /// Reads the threads again (one read at a time; a change during a read reads again).
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true
      return this.refreshing
    }
    this.refreshing = (async () => {
      do {
        this.again = false
        try {
          const { threads } = await api.threads(this.options.documentId, this.showResolved ? 'all' : 'open')
          this.threads = threads.sort((a, b) => (a.anchor.from ?? Infinity) - (b.anchor.from ?? Infinity))
          this.render()
          this.status.replaceChildren()
        } catch (error) {
          show(this.status, notice(errorText(error), 'error'))
        }
      } while (this.again)
      this.refreshing = null
    })()
    return this.refreshing
  }

  /// Tells the editor which passages to mark, only when that changed: a transaction
  /// dispatched while the person moves the caret could put back the selection the editor
  /// had not read yet.
  private setMarks(): void {
    const shown = this.threads.filter((t) => t.status === 'open' && !t.anchor.orphaned)
    const key = JSON.stringify([this.active, shown.map((t) => [t.thread_id, t.anchor.start, t.anchor.end])])
    const editor = this.options.editor
    if (key === this.marked || editor.isDestroyed) return
    this.marked = key
    const marks: Mark[] = shown.map((t) => ({
      id: t.thread_id,
      start: decodePosition(t.anchor.start),
      end: decodePosition(t.anchor.end),
    }))
    editor.view.dispatch(editor.state.tr.setMeta(marksKey, { marks, active: this.active }))
  }

  private render(): void {
    this.setMarks()
    this.options.onCount(this.threads.filter((t) => t.status === 'open').length)
    const seen = new Set<string>()
    const cards: HTMLElement[] = []
    for (const thread of this.threads) {
      seen.add(thread.thread_id)
      // A card keeps its reply box (and what is being typed in it) across reads.
      let entry = this.cards.get(thread.thread_id)
      if (!entry) {
        const content = h('div')
        const card = h('article', { class: 'thread', tabindex: '-1', 'aria-label': `Thread on “${thread.anchor.original_quote}”` }, content)
        card.addEventListener('click', (event) => {
          if ((event.target as Element).closest('button, textarea, form')) return
          this.select(thread.thread_id)
        })
        if (WRITERS.includes(this.options.role)) {
          card.append(
            composer('Reply', 'Reply', () => this.people, async (body) => {
              await api.reply(thread.thread_id, body)
              await this.refresh()
            }, this.loadPeople),
          )
        }
        entry = { card, content }
        this.cards.set(thread.thread_id, entry)
      }
      entry.card.classList.toggle('active', thread.thread_id === this.active)
      entry.card.classList.toggle('resolved', thread.status === 'resolved')
      const reply = entry.card.querySelector('form.composer') as HTMLElement | null
      if (reply) reply.hidden = thread.status === 'resolved'
      show(entry.content, ...this.threadContent(thread))
      cards.push(entry.card)
    }
    for (const id of [...this.cards.keys()]) if (!seen.has(id)) this.cards.delete(id)
    if (cards.length === 0) {
      show(this.list, h('p', { class: 'empty' }, this.showResolved ? 'No comments yet.' : 'No open comments.'))
    } else {
      show(this.list, ...cards)
    }
  }

  private threadContent(thread: Thread): Node[] {
    const me = session.current()?.userId
    const quote = thread.anchor.orphaned
      ? h('blockquote', { class: 'orphaned' }, thread.anchor.original_quote, h('span', { class: 'meta' }, ' (this text was deleted)'))
      : h('blockquote', {}, thread.anchor.quote ?? '')
    const act = (label: string, run: () => Promise<unknown>, attrs: Record<string, string> = {}) =>
      h('button', {
        type: 'button',
        class: 'quiet small',
        ...attrs,
        onclick: async () => {
          try {
            await run()
            await this.refresh()
          } catch (error) {
            show(this.status, notice(errorText(error), 'error'))
          }
        },
      }, label)
    const writer = WRITERS.includes(this.options.role)
    const comments = thread.comments.map((c: Comment) => {
      const name = c.author_name ?? this.names.get(c.author) ?? c.author
      const reactions = writer ? REACTIONS : []
      const shown = new Set([...c.reactions.map((r) => r.emoji), ...reactions])
      return h(
        'li',
        { class: 'comment' },
        h('div', { class: 'meta' }, h('strong', {}, name), ` · ${new Date(c.created_at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}`, c.edited_at ? ' · edited' : ''),
        c.deleted ? h('p', { class: 'meta' }, 'Deleted.') : h('p', { class: 'body' }, ...bodyNodes(c.body ?? '', this.names)),
        !c.deleted &&
          h(
            'div',
            { class: 'reactions' },
            ...[...shown].map((emoji) => {
              const reaction = c.reactions.find((r) => r.emoji === emoji)
              const mine = !!me && !!reaction?.users.includes(me)
              const count = reaction?.count ?? 0
              const label = `${emoji} ${count > 0 ? count : ''}`.trim()
              return writer
                ? act(label, () => api.react(c.comment_id, emoji, !mine), {
                    'aria-pressed': String(mine),
                    'aria-label': `React ${emoji} (${count})`,
                  })
                : h('span', { class: 'reaction' }, label)
            }),
            writer && c.author === me && act('Delete', () => api.deleteComment(c.comment_id), { 'aria-label': 'Delete this comment' }),
          ),
      )
    })
    const parts: Node[] = [quote, h('ol', { class: 'comments-list' }, ...comments)]
    if (writer) {
      const about = `the thread on “${thread.anchor.original_quote}”`
      parts.push(
        thread.status === 'open'
          ? act('Resolve', () => api.resolveThread(thread.thread_id), { 'aria-label': `Resolve ${about}` })
          : act('Reopen', () => api.reopenThread(thread.thread_id), { 'aria-label': `Reopen ${about}` }),
      )
    }
    return parts
  }
}
