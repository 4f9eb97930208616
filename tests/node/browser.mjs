// What the browser tests share: Debian's Chromium driven by playwright-core, and axe-core
// (WCAG 2.1 A/AA) run in a page, failing on serious or critical violations.
import { chromium } from 'playwright-core'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')

/// How long any one thing may take to show.
export const WAIT = 30_000

export function fail(message) {
  throw new Error(message)
}

export function launch() {
  return chromium.launch({
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
}

/// Runs axe-core on `page`; its violations go into `findings.axe[screen]`.
export async function axe(page, screen, findings) {
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

/// Runs a scenario in `browser`, then prints `findings` as one JSON line; on failure also
/// the reason and what each open page showed (exit code 1). Closes the browser.
export async function run(browser, findings, scenario) {
  try {
    await scenario()
  } catch (error) {
    console.error(error.message)
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        const text = await page.locator('body').innerText().catch(() => '(closed)')
        console.error(`--- ${page.url()}\n${text.slice(0, 2000)}`)
      }
    }
    process.exitCode = 1
  } finally {
    console.log(JSON.stringify(findings))
    await browser.close()
  }
}
