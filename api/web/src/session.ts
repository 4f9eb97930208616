// Who is signed in: the token the API takes, kept on this device so documents opened
// before stay usable offline. Development sign-in (`collab serve --dev-login`) mints it
// on the server; OpenID Connect sign-in (authorisation code flow with PKCE, by
// oidc-client-ts) gets an ID token from the identity provider, which the server verifies
// with the provider's keys, and renews it silently with the refresh token before it
// expires.

import { UserManager, WebStorageStateStore, type User } from 'oidc-client-ts'

export interface Session {
  token: string
  userId: string
  name: string
  /** Milliseconds since the epoch. */
  expiresAt: number
  /** How the person signed in (OpenID Connect sessions sign out at the provider too). */
  via?: 'dev' | 'oidc'
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
  if (session.via === 'oidc') scheduleRenewal(session)
  // Open sockets and live feeds take the new token.
  window.dispatchEvent(new Event('collab:session'))
}

/// Forgets the session on this device only (the server refused its token).
export function forget(): void {
  clearTimeout(renewal)
  localStorage.removeItem(KEY)
}

/// Signs out on this device; an OpenID Connect session also at the provider (the browser
/// goes there and comes back to the app).
export async function signOut(): Promise<void> {
  const was = current()
  forget()
  if (was?.via === 'oidc' && manager) {
    const user = await manager.getUser()
    await manager.removeUser()
    await manager.signoutRedirect({ id_token_hint: user?.id_token })
  }
}

let manager: UserManager | null = null

/// The OpenID Connect client for the configured issuer (none when not configured).
export function oidc(config: AppConfig): UserManager | null {
  if (!config.oidc) return null
  if (!manager) {
    manager = new UserManager({
      authority: config.oidc.issuer,
      client_id: config.oidc.client_id,
      redirect_uri: `${location.origin}/auth/callback`,
      post_logout_redirect_uri: `${location.origin}/`,
      response_type: 'code',
      // offline_access: a refresh token, so the session is renewed without a page.
      scope: 'openid profile email offline_access',
      prompt: 'consent',
      userStore: new WebStorageStateStore({ store: localStorage }),
      // Renewal follows the ID token's expiry (the token the API takes), below.
      automaticSilentRenew: false,
      loadUserInfo: false,
    })
    const kept = current()
    if (kept?.via === 'oidc') scheduleRenewal(kept)
  }
  return manager
}

// How long before the ID token expires it is renewed.
const RENEW_AHEAD_MS = 60_000
let renewal: ReturnType<typeof setTimeout> | undefined

/// Renews an OpenID Connect session with its refresh token a minute before its token
/// expires (sooner tokens: a little after now); a refusal (signed out at the provider,
/// the refresh token revoked) leaves it to expire, and the app then asks to sign in.
function scheduleRenewal(session: Session): void {
  clearTimeout(renewal)
  const wait = Math.max(session.expiresAt - RENEW_AHEAD_MS - Date.now(), 5_000)
  renewal = setTimeout(() => {
    if (manager && current()?.token === session.token) void silently(manager)
  }, wait)
}

/// The session renewed with its refresh token, without a page, and saved; null when there
/// is no refresh token or the provider refuses.
async function silently(client: UserManager): Promise<Session | null> {
  const user = await client.getUser().catch(() => null)
  if (!user?.refresh_token) return null
  try {
    const renewed = await client.signinSilent()
    if (!renewed) return null
    const session = fromUser(renewed)
    save(session)
    return session
  } catch (error) {
    console.warn('could not renew the session', error)
    return null
  }
}

function fromUser(user: User): Session {
  const profile = user.profile
  const token = user.id_token
  if (!token) throw new Error('the identity provider sent no ID token')
  return {
    token,
    userId: profile.sub,
    name: (profile.name as string | undefined) ?? (profile.email as string | undefined) ?? profile.sub,
    expiresAt: (profile.exp ?? user.expires_at ?? 0) * 1000,
    via: 'oidc',
  }
}

/// Completes a sign-in that the provider sent back to /auth/callback; where the person
/// was when they set off.
export async function completeSignIn(config: AppConfig): Promise<string> {
  const client = oidc(config)
  if (!client) throw new Error('OpenID Connect sign-in is not configured on this server')
  const user = await client.signinRedirectCallback()
  save(fromUser(user))
  return typeof user.state === 'string' && user.state.startsWith('/') && !user.state.startsWith('//') ? user.state : '/'
}

/// An expired OpenID Connect session renewed without a page (the refresh token); null
/// when there is none to renew or the provider refuses.
export async function renew(config: AppConfig): Promise<Session | null> {
  const client = oidc(config)
  return client ? silently(client) : null
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
