// A newcomer's first minute: open the link `firelane demo` printed (it
// carries the token), and watch violations appear while the demo feeds.
//
// Run by tests/demo.rs as `node tests/browser/newcomer.mjs` with:
//   PAGE_URL         the link, e.g. http://127.0.0.1:8123/#token=flt_… (required)
//   MIN_VIOLATIONS   how many rows to wait for (required)
//   SCREENSHOT_PATH  optional screenshot of the list and of the zones view
//
// Prints one JSON line: {"ok":true,"user":"demo (admin)","violations":3,"zones":3,"token_left_in_url":false}

import { env, logger, main, openPage } from './harness.mjs';

const log = logger('newcomer');

async function run() {
  const pageUrl = env('PAGE_URL');
  const min = Number(env('MIN_VIOLATIONS'));
  const shot = env('SCREENSHOT_PATH', false);
  const { page } = await openPage({ log, stepTimeoutMs: 60_000 });

  log(`open ${pageUrl.replace(/#token=.*/, '#token=…')}`);
  await page.goto(pageUrl, { waitUntil: 'domcontentloaded' });
  // Logged in by the link alone: no form filled.
  await page.waitForFunction(() => (document.querySelector('#user')?.textContent || '').trim() !== '');
  const user = (await page.locator('#user').textContent()).trim();
  const tokenLeft = page.url().includes('token=');
  log(`logged in as ${user}; token left in the address bar: ${tokenLeft}`);

  // The list refreshes when asked; a newcomer presses reload.
  let rows = 0;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    rows = await page.locator('.violation').count();
    if (rows >= min) break;
    await page.waitForTimeout(2000);
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => (document.querySelector('#user')?.textContent || '').trim() !== '');
  }
  log(`${rows} violations listed`);
  if (rows < min) throw new Error(`only ${rows} violations listed after a minute (wanted ${min})`);
  if (shot) await page.screenshot({ path: `${shot}-list.png`, fullPage: true });

  // The zones view: the camera's live picture with its zones drawn.
  await page.locator('#nav-zones').click();
  await page.waitForFunction(() => document.querySelectorAll('#zones g.zone[data-zone]').length > 0);
  const zones = await page.evaluate(() => document.querySelectorAll('#zones g.zone[data-zone]').length);
  if (shot) await page.screenshot({ path: `${shot}-zones.png`, fullPage: true });
  return { ok: true, user, violations: rows, zones, token_left_in_url: tokenLeft };
}

main('newcomer', 150_000, run);
