// A real OpenID provider (npm oidc-provider) for the web app's sign-in tests: the
// authorisation code flow with PKCE for one public client (the app at COLLAB_URL), its own
// login and consent pages (any login, any password; the login is the subject, its name
// claim the login in title case), refresh tokens, and RP-initiated sign-out. ID and
// access tokens live OIDC_TOKEN_TTL seconds (default 75), so renewal shows within a test.
// Prints one JSON line {issuer} once it listens; runs until killed.
//   COLLAB_URL=http://127.0.0.1:7700 node oidc.mjs
import { createServer } from 'node:http'
import Provider from 'oidc-provider'

const app = process.env.COLLAB_URL ?? 'http://127.0.0.1:7700'
const ttl = Number(process.env.OIDC_TOKEN_TTL ?? 75)
const server = createServer()
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const issuer = `http://127.0.0.1:${server.address().port}`

const title = (login) => login.replace(/(^|[-_. ])(\p{L})/gu, (_, sep, c) => `${sep === '' ? '' : ' '}${c.toUpperCase()}`).trim()

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'collab-web',
      token_endpoint_auth_method: 'none',
      application_type: 'web',
      redirect_uris: [`${app}/auth/callback`],
      post_logout_redirect_uris: [`${app}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
  ],
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: title(id), email: `${id}@example.test` }
      },
    }
  },
  claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  ttl: { AccessToken: ttl, IdToken: ttl, RefreshToken: 3600, Grant: 3600, Session: 3600, Interaction: 600 },
  cookies: { keys: ['collab-tests-only'] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  // The name and e-mail in the ID token too (as Auth0 and Keycloak put them there).
  conformIdTokenClaims: false,
  // The app is a browser app on another port of the same host.
  clientBasedCORS: () => true,
})
// Loopback over plain HTTP is what the tests have.
provider.proxy = false
server.on('request', provider.callback())
console.log(JSON.stringify({ issuer }))
