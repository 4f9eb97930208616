// The public REST API, as any client uses it: a bearer token, JSON, and after a command
// its position, so the next read waits until the read models have folded it
// (X-Collab-Min-Position) and the person sees their own change.

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

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const current = session.current()
  const headers: Record<string, string> = {}
  if (current) headers.authorization = `Bearer ${current.token}`
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
  if (response.status === 204) return undefined as T
  const json = await response.json().catch(() => null)
  if (!response.ok) {
    if (response.status === 401) {
      session.signOut()
      window.dispatchEvent(new Event('collab:signed-out'))
    }
    throw new ApiError(
      response.status,
      json?.code ?? 'error',
      json?.message ?? `The server answered ${response.status}.`,
    )
  }
  return json as T
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

export const api = {
  workspaces: () => call<{ workspaces: Workspace[] }>('GET', '/v1/workspaces'),
  createWorkspace: (name: string) => call<Workspace>('POST', '/v1/workspaces', { name }),
  documents: (workspace: string) =>
    call<{ documents: Document[]; next_cursor: string | null }>(
      'GET',
      `/v1/workspaces/${workspace}/documents?limit=100`,
    ),
  createDocument: (workspace: string, title: string) =>
    call<{ id: string }>('POST', `/v1/workspaces/${workspace}/documents`, { title }),
  document: (id: string) => call<DocumentWithRole>('GET', `/v1/documents/${id}`),
  renameDocument: (id: string, title: string) => call('PATCH', `/v1/documents/${id}`, { title }),
}
