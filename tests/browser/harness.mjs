// What the browser walk-throughs share: environment, logging, a phone-sized
// headless Chromium page that echoes browser errors, and the main wrapper
// (overall timeout, one JSON line on success, exit codes).

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export function env(name, required = true) {
  const v = process.env[name];
  if (required && !v) throw new Error(`environment variable ${name} is required`);
  return v || null;
}

export function logger(tag) {
  return (...args) => process.stderr.write(`[${tag}] ${args.join(' ')}\n`);
}

let browser = null;

/** Launches Chromium and opens a 390x844 touch page. */
export async function openPage({ log, stepTimeoutMs, acceptDownloads = false }) {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: stepTimeoutMs,
  });
  const context = await browser.newContext({
    acceptDownloads,
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
    isMobile: false,
    hasTouch: true,
  });
  context.setDefaultTimeout(stepTimeoutMs);
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const loc = msg.location();
      log(`console error: ${msg.text()}${loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
    }
  });
  page.on('pageerror', (err) => log(`page error: ${err && err.stack ? err.stack : err}`));
  page.on('requestfailed', (req) => {
    // Aborted fetches on navigation are expected; report everything else.
    const f = req.failure();
    if (f && !/ERR_ABORTED/.test(f.errorText)) log(`request failed: ${req.method()} ${req.url()} ${f.errorText}`);
  });
  return { browser, context, page };
}

/** Opens the page and logs in with `token`; returns the name shown. */
export async function logIn(page, baseUrl, token, log) {
  log(`open ${baseUrl}/`);
  await page.goto(`${baseUrl}/`, { waitUntil: 'domcontentloaded' });
  await page.locator('#token').fill(token);
  await page.locator('#login').click();
  await page.waitForFunction(() => {
    const err = document.querySelector('#login-error');
    if (err && err.textContent.trim()) throw new Error(`login error: ${err.textContent.trim()}`);
    const user = document.querySelector('#user');
    return user && user.textContent.trim() !== '';
  });
  const user = (await page.locator('#user').textContent()).trim();
  log(`logged in as ${user}`);
  return user;
}

export async function closeBrowser() {
  if (!browser) return;
  const b = browser;
  browser = null;
  await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
}

/** Runs `run`; prints its result as one JSON line and exits 0, or reports and exits 1. */
export async function main(name, overallTimeoutMs, run) {
  let timedOut = false;
  const timer = setTimeout(async () => {
    timedOut = true;
    process.stderr.write(`${name}: overall timeout of ${overallTimeoutMs / 1000} s exceeded\n`);
    await closeBrowser();
    process.exit(1);
  }, overallTimeoutMs);
  try {
    const result = await run();
    clearTimeout(timer);
    await closeBrowser();
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  } catch (err) {
    clearTimeout(timer);
    if (timedOut) await new Promise(() => {}); // the timeout handler reports and exits
    process.stderr.write(`${name}: FAILED: ${err && err.stack ? err.stack : err}\n`);
    await closeBrowser();
    process.exit(1);
  }
}
