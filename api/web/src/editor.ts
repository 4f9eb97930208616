// The editor: TipTap (ProseMirror) bound to the document's Yjs state through
// @tiptap/extension-collaboration, synced by a stock y-websocket provider on
// /v1/sync/{id} (the protocol every Yjs client speaks) and kept on this device by
// y-indexeddb, so a document opened before stays readable and editable offline and its
// offline edits merge when the connection comes back.

import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import { TaskItem, TaskList } from '@tiptap/extension-list'
import { TableKit } from '@tiptap/extension-table'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import { CommentMarks } from './comments'
import { FileImage, openFileLink } from './files'
import * as session from './session'

export type SyncState = 'connecting' | 'saving' | 'saved' | 'offline'

export interface Person {
  clientId: number
  name: string
  color: string
  self: boolean
}

export interface OpenDocument {
  editor: Editor
  doc: Y.Doc
  provider: WebsocketProvider
  /** Current sync state; `onSyncState` tells of changes. */
  syncState(): SyncState
  setEditable(editable: boolean): void
  destroy(): void
}

export interface OpenOptions {
  documentId: string
  token: string
  /** A share link's token, when the document was opened through one. */
  link: string | null
  user: { name: string; color: string }
  element: HTMLElement
  editable: boolean
  onSyncState(state: SyncState): void
  onPeople(people: Person[]): void
  /** A comment thread's mark in the text was clicked. */
  onThreadClick(id: string): void
  /** Files dropped (at a position of the text) or pasted; absent where files cannot be added. */
  onFiles?: (files: File[], at?: number) => void
}

// How long a change may sit in the socket before the state says "saving".
const SETTLE_MS = 300

export async function openDocument(options: OpenOptions): Promise<OpenDocument> {
  const doc = new Y.Doc()
  // Local copy first: what this device has shows at once, even offline.
  const local = new IndexeddbPersistence(`collab:${options.documentId}`, doc)
  await Promise.race([local.whenSynced, new Promise((resolve) => setTimeout(resolve, 1000))])

  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  const provider = new WebsocketProvider(`${scheme}://${location.host}/v1/sync`, options.documentId, doc, {
    params: options.link ? { token: options.token, link: options.link } : { token: options.token },
    // A refused socket (revoked access, expired token) must not hammer the server.
    maxBackoffTime: 10_000,
  })

  let state: SyncState = 'connecting'
  let pending = false
  // Updates not yet known to be on this device's store.
  let unstored = 0
  let probing = false
  let settleTimer: ReturnType<typeof setTimeout> | undefined
  const set = (next: SyncState) => {
    if (next !== state) {
      state = next
      options.onSyncState(state)
    }
  }
  const recompute = () => {
    if (!provider.wsconnected) {
      // "Kept on this device" only once the device's store has it.
      if (unstored > 0) set('saving')
      else set(navigator.onLine && provider.wsconnecting && !pending ? 'connecting' : 'offline')
      return
    }
    if (!provider.synced) {
      set(pending ? 'saving' : 'connecting')
      return
    }
    const buffered = provider.ws?.bufferedAmount ?? 0
    if (pending || buffered > 0) {
      set('saving')
      clearTimeout(settleTimer)
      settleTimer = setTimeout(() => {
        if ((provider.ws?.bufferedAmount ?? 0) === 0 && provider.wsconnected) pending = false
        recompute()
      }, SETTLE_MS)
    } else {
      set('saved')
    }
  }
  // y-indexeddb writes each update in a transaction of its own, started in its own update
  // handler (registered before this one). A later transaction on the same store completes
  // after those, so when a probe completes, every update counted before it began is on the
  // device. One probe at a time: a burst of keystrokes costs one or two, not one each.
  const probe = () => {
    const db = local.db
    if (!db) return
    probing = true
    const covered = unstored
    const done = () => {
      unstored -= covered
      probing = false
      if (unstored > 0) probe()
      recompute()
    }
    const tx = db.transaction(['updates'], 'readonly')
    tx.oncomplete = done
    tx.onerror = done
    tx.onabort = done
  }
  const whenStored = () => {
    if (!local.db) return
    unstored++
    if (!probing) probe()
  }
  doc.on('update', (_update: Uint8Array, origin: unknown) => {
    // Changes from the server or from this device's store are not ours to send.
    if (origin === local) return
    whenStored()
    if (origin === provider) return
    pending = true
    recompute()
  })
  // The browser knows first when the network goes: stop trying, keep editing locally, and
  // merge when it is back (the sync protocol exchanges what each side lacks).
  const wentOffline = () => {
    provider.disconnect()
    recompute()
  }
  const cameOnline = () => provider.connect()
  // A renewed sign-in: the next connection carries the new token.
  const renewed = () => {
    const current = session.current()
    if (current) provider.params.token = current.token
  }
  window.addEventListener('offline', wentOffline)
  window.addEventListener('online', cameOnline)
  window.addEventListener('collab:session', renewed)
  if (!navigator.onLine) provider.disconnect()
  provider.on('status', recompute)
  provider.on('sync', recompute)
  provider.on('connection-close', recompute)

  const editor = new Editor({
    element: options.element,
    editable: options.editable,
    extensions: [
      StarterKit.configure({ undoRedo: false, link: { openOnClick: false } }),
      Collaboration.configure({ document: doc }),
      CollaborationCaret.configure({ provider, user: options.user }),
      TaskList,
      TaskItem.configure({ nested: true }),
      TableKit.configure({ table: { resizable: false } }),
      FileImage,
      CommentMarks.configure({ onSelect: (id) => options.onThreadClick(id) }),
    ],
    editorProps: {
      handleDrop(view, event, _slice, moved) {
        const files = [...(event.dataTransfer?.files ?? [])]
        if (moved || files.length === 0 || !options.onFiles) return false
        event.preventDefault()
        options.onFiles(files, view.posAtCoords({ left: event.clientX, top: event.clientY })?.pos)
        return true
      },
      handlePaste(_view, event) {
        const files = [...(event.clipboardData?.files ?? [])]
        if (files.length === 0 || !options.onFiles) return false
        options.onFiles(files)
        return true
      },
      handleClick(_view, _pos, event) {
        const link = (event.target as Element | null)?.closest?.('a[href]')
        return !!link && openFileLink(link.getAttribute('href')!)
      },
      attributes: {
        class: 'prose',
        role: 'textbox',
        'aria-multiline': 'true',
        'aria-label': 'Document text',
      },
    },
  })

  const awareness = provider.awareness
  const people = () => {
    const list: Person[] = []
    awareness.getStates().forEach((value, clientId) => {
      const user = (value as { user?: { name?: string; color?: string } }).user
      if (user?.name) {
        list.push({ clientId, name: user.name, color: user.color ?? '#555', self: clientId === doc.clientID })
      }
    })
    options.onPeople(list)
  }
  awareness.on('change', people)
  people()
  recompute()

  return {
    editor,
    doc,
    provider,
    syncState: () => state,
    setEditable: (editable) => editor.setEditable(editable),
    destroy() {
      clearTimeout(settleTimer)
      window.removeEventListener('offline', wentOffline)
      window.removeEventListener('online', cameOnline)
      window.removeEventListener('collab:session', renewed)
      awareness.off('change', people)
      editor.destroy()
      provider.destroy()
      void local.destroy()
      doc.destroy()
    },
  }
}
