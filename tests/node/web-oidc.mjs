// The web app's OpenID Connect sign-in in a real browser, against a real collab started
// with COLLAB_OIDC_ISSUER / COLLAB_OIDC_CLIENT_ID and a real OpenID provider (oidc.mjs):
// sign in there (authorisation code flow with PKCE), use the API with the provider's
// token, see it renewed silently before it expires, sign out (at the provider too).
// Driven by the Rust test `web::…`; prints one JSON line of findings on success, exits 1
// with the reason on failure.
//   COLLAB_URL=http://127.0.0.1:7700 node web-oidc.mjs
import { axe, fail, launch, run, WAIT } from './browser.mjs'

const base = process.env.COLLAB_URL ?? 'http://127.0.0.1:7700'
const findings = { axe: {} }
const browser = await launch()
const stored = () => JSON.parse(localStorage.getItem('collab.session') ?? 'null')

await run(browser, findings, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await context.newPage()
  page.on('pageerror', (error) => console.error(`page error: ${error.message}`))
  await page.goto(base)
  const signIn = page.getByRole('button', { name: /^Sign in with 127\.0\.0\.1:\d+$/ })
  await signIn.waitFor({ timeout: WAIT }).catch(() => fail('no sign-in with the OpenID provider is offered'))
  if ((await page.getByLabel('Your name').count()) > 0) fail('development sign-in is offered without --dev-login')
  await axe(page, 'sign-in-oidc', findings)

  // At the provider: its login page, then its consent page; back in the app, signed in.
  await signIn.click()
  await page.locator('input[name="login"]').fill('grace-hopper', { timeout: WAIT })
  await page.locator('input[name="password"]').fill('any password')
  await page.getByRole('button', { name: 'Sign-in' }).click()
  await page.getByRole('button', { name: 'Continue' }).click({ timeout: WAIT })
  await page.waitForURL(`${base}/`, { timeout: WAIT })
  await page.locator('.me-name', { hasText: 'Grace Hopper' }).waitFor({ timeout: WAIT })
  const first = await page.evaluate(stored)
  const signedInAt = Date.now()
  if (first.via !== 'oidc' || first.userId !== 'grace-hopper') fail(`the session is ${JSON.stringify(first)}`)
  const claims = JSON.parse(Buffer.from(first.token.split('.')[1], 'base64url').toString())
  findings.user_id = first.userId
  findings.token = { iss: claims.iss, aud: claims.aud, alg: JSON.parse(Buffer.from(first.token.split('.')[0], 'base64url').toString()).alg }

  // The API takes the provider's token.
  await page.getByLabel('New workspace').fill('Navy')
  await page.getByRole('button', { name: 'Create workspace' }).click()
  await page.getByRole('heading', { name: 'Navy' }).waitFor({ timeout: WAIT })

  // Renewed without a page before it expires (the refresh token), and the new token works
  // on the API and the sync socket.
  const renewed = await page
    .waitForFunction((old) => {
      const now = JSON.parse(localStorage.getItem('collab.session') ?? 'null')
      return now && now.token !== old ? now.token : null
    }, first.token, { timeout: 90_000, polling: 500 })
    .catch(() => fail('the session was never renewed'))
  findings.renewed_after_ms = Date.now() - signedInAt
  if ((await renewed.jsonValue()) === first.token) fail('the renewed token is the old one')
  if (page.url() !== `${base}/`) fail(`renewal left the page: ${page.url()}`)
  await page.getByLabel('New document').fill('Compiler notes')
  await page.getByRole('button', { name: 'Create document' }).click()
  await page.waitForURL(/\/d\/[0-9a-f-]{36}$/, { timeout: WAIT })
  await page.locator('.prose[contenteditable="true"]').click({ timeout: WAIT })
  await page.keyboard.type('Signed in at the provider.')
  await page.locator('.sync[data-state="saved"]').waitFor({ timeout: WAIT }).catch(() => fail('the edit is never saved'))
  findings.document = page.url().split('/d/')[1]

  // Sign out: at the provider too, and back to the app's sign-in screen.
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('button', { name: 'Yes, sign me out' }).click({ timeout: WAIT })
  await page.waitForURL(`${base}/`, { timeout: WAIT })
  await signIn.waitFor({ timeout: WAIT }).catch(() => fail('after signing out the sign-in screen is not shown'))
  if ((await page.evaluate(stored)) !== null) fail('the session is still on the device after signing out')
  // The provider's session ended: signing in again asks who you are.
  await signIn.click()
  await page.locator('input[name="login"]').waitFor({ timeout: WAIT }).catch(() => fail('the provider did not sign Grace out'))

  await context.close()
})
