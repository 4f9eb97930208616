// The web app in a real browser (Debian's chromium, driven by playwright-core) against a
// real collab started with --dev-login. Driven by the Rust test `web::…`; prints one JSON
// line of findings on success, exits 1 with the reason on failure.
//   COLLAB_URL=http://127.0.0.1:7700 node web.mjs
// Optional: COLLAB_SCREENSHOT=path.png (two people in one document), CHROMIUM=/usr/bin/chromium.
import { chromium } from 'playwright-core'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const base = process.env.COLLAB_URL ?? 'http://127.0.0.1:7700'
const require = createRequire(import.meta.url)
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')
const WAIT = 20_000
const findings = { axe: {}, timings: {} }

function fail(message) {
  throw new Error(message)
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // Root in a container needs --no-sandbox; the rest keeps Chromium off the network.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
})

async function person(name, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options })
  const page = await context.newPage()
  page.on('pageerror', (error) => console.error(`[${name}] page error: ${error.message}`))
  await page.goto(base)
  await page.getByLabel('Your name').fill(name)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('.me-name').waitFor({ state: 'attached', timeout: WAIT })
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem('collab.session')))
  return { name, context, page, token: session.token, userId: session.userId }
}

async function api(who, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${who.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  if (!response.ok) fail(`${method} ${path}: ${response.status} ${await response.text()}`)
  return response.status === 204 ? null : response.json()
}

async function axe(page, screen) {
  // Through the debugging protocol: the app's content security policy (rightly) refuses
  // inline scripts, and the app runs under it here as anywhere.
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axeSource)
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  )
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  findings.axe[screen] = result.violations.map((v) => `${v.impact}: ${v.id}`)
  if (bad.length > 0) {
    fail(`${screen}: accessibility violations: ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`).join('; ')}`)
  }
}

const editorOf = (page) => page.locator('.prose')
// The document's text as shown, without other people's caret labels.
const textIn = () => {
  const copy = document.querySelector('.prose')?.cloneNode(true)
  copy?.querySelectorAll('.collaboration-carets__caret').forEach((caret) => caret.remove())
  return copy?.textContent ?? ''
}
const docText = (page) => page.evaluate(textIn)
async function waitText(page, text, who) {
  await page
    .waitForFunction(
      (t) => {
        const copy = document.querySelector('.prose')?.cloneNode(true)
        copy?.querySelectorAll('.collaboration-carets__caret').forEach((caret) => caret.remove())
        return (copy?.textContent ?? '').includes(t)
      },
      text,
      { timeout: WAIT },
    )
    .catch(async () => fail(`${who} never saw "${text}"; they see "${await docText(page).catch(() => '')}"`))
}
async function syncState(page, state, who) {
  await page
    .waitForFunction((s) => document.querySelector('.sync')?.dataset.state === s, state, { timeout: WAIT })
    .catch(async () => fail(`${who}: sync state never "${state}" (it is "${await page.locator('.sync').textContent()}")`))
}

try {
  // Ada signs in, checks the sign-in screen's accessibility on the way, creates a workspace
  // and a document.
  {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(base)
    await page.getByLabel('Your name').waitFor()
    await axe(page, 'sign-in')
    await context.close()
  }
  const ada = await person('Ada Lovelace')
  await ada.page.getByLabel('New workspace').fill('Acme')
  await ada.page.getByRole('button', { name: 'Create workspace' }).click()
  await ada.page.getByRole('heading', { name: 'Acme' }).waitFor({ timeout: WAIT })
  await axe(ada.page, 'documents')
  await ada.page.getByLabel('New document').fill('Plan')
  await ada.page.getByRole('button', { name: 'Create document' }).click()
  await ada.page.waitForURL(/\/d\/[0-9a-f-]{36}$/, { timeout: WAIT })
  const documentId = ada.page.url().split('/d/')[1]
  findings.document = documentId
  await editorOf(ada.page).waitFor({ timeout: WAIT })
  await syncState(ada.page, 'saved', 'Ada')
  const workspace = (await api(ada, 'GET', `/v1/documents/${documentId}`)).workspace_id

  // Ben joins the workspace (members edit its documents); the document is shared with Cleo
  // as a viewer.
  const ben = await person('Ben Okri')
  const cleo = await person('Cleo Vance', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
  await api(ada, 'POST', `/v1/workspaces/${workspace}/members`, { user_id: ben.userId, role: 'member' })
  await api(ada, 'PUT', `/v1/documents/${documentId}/permissions/user:${cleo.userId}`, { role: 'viewer' })

  // Ben opens the document from his list; time until he can type.
  // (His list is read as of the read models; reload until they have folded the membership.)
  const deadline = Date.now() + WAIT
  for (;;) {
    await ben.page.reload()
    // The workspace switcher lists the workspaces he is in; he picks Ada's.
    await ben.page.locator('#workspace').selectOption(workspace, { timeout: 1000 }).catch(() => {})
    const shown = await ben.page.getByRole('link', { name: 'Plan' }).waitFor({ timeout: 1000 }).then(() => true, () => false)
    if (shown) break
    if (Date.now() > deadline) fail('Ben never sees the document in his list')
  }
  const started = Date.now()
  await ben.page.getByRole('link', { name: 'Plan' }).click()
  await ben.page.locator('.prose[contenteditable="true"]').waitFor({ timeout: WAIT })
  await syncState(ben.page, 'saved', 'Ben')
  findings.timings.open_to_editable_ms = Date.now() - started

  // They type; each sees the other's text, caret with name, and avatar.
  await editorOf(ada.page).click()
  await ada.page.keyboard.type('Hello from Ada. ')
  await waitText(ben.page, 'Hello from Ada.', 'Ben')
  await editorOf(ben.page).click()
  await ben.page.keyboard.press('End')
  await ben.page.keyboard.type('Hi from Ben.')
  await waitText(ada.page, 'Hi from Ben.', 'Ada')
  for (const [who, other] of [
    [ada, ben],
    [ben, ada],
  ]) {
    await who.page
      .locator('.collaboration-carets__label', { hasText: other.name })
      .waitFor({ timeout: WAIT })
      .catch(() => fail(`${who.name} does not see ${other.name}'s caret`))
    const colour = await who.page
      .locator('.collaboration-carets__label', { hasText: other.name })
      .first()
      .evaluate((label) => getComputedStyle(label).backgroundColor)
    if (colour === 'rgba(0, 0, 0, 0)' || colour === 'transparent') {
      fail(`${other.name}'s caret is invisible to ${who.name} (no colour)`)
    }
    await who.page
      .locator(`.people li[title^="${other.name}"]`)
      .waitFor({ timeout: WAIT })
      .catch(() => fail(`${who.name} does not see ${other.name} among the people here`))
  }
  await syncState(ada.page, 'saved', 'Ada')
  await syncState(ben.page, 'saved', 'Ben')
  await axe(ada.page, 'editor')
  if (process.env.COLLAB_SCREENSHOT) {
    await ada.page.screenshot({ path: process.env.COLLAB_SCREENSHOT })
  }

  // Cleo, a viewer on a phone-sized screen: she reads, cannot type, nothing overflows.
  await cleo.page.goto(`${base}/d/${documentId}`)
  await waitText(cleo.page, 'Hi from Ben.', 'Cleo')
  await cleo.page.getByText('View only').waitFor({ timeout: WAIT })
  if ((await editorOf(cleo.page).getAttribute('contenteditable')) !== 'false') fail('the viewer can edit')
  await editorOf(cleo.page).tap()
  await cleo.page.keyboard.type('VIEWER WAS HERE')
  const overflow = await cleo.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  if (overflow > 0) fail(`the editor overflows a phone's width by ${overflow} px`)
  await axe(cleo.page, 'editor-phone')

  // Ben goes offline, keeps typing; Ada types too; Ben comes back: both converge.
  await ben.context.setOffline(true)
  await syncState(ben.page, 'offline', 'Ben')
  await editorOf(ben.page).click()
  await ben.page.keyboard.press('End')
  await ben.page.keyboard.type(' Written offline.')
  await editorOf(ada.page).click()
  await ada.page.keyboard.press('End')
  await ada.page.keyboard.type(' Ada meanwhile.')
  await ben.context.setOffline(false)
  await waitText(ada.page, 'Written offline.', 'Ada')
  await waitText(ben.page, 'Ada meanwhile.', 'Ben')
  await syncState(ben.page, 'saved', 'Ben')
  const adaText = await docText(ada.page)
  const benText = await docText(ben.page)
  if (adaText !== benText) fail(`Ada and Ben differ: "${adaText}" vs "${benText}"`)
  findings.text = adaText
  await cleo.context.close()
  await ada.context.close()
  await ben.context.close()
  console.log(JSON.stringify(findings))
} catch (error) {
  console.error(error.message)
  // What each open page showed, for the failure's reader.
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      const text = await page.locator('body').innerText().catch(() => '(closed)')
      console.error(`--- ${page.url()}\n${text.slice(0, 2000)}`)
    }
  }
  console.log(JSON.stringify(findings))
  process.exitCode = 1
} finally {
  await browser.close()
}
