// The README's live-editing example: two stock Yjs clients (yjs + y-websocket) edit one
// document through collab, then the server's copy is read back over HTTP.
//   COLLAB_TOKEN=$(collab token mint --user alice) node readme_example.mjs
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws' // Node 20 has no global WebSocket

const base = process.env.COLLAB_URL ?? 'http://127.0.0.1:7700'
const token = process.env.COLLAB_TOKEN
const fail = (message) => { console.error(`error: ${message}`); process.exit(1) }
if (!token) fail('set COLLAB_TOKEN, e.g. COLLAB_TOKEN=$(collab token mint --user alice)')

// One HTTP call with the bearer token; returns the body (parsed if JSON), throws on non-2xx.
async function api (method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body)
  }).catch((error) => { throw new Error(`cannot reach ${base}: ${error.cause?.code ?? error.message}`) })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
  return response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text
}

// Polls check() (which may be async) until it is true, for at most timeoutMs.
async function waitFor (what, check, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

// A stock client: a Y.Doc synced with the document over /v1/sync/{documentId}?token=…
let lastClose = ''
function connect (documentId) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(base.replace(/^http/, 'ws') + '/v1/sync', documentId, doc, {
    params: { token },
    WebSocketPolyfill: WebSocket,
    disableBc: true // both clients share this process: make them talk through the server only
  })
  provider.on('connection-close', (event) => { if (event) lastClose = ` (socket closed: ${event.code} ${event.reason})` })
  return { doc, provider, text: doc.getText('text') }
}

try {
  const workspace = await api('POST', '/v1/workspaces', { name: 'Acme' })
  const document = await api('POST', `/v1/workspaces/${workspace.id}/documents`, { title: 'Notes' })
  const a = connect(document.id)
  const b = connect(document.id)
  await waitFor('both clients to sync', () => a.provider.synced && b.provider.synced)

  a.text.insert(0, 'hello from A') // durable in Postgres before B (or anyone) sees it
  await waitFor('client B to see the edit', () => b.text.toString() === 'hello from A')
  const content = () => api('GET', `/v1/documents/${document.id}/content?format=text&root=text`)
  await waitFor('the server-side content', async () => (await content()) === 'hello from A')

  console.log(`ok: document ${document.id}: B saw A's edit, and the server has ${JSON.stringify(await content())}`)
  for (const client of [a, b]) { client.provider.destroy(); client.doc.destroy() } // lets Node exit
} catch (error) {
  fail(error.message + lastClose)
}
