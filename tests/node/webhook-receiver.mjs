// A webhook receiver for the Rust tests: checks every delivery's signature with the
// `standardwebhooks` package (an implementation independent of ours) and records it.
// Usage: node webhook-receiver.mjs <port>
//   POST /_control/secret {path, secret}   the secret deliveries to `path` are signed with
//   POST /_control/fail {path, count, status}  answer `status` to the next `count` deliveries
//   POST /_control/slow {path, count, ms}   answer the next `count` deliveries after `ms`
//   GET  /_control/received                 everything received so far
import { createServer } from 'node:http'
import { Webhook } from 'standardwebhooks'

const port = Number(process.argv[2])
const secrets = new Map()
const failing = new Map()
const slow = new Map()
const received = []

const readBody = (request) => new Promise((resolve, reject) => {
  const chunks = []
  request.on('data', (chunk) => chunks.push(chunk))
  request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
  request.on('error', reject)
})

const json = (response, status, value) => {
  response.writeHead(status, { 'content-type': 'application/json' })
  response.end(JSON.stringify(value))
}

createServer(async (request, response) => {
  const raw = await readBody(request)
  if (request.url === '/_control/secret') {
    const { path, secret } = JSON.parse(raw)
    secrets.set(path, secret)
    return json(response, 200, {})
  }
  if (request.url === '/_control/fail') {
    const { path, count, status } = JSON.parse(raw)
    failing.set(path, { count, status })
    return json(response, 200, {})
  }
  if (request.url === '/_control/slow') {
    const { path, count, ms } = JSON.parse(raw)
    slow.set(path, { count, ms })
    return json(response, 200, {})
  }
  if (request.url === '/_control/received') {
    return json(response, 200, received)
  }
  const entry = {
    path: request.url,
    id: request.headers['webhook-id'] ?? null,
    timestamp: request.headers['webhook-timestamp'] ?? null,
    verified: false,
    error: null,
    body: null,
    answered: 204
  }
  try {
    const secret = secrets.get(request.url)
    if (!secret) throw new Error('no secret for this path')
    entry.body = new Webhook(secret).verify(raw, request.headers)
    entry.verified = true
  } catch (error) {
    entry.error = String(error?.message ?? error)
    try { entry.body = JSON.parse(raw) } catch {}
  }
  const fail = failing.get(request.url)
  if (fail && fail.count > 0) {
    fail.count--
    entry.answered = fail.status
  }
  const lag = slow.get(request.url)
  if (lag && lag.count > 0) {
    lag.count--
    entry.slow = true
    await new Promise((resolve) => setTimeout(resolve, lag.ms))
  }
  received.push(entry)
  response.writeHead(entry.answered)
  response.end()
}).listen(port, '127.0.0.1')
