// The public REST API, as any client uses it: a bearer token, JSON, and after a command
// its position, so the next read waits until the read models have folded it
// (X-Collab-Min-Position) and the person sees their own change.

import { fetchEventSource, type EventSourceMessage } from '@microsoft/fetch-event-source'
import * as session from './session'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

let lastPosition = 0

/// A position the caller has seen committed elsewhere (a live feed's event): later reads
/// wait until the read models have folded it.
export function sawPosition(position: number): void {
  if (position > lastPosition) lastPosition = position
}

/// A share link's token for a document, kept once opened (`/d/{id}?link=…`): it goes with
/// every call about that document (`X-Collab-Link`) and on its socket (`?link=`).
export function linkFor(documentId: string): string | null {
  return localStorage.getItem(`collab.link.${documentId}`)
}

let openDocumentId: string | null = null

/// The document on screen (its share link, if any, goes with its threads' calls).
export function setOpenDocument(id: string | null): void {
  openDocumentId = id
}

export function keepLink(documentId: string, token: string): void {
  localStorage.setItem(`collab.link.${documentId}`, token)
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await send(method, path, body)
  if (response.status === 204) return undefined as T
  return (await response.json().catch(() => null)) as T
}

/// Who is asking, for a call to `path`: the session's token, and the share link of the
/// document the call is about (a thread's, a comment's or a file's calls are about the
/// document open now).
function credentials(path: string): Record<string, string> {
  const current = session.current()
  const headers: Record<string, string> = {}
  if (current) headers.authorization = `Bearer ${current.token}`
  const documentId =
    path.match(/^\/v1\/documents\/([0-9a-f-]{36})/)?.[1] ?? (/^\/v1\/(threads|comments|files)\//.test(path) ? openDocumentId : null)
  const link = documentId ? linkFor(documentId) : null
  if (link) headers['x-collab-link'] = link
  return headers
}

/// Follows one of the API's Server-Sent Events feeds (read with `fetch`, so the token goes
/// in a header) until `signal` aborts it; offline or after a restart it tries again every
/// 5 s, resuming with Last-Event-ID.
export function liveFeed(
  path: string,
  signal: AbortSignal,
  onmessage: (message: EventSourceMessage) => void,
  onopen?: () => void,
): void {
  void fetchEventSource(path, {
    headers: credentials(path),
    signal,
    openWhenHidden: true,
    onopen: async () => onopen?.(),
    onmessage,
    onerror: () => 5000,
  }).catch(() => {})
}

/// The raw response of a call that succeeded (an export's bytes, say); errors thrown.
async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers = credentials(path)
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (method === 'GET' && lastPosition > 0) headers['x-collab-min-position'] = String(lastPosition)
  let response: Response
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch {
    throw new ApiError(0, 'offline', 'The server cannot be reached.')
  }
  const position = Number(response.headers.get('x-collab-position'))
  if (position > lastPosition) lastPosition = position
  if (!response.ok) {
    const json = await response.json().catch(() => null)
    if (response.status === 401) {
      session.forget()
      window.dispatchEvent(new Event('collab:signed-out'))
    }
    throw new ApiError(
      response.status,
      json?.code ?? 'error',
      json?.message ?? `The server answered ${response.status}.`,
    )
  }
  return response
}

export interface Workspace {
  id: string
  name: string
  role: string
}

export interface Document {
  id: string
  workspace_id: string
  title: string
  folder: string
  archived: boolean
  updated_at: string
}

export interface DocumentWithRole extends Document {
  role: string
}

export interface HistoryEntry {
  kind: string
  actor: string
  first_version: number | null
  last_version: number | null
  edits: number
  inserted: number
  deleted: number
  started_at: string
  ended_at: string
  details: Record<string, unknown>
}

export interface Change {
  op: 'equal' | 'insert' | 'delete'
  text: string
  authors?: { text: string; actor: string | null }[]
}

export interface SearchHit {
  document_id: string
  title: string
  folder: string
  snippet: { text: string; highlight?: boolean }[]
}

export interface Permissions {
  role: string
  default_member_role: string | null
  shares: { principal: string; role: string }[]
  links: { id: string; role: string; expires_at: string | null }[]
}

export interface Reaction {
  emoji: string
  count: number
  users: string[]
}

export interface Comment {
  comment_id: string
  thread_id: string
  author: string
  author_name: string | null
  body: string | null
  deleted: boolean
  mentions: string[]
  created_at: string
  edited_at: string | null
  reactions: Reaction[]
}

export interface Thread {
  thread_id: string
  status: 'open' | 'resolved'
  author: string
  author_name: string | null
  anchor: {
    root: string
    from: number | null
    to: number | null
    quote: string | null
    orphaned: boolean
    original_quote: string
    start: string
    end: string
  }
  resolved_by: string | null
  comments: Comment[]
}

export interface Member {
  user_id: string
  display_name: string | null
  role: string
}

export const api = {
  workspaces: () => call<{ workspaces: Workspace[] }>('GET', '/v1/workspaces'),
  createWorkspace: (name: string) => call<Workspace>('POST', '/v1/workspaces', { name }),
  documents: (workspace: string) =>
    call<{ documents: Document[]; next_cursor: string | null }>(
      'GET',
      `/v1/workspaces/${workspace}/documents?limit=100`,
    ),
  createDocument: (workspace: string, title: string, folder?: string) =>
    call<{ id: string }>('POST', `/v1/workspaces/${workspace}/documents`, folder ? { title, folder } : { title }),
  document: (id: string) => call<DocumentWithRole>('GET', `/v1/documents/${id}`),
  renameDocument: (id: string, title: string) => call('PATCH', `/v1/documents/${id}`, { title }),
  history: (id: string) => call<{ entries: HistoryEntry[] }>('GET', `/v1/documents/${id}/history?limit=50`),
  diff: (id: string, from: number, to?: number) =>
    call<{ changes: Change[]; inserted: number; deleted: number }>(
      'GET',
      `/v1/documents/${id}/diff?from=${from}${to === undefined ? '' : `&to=${to}`}`,
    ),
  textAt: async (id: string, version: number) =>
    (await send('GET', `/v1/documents/${id}/export?format=txt&at_version=${version}`)).text(),
  restore: (id: string, version: number) =>
    call('POST', `/v1/documents/${id}/history/restore`, { at_version: version }),
  nameVersion: (id: string, name: string) => call('POST', `/v1/documents/${id}/versions`, { name }),
  export: (id: string, format: 'md' | 'html' | 'txt') => send('GET', `/v1/documents/${id}/export?format=${format}`),
  permissions: (id: string) => call<Permissions>('GET', `/v1/documents/${id}/permissions`),
  share: (id: string, userId: string, role: string) =>
    call('PUT', `/v1/documents/${id}/permissions/user:${encodeURIComponent(userId)}`, { role }),
  unshare: (id: string, principal: string) =>
    call('DELETE', `/v1/documents/${id}/permissions/${encodeURIComponent(principal)}`),
  createLink: (id: string, role: string) =>
    call<{ id: string; token: string; role: string }>('POST', `/v1/documents/${id}/links`, { role }),
  revokeLink: (id: string, link: string) => call('DELETE', `/v1/documents/${id}/links/${link}`),
  members: (workspace: string) => call<{ members: Member[] }>('GET', `/v1/workspaces/${workspace}/members`),
  threads: (id: string, status: 'open' | 'all') =>
    call<{ threads: Thread[] }>('GET', `/v1/documents/${id}/threads?status=${status}`),
  openThread: (id: string, anchor: { root: string; start: string; end: string }, body: string) =>
    call<{ thread_id: string }>('POST', `/v1/documents/${id}/threads`, { anchor, body }),
  reply: (thread: string, body: string) => call('POST', `/v1/threads/${thread}/comments`, { body }),
  resolveThread: (thread: string) => call('POST', `/v1/threads/${thread}/resolve`),
  reopenThread: (thread: string) => call('POST', `/v1/threads/${thread}/reopen`),
  deleteComment: (comment: string) => call('DELETE', `/v1/comments/${comment}`),
  react: (comment: string, emoji: string, on: boolean) =>
    call(on ? 'PUT' : 'DELETE', `/v1/comments/${comment}/reactions/${encodeURIComponent(emoji)}`),
  notifications: () =>
    call<{ notifications: import('./notifications').Notification[]; unread_count: number }>(
      'GET',
      '/v1/me/notifications?limit=20',
    ),
  markRead: (ids: string[]) => call('POST', '/v1/me/notifications/read', { ids }),
  markAllRead: () => call('POST', '/v1/me/notifications/read', { all: true }),
  search: (q: string, workspace: string) =>
    call<{ results: SearchHit[] }>(
      'GET',
      `/v1/search?q=${encodeURIComponent(q)}&workspace=${workspace}&kind=document&limit=20`,
    ),
  updateDocument: (id: string, change: { title?: string; folder?: string }) => call('PATCH', `/v1/documents/${id}`, change),
  archive: (id: string) => call('POST', `/v1/documents/${id}/archive`),
  unarchive: (id: string) => call('POST', `/v1/documents/${id}/restore`),
  deleteDocument: (id: string) => call('DELETE', `/v1/documents/${id}`),
  archivedDocuments: (workspace: string) =>
    call<{ documents: Document[] }>('GET', `/v1/workspaces/${workspace}/documents?limit=100&archived=only`),
  startUpload: (
    workspace: string,
    file: { filename: string; size: number; content_type: string; document_id: string },
  ) =>
    call<{
      id: string
      filename: string
      upload: { method: 'put'; url: string } | { method: 'multipart'; part_size: number; parts: { number: number; url: string }[] }
    }>('POST', `/v1/workspaces/${workspace}/files`, file),
  completeUpload: (id: string, parts: { number: number; etag: string }[]) =>
    call<{ id: string; content_type: string }>('POST', `/v1/files/${id}/complete`, { parts }),
  fileUrl: (id: string) => call<{ url: string; expires_at: string }>('GET', `/v1/files/${id}/download?redirect=false`),
  addMember: (workspace: string, userId: string, role: string) =>
    call('POST', `/v1/workspaces/${workspace}/members`, { user_id: userId, role }),
}
