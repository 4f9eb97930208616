// The web app in a real browser (Debian's chromium, driven by playwright-core) against a
// real collab started with --dev-login. Driven by the Rust test `web::…`; prints one JSON
// line of findings on success, exits 1 with the reason on failure.
//   COLLAB_URL=http://127.0.0.1:7700 node web.mjs
// Optional: COLLAB_SCREENSHOT=path.png (two people in one document), CHROMIUM=/usr/bin/chromium.
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { axe as axeCheck, fail, launch, run, WAIT } from './browser.mjs'

const base = process.env.COLLAB_URL ?? 'http://127.0.0.1:7700'
const findings = { axe: {}, timings: {} }
const axe = (page, screen) => axeCheck(page, screen, findings)
const browser = await launch()

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
/// Puts the caret at the start of the text, and makes sure it is there: a transaction the
/// editor dispatches (a remote caret moving, say) before it has read a caret moved by the
/// keyboard puts the old one back, which a loaded machine makes likely.
async function caretToStart(who) {
  await editorOf(who.page).click()
  const deadline = Date.now() + WAIT
  for (;;) {
    await who.page.keyboard.press('Control+Home')
    const atStart = await who.page.evaluate(() => {
      const selection = getSelection()
      const first = document.querySelector('.prose p')
      if (!selection?.isCollapsed || !first?.contains(selection.anchorNode)) return false
      const before = document.createRange()
      before.setStart(first, 0)
      before.setEnd(selection.anchorNode, selection.anchorOffset)
      return before.toString() === ''
    })
    if (atStart) return
    if (Date.now() > deadline) fail(`${who.name}'s caret never reaches the start of the text`)
    await who.page.waitForTimeout(100)
  }
}

async function syncState(page, state, who) {
  await page
    .waitForFunction((s) => document.querySelector('.sync')?.dataset.state === s, state, { timeout: WAIT })
    .catch(async () => fail(`${who}: sync state never "${state}" (it is "${await page.locator('.sync').textContent()}")`))
}

await run(browser, findings, async () => {
  // The budget: the JavaScript the first page loads, gzipped, under 400 KB.
  {
    const page = await (await fetch(base)).text()
    const scripts = [...page.matchAll(/(?:src|href)="(\/[^"]+\.js)"/g)].map((m) => m[1])
    let bytes = 0
    for (const script of scripts) bytes += gzipSync(Buffer.from(await (await fetch(`${base}${script}`)).arrayBuffer())).length
    findings.initial_js_gzip_bytes = bytes
    if (scripts.length === 0 || bytes > 400 * 1024) fail(`initial JavaScript: ${scripts.join(', ')}: ${bytes} bytes gzipped`)
  }
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
  findings.workspace = workspace

  // Ben joins the workspace (members edit its documents); the document is shared with Cleo
  // as a viewer.
  const ben = await person('Ben Okri')
  const cleo = await person('Cleo Vance', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
  // Through the app's Share panel.
  await ada.page.getByRole('button', { name: 'Share', exact: true }).click()
  await ada.page.getByLabel('Add member (user id)').fill(ben.userId)
  await ada.page.getByRole('button', { name: 'Add', exact: true }).click()
  await ada.page.getByText(`${ben.userId} added to the workspace.`).waitFor({ timeout: WAIT })
  await ada.page.getByLabel('Share with (user id)').fill(cleo.userId)
  await ada.page.locator('#share-role').selectOption('viewer')
  await ada.page.getByRole('button', { name: 'Share', exact: true }).nth(1).click()
  await ada.page.getByText(`${cleo.userId} — viewer`).waitFor({ timeout: WAIT })
  await axe(ada.page, 'share-panel')
  await ada.page.getByRole('button', { name: 'Share', exact: true }).first().click()

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
  // Ada names this version in the History panel (restored at the end).
  await ada.page.getByRole('button', { name: 'History', exact: true }).click()
  await ada.page.getByLabel('Name this version').fill('First draft')
  await ada.page.getByRole('button', { name: 'Save name' }).click()
  await ada.page
    .locator('.history > li', { hasText: 'named version “First draft”' })
    .waitFor({ timeout: WAIT })
    .catch(() => fail('the named version is not in the history'))
  await ada.page.getByRole('button', { name: 'History', exact: true }).click()
  // Back in the text (a caret is shown while its editor has the focus).
  await editorOf(ada.page).click()
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

  // Comments. Ben has the Comments panel open; Ada selects "Hello" and comments on it,
  // mentioning Ben through the autocomplete; Ben sees the thread and its mark in his text
  // live, replies and reacts; Ada sees both live.
  await ben.page.getByRole('button', { name: /^Comments/ }).click()
  await ben.page.getByText('No open comments.').waitFor({ timeout: WAIT })
  await caretToStart(ada)
  for (let i = 0; i < 5; i++) await ada.page.keyboard.press('Shift+ArrowRight')
  await ada.page.getByRole('button', { name: 'Comment', exact: true }).click()
  const draft = ada.page.locator('.draft')
  await draft.locator('blockquote', { hasText: 'Hello' }).waitFor({ timeout: WAIT })
  await draft.getByLabel('Comment').pressSequentially('Is this the greeting, @Ben')
  await draft.getByRole('option', { name: /Ben/ }).waitFor({ timeout: WAIT }).catch(() => fail('no one is offered for @Ben'))
  await draft.getByLabel('Comment').press('Enter')
  await draft.getByLabel('Comment').pressSequentially('what do you think?')
  const body = await draft.getByLabel('Comment').inputValue()
  if (body !== `Is this the greeting, <@${ben.userId}> what do you think?`) fail(`the mention was written as ${JSON.stringify(body)}`)
  await axe(ada.page, 'comments-panel')
  await draft.getByRole('button', { name: 'Comment' }).click()
  const adaThread = ada.page.locator('.thread', { hasText: 'Is this the greeting' })
  await adaThread.waitFor({ timeout: WAIT }).catch(() => fail('Ada does not see her thread'))
  const benThread = ben.page.locator('.thread', { hasText: 'Is this the greeting' })
  await benThread.waitFor({ timeout: WAIT }).catch(() => fail('the thread never reaches Ben live'))
  await benThread.locator('.mention', { hasText: '@Ben' }).waitFor({ timeout: WAIT })
  for (const who of [ada, ben]) {
    await who.page
      .locator('.prose .comment-mark', { hasText: 'Hello' })
      .waitFor({ timeout: WAIT })
      .catch(async () => fail(`${who.name} does not see the passage marked (marks: ${await who.page.locator('.prose .comment-mark').allTextContents()})`))
    const marked = (await who.page.locator('.prose .comment-mark').allTextContents()).join('')
    if (marked !== 'Hello') fail(`${who.name} sees "${marked}" marked, not "Hello"`)
  }
  await ben.page
    .locator('.bell .badge', { hasText: '1' })
    .waitFor({ timeout: WAIT })
    .catch(() => fail('Ben is never told he was mentioned'))
  await benThread.getByLabel('Reply').fill('Yes, keep it.')
  await benThread.getByRole('button', { name: 'Reply' }).click()
  await benThread.getByRole('button', { name: 'React 👍 (0)' }).first().click()
  await adaThread.getByText('Yes, keep it.').waitFor({ timeout: WAIT }).catch(() => fail('the reply never reaches Ada live'))
  await adaThread.getByRole('button', { name: 'React 👍 (1)' }).waitFor({ timeout: WAIT }).catch(() => fail('the reaction never reaches Ada'))
  // The passage follows the text: Ben types before it; both still mark "Hello".
  await caretToStart(ben)
  await ben.page.keyboard.type('Well. ')
  await waitText(ada.page, 'Well. Hello', 'Ada')
  for (const who of [ada, ben]) {
    await who.page
      .waitForFunction(() => [...document.querySelectorAll('.prose .comment-mark')].map((m) => m.textContent).join('') === 'Hello', null, { timeout: WAIT })
      .catch(async () => fail(`${who.name}'s mark moved off "Hello": ${await who.page.locator('.prose .comment-mark').allTextContents()}`))
  }
  if (process.env.COLLAB_SCREENSHOT) {
    await ada.page.screenshot({ path: process.env.COLLAB_SCREENSHOT })
  }
  // Ada resolves it: it leaves Ben's open threads and his text.
  await adaThread.getByRole('button', { name: /^Resolve/ }).click()
  await ben.page.getByText('No open comments.').waitFor({ timeout: WAIT }).catch(() => fail('the resolved thread stays in Ben\'s list'))
  await ben.page
    .locator('.prose .comment-mark')
    .waitFor({ state: 'detached', timeout: WAIT })
    .catch(() => fail('the resolved thread is still marked in Ben\'s text'))
  await ben.page.getByLabel('Show resolved').check()
  await benThread.getByRole('button', { name: /^Reopen/ }).waitFor({ timeout: WAIT })
  await ben.page.getByRole('button', { name: /^Comments/ }).click()
  await ada.page.getByRole('button', { name: /^Comments/ }).click()

  // Ada drops a picture onto the text: it goes to the file store with its progress shown,
  // is checked and attached, and both see it in the text.
  await editorOf(ada.page).click()
  await ada.page.keyboard.press('Control+End')
  const picture = await ada.page.evaluateHandle((base64) => {
    const data = new DataTransfer()
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
    data.items.add(new File([bytes], 'pixel.png', { type: 'image/png' }))
    return data
  }, 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')
  const box = await editorOf(ada.page).boundingBox()
  await editorOf(ada.page).dispatchEvent('drop', { dataTransfer: picture, clientX: box.x + 20, clientY: box.y + 12 })
  await ada.page
    .locator('.uploads li', { hasText: 'pixel.png' })
    .waitFor({ timeout: WAIT })
    .catch(() => fail('the dropped file is not shown uploading'))
  await ada.page
    .locator('.uploads li', { hasText: 'Attached' })
    .waitFor({ timeout: WAIT })
    .catch(async () => fail(`the upload did not finish: ${await ada.page.locator('.uploads').innerText()}`))
  for (const who of [ada, ben]) {
    await who.page
      .waitForFunction(() => {
        const img = document.querySelector('.prose img')
        return !!img && img.complete && img.naturalWidth === 1
      }, null, { timeout: WAIT })
      .catch(async () => fail(`${who.name} does not see the picture (${await who.page.locator('.prose').innerHTML()})`))
  }
  const attachments = await api(ada, 'GET', `/v1/documents/${documentId}/attachments`)
  findings.attachments = attachments

  // Cleo, a viewer on a phone-sized screen: the share reaches her notification centre live;
  // she opens the document from it, reads, cannot type, and nothing overflows.
  await cleo.page
    .locator('.bell .badge', { hasText: '1' })
    .waitFor({ timeout: WAIT })
    .catch(() => fail('Cleo is never told of the share (no unread count)'))
  await cleo.page.getByRole('button', { name: /Notifications/ }).click()
  await cleo.page.getByRole('link', { name: /shared “Plan” with you \(viewer\)/ }).click()
  await cleo.page.waitForURL(`${base}/d/${documentId}`, { timeout: WAIT })
  await waitText(cleo.page, 'Hi from Ben.', 'Cleo')
  await cleo.page.getByText('View only').waitFor({ timeout: WAIT })
  if ((await editorOf(cleo.page).getAttribute('contenteditable')) !== 'false') fail('the viewer can edit')
  await editorOf(cleo.page).tap()
  await cleo.page.keyboard.type('VIEWER WAS HERE')
  const overflow = await cleo.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  if (overflow > 0) fail(`the editor overflows a phone's width by ${overflow} px`)
  await axe(cleo.page, 'editor-phone')
  // A viewer reads the comments but cannot write one.
  await cleo.page.getByRole('button', { name: /^Comments/ }).tap()
  await cleo.page.getByText('No open comments.').waitFor({ timeout: WAIT })
  if ((await cleo.page.locator('.comments button, .comments textarea').count()) > 0) fail('the viewer is offered to comment')
  await cleo.page.getByRole('button', { name: /^Comments/ }).tap()

  // Ben goes offline, keeps typing; Ada types too; Ben comes back: both converge.
  // The app is installable: a manifest, and a service worker that keeps the app shell.
  const manifest = await (await fetch(`${base}/manifest.webmanifest`)).json()
  if (manifest.start_url !== '/' || manifest.display !== 'standalone') fail(`manifest: ${JSON.stringify(manifest)}`)
  await ben.page
    .waitForFunction(() => navigator.serviceWorker?.controller !== null, null, { timeout: WAIT })
    .catch(() => fail('no service worker controls the page'))
  await ben.context.setOffline(true)
  await syncState(ben.page, 'offline', 'Ben')
  await editorOf(ben.page).click()
  await ben.page.keyboard.press('End')
  await ben.page.keyboard.type(' Written offline.')
  // Once the app says it is kept on this device (not before), a reload keeps it.
  await syncState(ben.page, 'offline', 'Ben, after typing offline')
  // Reloaded while offline, the app opens from the device, with what he typed.
  await ben.page.reload()
  await waitText(ben.page, 'Written offline.', 'Ben, reloaded offline')
  await syncState(ben.page, 'offline', 'Ben, reloaded offline')
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
  findings.before_restore = adaText

  // Export from the app: the Markdown holds what is shown.
  await ada.page.getByRole('button', { name: 'Export', exact: true }).click()
  const [download] = await Promise.all([
    ada.page.waitForEvent('download', { timeout: WAIT }),
    ada.page.getByRole('button', { name: 'Markdown' }).click(),
  ])
  const markdown = readFileSync(await download.path(), 'utf8')
  if (!markdown.includes('Hello from Ada.') || !download.suggestedFilename().endsWith('.md')) {
    fail(`the Markdown export (${download.suggestedFilename()}) holds ${JSON.stringify(markdown)}`)
  }
  await ada.page.getByRole('button', { name: 'Export', exact: true }).click()

  // Ada compares her named version with now and restores it from the History panel: Ben's
  // editor shows it.
  await ada.page.getByRole('button', { name: 'History', exact: true }).click()
  const named = ada.page.locator('.history > li', { hasText: 'named version “First draft”' })
  await named.getByRole('button', { name: 'Compare with now' }).click()
  await ada.page.locator('.diff ins', { hasText: 'Hi from Ben.' }).first().waitFor({ timeout: WAIT })
  await axe(ada.page, 'history-panel')
  await named.getByRole('button', { name: 'Restore' }).click()
  await ada.page.getByText(/Restored to version/).waitFor({ timeout: WAIT })
  await ben.page
    .waitForFunction(() => !document.querySelector('.prose')?.textContent.includes('Hi from Ben.'), null, { timeout: WAIT })
    .catch(async () => fail(`Ben still sees "${await docText(ben.page)}" after the restore`))
  await waitText(ben.page, 'Hello from Ada.', 'Ben')
  findings.text = await docText(ben.page)
  if ((await docText(ada.page)) !== findings.text) fail('Ada and Ben differ after the restore')
  // Cleo read her notification by opening it.
  await cleo.page
    .locator('.bell .badge:empty')
    .waitFor({ state: 'attached', timeout: WAIT })
    .catch(() => fail('the opened notification is still unread'))

  // Back to the list: search finds the document; rename, archive and bring it back.
  await ada.page.getByRole('link', { name: '← Documents' }).click()
  await ada.page.getByLabel('Search', { exact: true }).fill('Hello')
  await ada.page
    .getByRole('list', { name: 'Search results' })
    .getByRole('link', { name: 'Plan' })
    .waitFor({ timeout: WAIT })
    .catch(() => fail('search never finds the document'))
  ada.page.once('dialog', (dialog) => dialog.accept('Roadmap'))
  await ada.page.getByRole('button', { name: 'Rename Plan' }).click()
  await ada.page.getByRole('link', { name: 'Roadmap' }).waitFor({ timeout: WAIT })
  await ada.page.getByRole('button', { name: 'Archive Roadmap' }).click()
  await ada.page.getByText('No documents yet.').waitFor({ timeout: WAIT })
  await ada.page.getByLabel('Show archived documents').check()
  await ada.page.getByRole('button', { name: 'Restore Roadmap' }).click()
  await ada.page.getByText('No archived documents.').waitFor({ timeout: WAIT })
  await ada.page.getByLabel('Show archived documents').uncheck()
  await ada.page.getByRole('link', { name: 'Roadmap' }).waitFor({ timeout: WAIT })
  await axe(ada.page, 'documents-with-search')

  await cleo.context.close()
  await ada.context.close()
  await ben.context.close()
})
