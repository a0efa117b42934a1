// Headless-browser walk-through of the officer page.
//
// Run by a Rust integration test as `node tests/browser/officer.mjs` with:
//   BASE_URL         e.g. http://127.0.0.1:8123 (required)
//   TOKEN            an officer (or admin) token (required)
//   DOWNLOAD_PATH    where to save the evidence bundle ZIP (required)
//   SCREENSHOT_PATH  optional full-page screenshot of the final detail view
//
// On success prints one JSON line to stdout, e.g.
//   {"ok":true,"violation":"v-…","images":6,"review_status":"confirmed","bundle_bytes":12345}
// and exits 0. On failure prints the error to stderr and exits 1.
// Browser console errors and uncaught page errors are echoed to stderr.

import { chromium } from 'playwright-core';
import { stat, readFile } from 'node:fs/promises';

const OVERALL_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

function env(name, required = true) {
  const v = process.env[name];
  if (required && !v) throw new Error(`environment variable ${name} is required`);
  return v || null;
}

function log(...args) {
  process.stderr.write(`[officer] ${args.join(' ')}\n`);
}

let browser = null;

async function run() {
  const baseUrl = env('BASE_URL').replace(/\/+$/, '');
  const token = env('TOKEN');
  const downloadPath = env('DOWNLOAD_PATH');
  const screenshotPath = env('SCREENSHOT_PATH', false);

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
    timeout: STEP_TIMEOUT_MS,
  });
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
    isMobile: false,
    hasTouch: true,
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();

  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const loc = msg.location();
      log(`console error: ${msg.text()}${loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
    }
  });
  page.on('pageerror', (err) => log(`page error: ${err && err.stack ? err.stack : err}`));
  page.on('requestfailed', (req) => {
    // Aborted image fetches on navigation are expected; report everything else.
    const f = req.failure();
    if (f && !/ERR_ABORTED/.test(f.errorText)) log(`request failed: ${req.method()} ${req.url()} ${f.errorText}`);
  });

  // 1. Log in.
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

  // 2. List: at least one row with a loaded thumbnail.
  const firstRow = page.locator('.violation').first();
  await firstRow.waitFor({ state: 'visible' });
  const id = await firstRow.getAttribute('data-id');
  if (!id) throw new Error('first .violation row has no data-id');
  await page.waitForFunction(() => {
    const img = document.querySelector('.violation img.thumb');
    return !!img && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:');
  });
  const pageInfo = ((await page.locator('#page-info').textContent()) || '').trim();
  log(`list shows ${pageInfo}; first violation ${id}, thumbnail loaded`);

  // 3. Detail: evidence images (annotated + original) loaded.
  await firstRow.click();
  await page.waitForFunction(
    (vid) => location.hash === `#/v/${encodeURIComponent(vid)}`, id);
  await page.waitForFunction(() => {
    const loaded = (variant) => [...document.querySelectorAll(`img.evidence[data-variant="${variant}"]`)]
      .some((img) => img.complete && img.naturalWidth > 0);
    return loaded('annotated') && loaded('original');
  });
  // Let the remaining evidence images settle (loaded or marked broken), then count the loaded ones.
  await page.waitForFunction(() => [...document.querySelectorAll('img.evidence')]
    .every((img) => (img.complete && img.naturalWidth > 0) || img.classList.contains('broken')));
  const images = await page.evaluate(() => [...document.querySelectorAll('img.evidence')]
    .filter((img) => img.naturalWidth > 0).length);
  const brokenImages = await page.locator('img.evidence.broken').count();
  if (brokenImages > 0) log(`warning: ${brokenImages} evidence image(s) failed to load`);
  log(`detail ${id}: ${images} evidence image(s) loaded`);

  // 4. Review: confirm with a note, wait for the re-rendered status and history entry.
  const note = 'seen on site';
  if (await page.locator('#review-note').count() === 0) {
    throw new Error(`no review box on the detail page — is ${user} an officer/admin token?`);
  }
  await page.locator('#review-note').fill(note);
  await page.locator('button.review[data-status="confirmed"]').click();
  await page.waitForFunction(() => {
    const banner = document.querySelector('#error');
    if (banner && !banner.hidden) throw new Error(`error banner: ${banner.textContent.trim()}`);
    const s = document.querySelector('#review-status');
    return !!s && s.textContent.trim() === 'confirmed';
  });
  await page.locator('.review-entry', { hasText: note }).first().waitFor({ state: 'visible' });
  const reviewStatus = (await page.locator('#review-status').textContent()).trim();
  log(`review saved: ${reviewStatus}`);

  // 5. Download the evidence bundle.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#download-bundle').click(),
  ]);
  const failure = await download.failure();
  if (failure) throw new Error(`bundle download failed: ${failure}`);
  await download.saveAs(downloadPath);
  const suggested = download.suggestedFilename();
  if (suggested !== `${id}.zip`) throw new Error(`bundle filename is ${JSON.stringify(suggested)}, expected ${id}.zip`);
  const bundleBytes = (await stat(downloadPath)).size;
  const head = (await readFile(downloadPath)).subarray(0, 4);
  if (bundleBytes < 22 || head[0] !== 0x50 || head[1] !== 0x4b) {
    throw new Error(`bundle at ${downloadPath} is not a ZIP (${bundleBytes} bytes)`);
  }
  log(`bundle saved to ${downloadPath} (${bundleBytes} bytes)`);

  if (screenshotPath) {
    await page.screenshot({ path: screenshotPath, fullPage: true });
    log(`screenshot saved to ${screenshotPath}`);
  }

  await context.close();
  await browser.close();
  browser = null;

  return {
    ok: true,
    violation: id,
    images,
    review_status: reviewStatus,
    bundle_bytes: bundleBytes,
  };
}

async function closeBrowser() {
  if (!browser) return;
  const b = browser;
  browser = null;
  await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
}

let timedOut = false;
const timer = setTimeout(async () => {
  timedOut = true;
  process.stderr.write(`officer.mjs: overall timeout of ${OVERALL_TIMEOUT_MS / 1000} s exceeded\n`);
  await closeBrowser();
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

try {
  const result = await run();
  clearTimeout(timer);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  clearTimeout(timer);
  if (timedOut) await new Promise(() => {}); // the timeout handler reports and exits
  process.stderr.write(`officer.mjs: FAILED: ${err && err.stack ? err.stack : err}\n`);
  await closeBrowser();
  process.exit(1);
}
