// Trace ingest with the clients users run: one stock client (yjs + y-websocket under Node)
// replays an editing trace, one Yjs transaction per trace transaction, each update sent as
// its own message (what the provider does); a second stock client watches the same document.
// Times, from the first keystroke (one process, one clock):
//   produced_s  the writer has made every update (the client's own pace: the floor),
//   handed_s    every update has left the writer's socket buffer (the server took it),
//   complete_s  the watcher holds exactly the trace's final text.
// Prints one JSON line: {"scenario":"ingest-stock","updates","produced_s","handed_s","complete_s"}
//
//   node ops/bench/peers/ingest.mjs --url ws://127.0.0.1:7791/v1/sync [--query token=T]
//     --doc ID --trace shared/traces/automerge-paper.json.gz [--timeout 120] [--chunk 64]
// The writer yields to the event loop every --chunk transactions, so its socket writes as it
// types, as an editor's would.
import { performance } from 'node:perf_hooks'
import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
)
if (!args.url || !args.doc || !args.trace) {
  console.error('usage: ingest.mjs --url URL --doc ID --trace FILE.json.gz [--query token=T] [--timeout 120] [--chunk 64]')
  process.exit(2)
}
const params = Object.fromEntries(new URLSearchParams(args.query ?? ''))
const timeout = Number(args.timeout ?? 120) * 1000
const chunk = Number(args.chunk ?? 64)
const trace = JSON.parse(gunzipSync(readFileSync(args.trace)).toString('utf8'))
// Trace positions count code points, Y.Text counts UTF-16 units: equal for a text without
// characters beyond the BMP, which is all this script takes.
if ([...trace.endContent].length !== trace.endContent.length) {
  console.error('ingest.mjs: the trace has characters beyond the BMP; positions would need converting')
  process.exit(2)
}

async function open(name) {
  const doc = new Y.Doc()
  const full = args.url.replaceAll('{doc}', encodeURIComponent(args.doc))
  const server = args.url.includes('{doc}') ? full.slice(0, full.lastIndexOf('/')) : args.url
  const room = args.url.includes('{doc}') ? full.slice(full.lastIndexOf('/') + 1) : args.doc
  const provider = new WebsocketProvider(server, room, doc, { WebSocketPolyfill: WebSocket, params, disableBc: true })
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not synced in 30 s`)), 30_000)
    provider.on('sync', (synced) => synced && (clearTimeout(timer), resolve()))
  })
  return { doc, text: doc.getText('text'), provider }
}

const watcher = await open('watcher')
const writer = await open('writer')
if (writer.text.length !== trace.startContent.length) {
  console.error('ingest.mjs: the document is not empty')
  process.exit(2)
}
let complete = null
const expected = trace.endContent
const check = () => {
  if (complete === null && watcher.text.length === expected.length && watcher.text.toString() === expected) {
    complete = performance.now()
  }
}
watcher.text.observe(check)

const start = performance.now()
let updates = 0
for (let i = 0; i < trace.txns.length; i++) {
  writer.doc.transact(() => {
    for (const [pos, del, ins] of trace.txns[i].patches) {
      if (del > 0) writer.text.delete(pos, del)
      if (ins) writer.text.insert(pos, ins)
    }
  })
  updates += 1
  if (i % chunk === chunk - 1) await new Promise((resolve) => setImmediate(resolve))
}
const produced = performance.now()
// Handed over: nothing left in the writer's socket buffer (the kernel took it all, so the
// server is reading it). Polled every millisecond, bounded by the timeout.
const socket = () => writer.provider.ws
while (socket() && socket().bufferedAmount > 0 && performance.now() - start < timeout) {
  await new Promise((resolve) => setTimeout(resolve, 1))
}
const handed = performance.now()
while (complete === null && performance.now() - start < timeout) {
  await new Promise((resolve) => setTimeout(resolve, 5))
  check()
}
const round = (x) => Math.round(x) / 1000
console.log(
  JSON.stringify({
    scenario: 'ingest-stock',
    updates,
    chunk,
    produced_s: round(produced - start),
    handed_s: round(handed - start),
    complete_s: complete === null ? null : round(complete - start),
    watcher_chars: watcher.text.length,
    expected_chars: expected.length,
  }),
)
writer.provider.destroy()
watcher.provider.destroy()
process.exit(complete === null ? 1 : 0)
