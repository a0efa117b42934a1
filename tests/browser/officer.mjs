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

import { env, logIn, logger, main, openPage } from './harness.mjs';
import { stat, readFile } from 'node:fs/promises';

const OVERALL_TIMEOUT_MS = 150_000;
const STEP_TIMEOUT_MS = 20_000;

const log = logger('officer');

async function run() {
  const baseUrl = env('BASE_URL').replace(/\/+$/, '');
  const token = env('TOKEN');
  const downloadPath = env('DOWNLOAD_PATH');
  const screenshotPath = env('SCREENSHOT_PATH', false);

  const { page } = await openPage({ log, stepTimeoutMs: STEP_TIMEOUT_MS, acceptDownloads: true });

  // 1. Log in.
  const user = await logIn(page, baseUrl, token, log);

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

  return {
    ok: true,
    violation: id,
    images,
    review_status: reviewStatus,
    bundle_bytes: bundleBytes,
  };
}

await main('officer.mjs', OVERALL_TIMEOUT_MS, run);
