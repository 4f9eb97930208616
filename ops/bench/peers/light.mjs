// Light load with the clients users run: DOCS documents × CLIENTS stock clients under Node
// (yjs + y-websocket; Hocuspocus's own provider for Hocuspocus), each typing one character
// every INTERVAL ms for SECONDS seconds, every peer's receipt of every keystroke timed (one
// process, one clock). Prints one JSON line:
//   {"scenario":"light","p50_ms","p99_ms","mean_ms","sent","expected","delivered","lost"}
//
//   node ops/bench/peers/light.mjs --url ws://127.0.0.1:7791/v1/sync [--query token=T]
//     --docs a,b,c [--clients 5] [--interval 200] [--seconds 20] [--protocol hocuspocus]
// A `{doc}` in --url is replaced by the document's id (y-sweet's /d/{doc}/ws/{doc}).
import { performance } from 'node:perf_hooks'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import WebSocket from 'ws'

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
)
const url = args.url
const docs = (args.docs ?? '').split(',').filter(Boolean)
const clients = Number(args.clients ?? 5)
const interval = Number(args.interval ?? 200)
const seconds = Number(args.seconds ?? 20)
const params = Object.fromEntries(new URLSearchParams(args.query ?? ''))
if (!url || docs.length === 0) {
  console.error('usage: light.mjs --url URL --docs a,b [--clients 5] [--interval 200] [--seconds 20]')
  process.exit(2)
}

// When each keystroke was typed: `${doc}|${client}|${seq}` → ms.
const typed = new Map()
const latencies = []
let sent = 0

async function connect(docId, index) {
  const doc = new Y.Doc()
  const text = doc.getText('text')
  const stamps = doc.getMap('stamps')
  const me = `c${index}`
  let provider
  if (args.protocol === 'hocuspocus') {
    const socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket })
    provider = new HocuspocusProvider({ websocketProvider: socket, name: docId, document: doc })
    provider.attach()
  } else {
    const full = url.replaceAll('{doc}', encodeURIComponent(docId))
    const server = url.includes('{doc}') ? full.slice(0, full.lastIndexOf('/')) : url
    const room = url.includes('{doc}') ? full.slice(full.lastIndexOf('/') + 1) : docId
    provider = new WebsocketProvider(server, room, doc, { WebSocketPolyfill: WebSocket, params, disableBc: true })
  }
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${docId}: not synced in 30 s`)), 30_000)
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    // y-websocket says `sync` (true), Hocuspocus `synced`.
    provider.on('sync', (synced) => synced && done())
    provider.on('synced', done)
  })
  stamps.observe((event) => {
    const now = performance.now()
    for (const key of event.keysChanged) {
      if (key === me) continue
      const at = typed.get(`${docId}|${key}|${stamps.get(key)}`)
      if (at !== undefined) latencies.push(now - at)
    }
  })
  let seq = 0
  return {
    type() {
      seq += 1
      typed.set(`${docId}|${me}|${seq}`, performance.now())
      doc.transact(() => {
        text.insert(text.length, 'x')
        stamps.set(me, seq)
      })
      sent += 1
    },
    close() {
      provider.destroy()
    },
  }
}

const all = []
for (const docId of docs) {
  for (let i = 0; i < clients; i++) all.push(await connect(docId, i))
}
// Every client open and synced: the clock starts. Clients start at random points of the
// interval, as people do.
const timers = []
for (const client of all) {
  timers.push(
    setTimeout(() => {
      client.type()
      timers.push(setInterval(() => client.type(), interval))
    }, Math.random() * interval),
  )
}
await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
for (const timer of timers) clearTimeout(timer), clearInterval(timer)
// Stragglers.
await new Promise((resolve) => setTimeout(resolve, 2000))
for (const client of all) client.close()

latencies.sort((a, b) => a - b)
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? null
const expected = sent * (clients - 1)
const round = (x) => (x === null ? null : Math.round(x * 1000) / 1000)
console.log(
  JSON.stringify({
    scenario: 'light',
    docs: docs.length,
    clients,
    interval_ms: interval,
    seconds,
    sent,
    expected,
    delivered: latencies.length,
    lost: expected - latencies.length,
    p50_ms: round(at(0.5)),
    p99_ms: round(at(0.99)),
    mean_ms: round(latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length)),
  }),
)
process.exit(0)
