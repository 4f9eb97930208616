// A stock GraphQL-over-WebSocket client (graphql-ws) driven by the Rust tests:
//   node graphql.mjs <ws url> <token or ""> <document id> <new title>
//   node graphql.mjs <ws url> <token> <document id> --watch
// With --watch it only subscribes, printing a JSON line per event as it arrives, then
// {"completed": true} or {"error": ...} when the server ends the subscription (at most 20 s).
// Subscribes to the document's events, then renames the document over the same socket
// until the subscription delivers a rename (a bounded poll: the protocol does not say
// when a subscription is in place), and prints one JSON line: the renames' results and
// the events received, or the error.
import { createClient } from 'graphql-ws'
import WebSocket from 'ws'

const [url, token, documentId, title] = process.argv.slice(2)
if (title === '--watch') {
  const watcher = createClient({ url, webSocketImpl: WebSocket, connectionParams: { token }, retryAttempts: 0 })
  const print = (line) => process.stdout.write(JSON.stringify(line) + '\n')
  await new Promise((resolve) => {
    const timer = setTimeout(() => { print({ error: 'still subscribed after 20 s' }); resolve() }, 20000)
    watcher.subscribe(
      { query: 'subscription ($id: ID!) { documentEvents(documentId: $id) { position type data } }', variables: { id: documentId } },
      {
        next: (m) => print(m.errors ? { error: m.errors } : { event: m.data.documentEvents }),
        error: (error) => { print({ error: error?.message ?? String(error?.reason ?? error) }); clearTimeout(timer); resolve() },
        complete: () => { print({ completed: true }); clearTimeout(timer); resolve() }
      }
    )
  })
  await watcher.dispose()
  process.exit(0)
}
const out = { events: [], mutations: [], error: null, closed: null }
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token ? { token } : {},
  retryAttempts: 0,
  on: { closed: (event) => { out.closed = { code: event.code, reason: event.reason?.toString() } } }
})

const message = (error) => error?.message ?? error?.reason ?? (Array.isArray(error) ? JSON.stringify(error) : String(error))

const request = (query, variables) => new Promise((resolve, reject) => {
  let value = null
  client.subscribe({ query, variables }, { next: (m) => { value = m }, error: reject, complete: () => resolve(value) })
})

let renamed = false
let ended = false
client.subscribe(
  { query: 'subscription ($id: ID!) { documentEvents(documentId: $id) { position type streamVersion actor data } }', variables: { id: documentId } },
  {
    next: (m) => {
      if (m.errors) { out.error = m.errors; ended = true; return }
      out.events.push(m.data.documentEvents)
      if (m.data.documentEvents.type === 'DocumentRenamed') renamed = true
    },
    error: (error) => { out.error = message(error); ended = true },
    complete: () => { ended = true }
  }
)

const deadline = Date.now() + 15000
try {
  for (let i = 1; !renamed && !ended && Date.now() < deadline; i++) {
    const result = await request(
      'mutation ($id: ID!, $title: String!) { renameDocument(id: $id, title: $title) { id version position title } }',
      { id: documentId, title: `${title} ${i}` }
    )
    out.mutations.push(result)
    if (result?.errors) break
    const wait = Date.now() + 500
    while (!renamed && !ended && Date.now() < wait) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  // A refused subscription says so shortly: wait (bounded) for its answer.
  const settle = Date.now() + 3000
  while (!renamed && !ended && Date.now() < settle) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!renamed && !out.error) out.error = 'no rename event within 15 s'
} catch (error) {
  out.error = message(error)
}
process.stdout.write(JSON.stringify(out) + '\n')
await client.dispose()
process.exit(0)
