// A stock Yjs client (yjs + y-websocket's WebsocketProvider), driven by the Rust tests
// over stdin/stdout: one JSON command per line in, one JSON reply per line out.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { createInterface } from 'node:readline'
import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'

let doc = null
let provider = null
const closes = []
const denied = []
let typing = null

const reply = (value) => process.stdout.write(JSON.stringify(value) + '\n')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until (what, predicate, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

const commands = {
  connect ({ url, doc: name, token, root = 'text', connect = true }) {
    doc = new Y.Doc()
    provider = new WebsocketProvider(url, name, doc, {
      WebSocketPolyfill: WebSocket,
      params: token ? { token } : {},
      connect,
      disableBc: true,
      maxBackoffTime: 500
    })
    provider.on('connection-close', (event) => {
      if (event) closes.push({ code: event.code, reason: event.reason?.toString() ?? '' })
    })
    provider.connects = 0
    provider.on('status', (event) => {
      provider.lastStatus = event.status
      if (event.status === 'connected') provider.connects++
    })
    // y-websocket logs permission-denied; record it for the tests.
    const original = console.warn
    console.warn = (...args) => { denied.push(args.join(' ')); original.apply(console, args) }
    doc.getText(root)
    return { clientId: doc.clientID }
  },
  async synced ({ timeoutMs }) {
    await until('sync', () => provider.synced, timeoutMs)
    return { synced: true }
  },
  insert ({ root = 'text', index, text }) {
    const ytext = doc.getText(root)
    ytext.insert(index ?? ytext.length, text)
    return { length: ytext.length }
  },
  delete ({ root = 'text', index, length }) {
    const ytext = doc.getText(root)
    ytext.delete(index, length)
    return { length: ytext.length }
  },
  // A passage as a Yjs editor anchors a comment: two relative positions (the start
  // sticking to the passage's first character, the end to its last), encoded as Yjs
  // encodes them, in base64.
  relativeRange ({ root = 'text', from, to }) {
    const ytext = doc.getText(root)
    const encode = (index, assoc) => Buffer.from(
      Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(ytext, index, assoc))
    ).toString('base64')
    return { start: encode(from, 0), end: encode(to, -1) }
  },
  // Edits by what the text says rather than by index, so edits made concurrently on
  // other clients do not shift them: insert before or after the first occurrence of a
  // needle, or delete the first occurrence of a text.
  insertNear ({ root = 'text', before, after, text }) {
    const ytext = doc.getText(root)
    const current = ytext.toString()
    const at = before !== undefined ? current.indexOf(before) : current.indexOf(after) + after.length
    if (current.indexOf(before ?? after) < 0) throw new Error(`no ${before ?? after} in ${current}`)
    ytext.insert(at, text)
    return { length: ytext.length }
  },
  deleteText ({ root = 'text', text }) {
    const ytext = doc.getText(root)
    const at = ytext.toString().indexOf(text)
    if (at < 0) throw new Error(`no ${text} in ${ytext.toString()}`)
    ytext.delete(at, text.length)
    return { length: ytext.length }
  },
  text ({ root = 'text' }) {
    return { text: doc.getText(root).toString() }
  },
  async waitText ({ root = 'text', text, timeoutMs }) {
    await until(`text ${JSON.stringify(text).slice(0, 80)}`, () => doc.getText(root).toString() === text, timeoutMs)
    return { text }
  },
  async waitLength ({ root = 'text', length, timeoutMs }) {
    await until(`length ${length}`, () => doc.getText(root).length === length, timeoutMs)
    return { length }
  },
  awareness ({ state }) {
    provider.awareness.setLocalState(state)
    return { clientId: doc.clientID }
  },
  peers () {
    const states = []
    provider.awareness.getStates().forEach((state, clientId) => {
      if (clientId !== doc.clientID) states.push({ clientId, state })
    })
    return { states }
  },
  closes () {
    return { closes, denied, status: provider?.lastStatus ?? null, connected: provider?.wsconnected ?? false }
  },
  disconnect () {
    provider.disconnect()
    return {}
  },
  reconnect () {
    provider.connect()
    return {}
  },
  // Replays an editing trace: one Yjs transaction (and so one update message) per trace
  // transaction. Positions count code points; JavaScript strings count UTF-16 units.
  async replay ({ path, root = 'text', limit }) {
    const trace = JSON.parse(gunzipSync(readFileSync(path)).toString('utf8'))
    const ytext = doc.getText(root)
    let txns = trace.txns
    if (limit) txns = txns.slice(0, limit)
    const started = Date.now()
    let count = 0
    const ascii = /^[\x00-\x7f]*$/.test(trace.endContent)
    for (const txn of txns) {
      doc.transact(() => {
        for (const [pos, del, ins] of txn.patches) {
          let at = pos
          if (!ascii) {
            const current = ytext.toString()
            at = [...current].slice(0, pos).join('').length
            const deleted = [...current.slice(at)].slice(0, del).join('').length
            if (deleted > 0) ytext.delete(at, deleted)
          } else if (del > 0) {
            ytext.delete(at, del)
          }
          if (ins.length > 0) ytext.insert(at, ins)
        }
      })
      count++
      // Let the socket drain now and then, as a person typing would.
      if (count % 2000 === 0) await sleep(0)
    }
    const expected = limit ? ytext.toString() : trace.endContent
    return { count, ms: Date.now() - started, text: ytext.toString(), expected, matches: ytext.toString() === expected }
  },
  // How many times the provider has connected (1 unless it reconnected) and the closes.
  connections () {
    return { connects: provider.connects, closes }
  },
  async bufferedDrain ({ timeoutMs }) {
    await until('socket to drain', () => !provider.ws || provider.ws.bufferedAmount === 0, timeoutMs)
    return {}
  },
  // Types `<tag>.<n>;` at the end of the text every `everyMs` until stopTyping, connected
  // or not (y-websocket keeps what it cannot send and sends it on reconnect).
  startTyping ({ root = 'text', tag, everyMs = 50 }) {
    const ytext = doc.getText(root)
    const state = { n: 0, stop: false }
    typing = state
    ;(async () => {
      while (!state.stop) {
        ytext.insert(ytext.length, `${tag}.${state.n};`)
        state.n++
        await sleep(everyMs)
      }
    })()
    return {}
  },
  // Appends `chunk` characters at a time, paced to `bytesPerSecond`, for `seconds`.
  async flood ({ root = 'text', bytesPerSecond, chunk, seconds, maxBytes = Infinity }) {
    const ytext = doc.getText(root)
    const piece = 'x'.repeat(chunk)
    const started = Date.now()
    let sent = 0
    while (Date.now() - started < seconds * 1000 && sent < maxBytes) {
      const due = started + (sent / bytesPerSecond) * 1000
      if (Date.now() < due) await sleep(due - Date.now())
      ytext.insert(ytext.length, piece)
      sent += chunk
    }
    return { sent, ms: Date.now() - started, closes }
  },
  stopTyping () {
    typing.stop = true
    return { typed: typing.n }
  },
  exit () {
    setTimeout(() => process.exit(0), 10)
    return {}
  }
}

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  const command = JSON.parse(line)
  try {
    const result = await commands[command.op](command)
    reply({ ok: true, ...result })
  } catch (error) {
    reply({ ok: false, error: String(error?.stack ?? error) })
  }
}
process.exit(0)
