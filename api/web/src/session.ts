// Who is signed in: the token the API takes, kept on this device so documents opened
// before stay usable offline. Development sign-in (`collab serve --dev-login`) mints it
// on the server; OpenID Connect sign-in gets it from the identity provider.

export interface Session {
  token: string
  userId: string
  name: string
  /** Milliseconds since the epoch. */
  expiresAt: number
}

export interface AppConfig {
  dev_login: boolean
  oidc: { issuer: string; client_id: string } | null
}

const KEY = 'collab.session'

export function current(): Session | null {
  const raw = localStorage.getItem(KEY)
  if (!raw) return null
  try {
    const session = JSON.parse(raw) as Session
    if (!session.token || session.expiresAt <= Date.now()) return null
    return session
  } catch {
    return null
  }
}

export function save(session: Session): void {
  localStorage.setItem(KEY, JSON.stringify(session))
}

export function signOut(): void {
  localStorage.removeItem(KEY)
}

/// The server's sign-in options; offline, the last ones seen (the app opens offline too).
export async function config(): Promise<AppConfig> {
  try {
    const response = await fetch('/v1/app/config')
    if (!response.ok) throw new Error(`the server answered ${response.status}`)
    const config = (await response.json()) as AppConfig
    localStorage.setItem('collab.config', JSON.stringify(config))
    return config
  } catch (error) {
    const kept = localStorage.getItem('collab.config')
    if (kept) return JSON.parse(kept) as AppConfig
    throw error
  }
}

export async function devLogin(name: string): Promise<Session> {
  const response = await fetch('/v1/dev/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  })
  const body = await response.json().catch(() => ({}))
  if (!response.ok) throw new Error(body?.message ?? `the server answered ${response.status}`)
  const session: Session = {
    token: body.token,
    userId: body.user_id,
    name: body.name,
    expiresAt: Date.now() + body.expires_in * 1000,
  }
  save(session)
  return session
}
