// Headless-browser walk-through of the operator's zone editor.
//
// Run by a Rust integration test as `node tests/browser/operator.mjs` with:
//   BASE_URL         e.g. http://127.0.0.1:8123 (required)
//   TOKEN            an operator (or admin) token (required)
//   CAMERA           the camera to edit (required)
//   ZONE             id of the new zone to create (required; must not exist yet)
//   SCREENSHOT_PATH  optional full-page screenshot of the final editor view
//
// Steps: log in, open Zones, pick CAMERA, wait for its frame, draw a 4-point zone,
// save once with threshold 1.5 (must be refused with a problem naming `threshold`),
// fix it to 0.5 and save, then wait (up to 30 s, watching the page) for the zone's
// live score label to show a number.
//
// On success prints one JSON line to stdout, e.g.
//   {"ok":true,"zone":"lane-x","points":4,"problem_seen":true,"score":"0.12","version":4}
// and exits 0. On failure prints the error to stderr and exits 1.
// Browser console errors and uncaught page errors are echoed to stderr.

import { env, logIn, logger, main, openPage } from './harness.mjs';

const OVERALL_TIMEOUT_MS = 150_000;
const STEP_TIMEOUT_MS = 20_000;
const SCORE_TIMEOUT_MS = 30_000;
// Where the corners go, as fractions of the frame element's box (clockwise).
// A strip along a kerb at a slant (about 17 degrees, five times longer than
// thick): the server cuts it into tiles turned with it, drawn on the frame.
const CORNERS = [[0.1, 0.3], [0.7, 0.55], [0.7, 0.7], [0.1, 0.45]];

const log = logger('operator');

const tid = (id) => `[data-testid="${id.replace(/["\\]/g, '\\$&')}"]`;

async function run() {
  const baseUrl = env('BASE_URL').replace(/\/+$/, '');
  const token = env('TOKEN');
  const camera = env('CAMERA');
  const zone = env('ZONE');
  const screenshotPath = env('SCREENSHOT_PATH', false);

  const { page } = await openPage({ log, stepTimeoutMs: STEP_TIMEOUT_MS });
  // Nothing in this walk-through should ask for confirmation; refuse if something does.
  page.on('dialog', (d) => { log(`unexpected dialog: ${d.message()}`); d.dismiss().catch(() => {}); });

  // 1. Log in.
  const user = await logIn(page, baseUrl, token, log);

  // 2. Zones view, via the nav link (only shown to operators and admins).
  const nav = page.locator(tid('nav-zones'));
  if (!(await nav.isVisible())) throw new Error(`no Zones link — is ${user} an operator/admin token?`);
  await nav.click();
  await page.waitForFunction(() => location.hash.startsWith('#/zones'));
  const select = page.locator(tid('camera-select'));
  await page.waitForFunction((sel) => {
    const s = document.querySelector(sel);
    return !!s && s.options.length > 0;
  }, tid('camera-select'));
  const cameras = await select.evaluate((s) => [...s.options].map((o) => o.value));
  if (!cameras.includes(camera)) throw new Error(`camera ${camera} not offered; cameras: ${cameras.join(', ')}`);
  await select.selectOption(camera);
  // Picking another camera re-renders the view; wait for the one showing CAMERA.
  const view = `.editor[data-camera="${camera.replace(/["\\]/g, '\\$&')}"]`;
  await page.locator(view).waitFor({ state: 'attached' });
  log(`zones view, camera ${camera}`);

  // 3. The latest frame, as a blob: image.
  const frameSel = `${view} ${tid('frame')}`;
  try {
    await page.waitForFunction((sel) => {
      const img = document.querySelector(`${sel} img`);
      return !!img && !img.hidden && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:');
    }, frameSel);
  } catch (err) {
    const shown = ((await page.locator(`${frameSel} .zone-frame-placeholder`).textContent().catch(() => '')) || '').trim();
    throw new Error(`the frame of ${camera} did not load${shown ? ` (frame area says "${shown}")` : ''}: ${err.message}`);
  }
  const natural = await page.locator(`${frameSel} img`).evaluate((img) => `${img.naturalWidth}x${img.naturalHeight}`);
  log(`frame loaded (${natural})`);
  if (await page.locator(tid(`zone-${zone}`)).count() > 0) throw new Error(`zone ${zone} already exists`);

  // 4. New zone: four corners clicked on the frame.
  await page.locator(tid('new-zone')).click();
  const frame = page.locator(frameSel);
  for (const [fx, fy] of CORNERS) {
    // Measure each time: the frame may be swapped for a newer one between clicks.
    const box = await frame.boundingBox();
    if (!box) throw new Error('frame element has no box');
    await frame.click({ position: { x: box.width * fx, y: box.height * fy } });
  }
  const drawn = await page.locator(tid('zone-draft')).getAttribute('points');
  const drawnPoints = (drawn || '').trim().split(/\s+/).filter(Boolean).length;
  if (drawnPoints !== CORNERS.length) throw new Error(`drew ${drawnPoints} points, expected ${CORNERS.length}`);
  log(`drew ${drawnPoints} points`);

  await page.locator(tid('zone-id')).fill(zone);
  await page.locator(tid('zone-name')).fill('Browser zone');

  // 5. A save the server must refuse: threshold out of range.
  await page.locator(tid('zone-threshold')).fill('1.5');
  await page.locator(tid('save-zone')).click();
  await page.waitForFunction((sel) => {
    const p = document.querySelector(sel);
    return !!p && !p.hidden && /threshold/i.test(p.textContent);
  }, tid('problems'));
  const problemText = (await page.locator(tid('problems')).textContent()).trim();
  const status1 = ((await page.locator(tid('save-status')).textContent()) || '').trim();
  if (/^Saved/.test(status1)) throw new Error(`threshold 1.5 was saved: ${status1}`);
  log(`refused as expected: ${problemText}`);

  // 6. Fix it and save for real.
  await page.locator(tid('zone-threshold')).fill('0.5');
  await page.locator(tid('save-zone')).click();
  await page.waitForFunction((sel) => {
    const banner = document.querySelector('#error');
    if (banner && !banner.hidden) throw new Error(`error banner: ${banner.textContent.trim()}`);
    const s = document.querySelector(sel);
    return !!s && /^Saved/.test(s.textContent.trim());
  }, tid('save-status'));
  const saved = (await page.locator(tid('save-status')).textContent()).trim();
  const vm = /version\s+(\d+)/.exec(saved);
  if (!vm) throw new Error(`save status has no version: ${saved}`);
  const version = Number(vm[1]);
  if (await page.locator(tid('problems')).isVisible()) throw new Error('problems still shown after a successful save');
  const pointsAttr = await page.locator(tid(`zone-${zone}`)).getAttribute('points');
  const points = (pointsAttr || '').trim().split(/\s+/).filter(Boolean).length;
  if (points !== CORNERS.length) throw new Error(`saved zone has ${points} points, expected ${CORNERS.length}`);
  log(`${saved}; zone-${zone} drawn with ${points} points`);

  // 7. Live overlay: the zone's score label turns into a number as frames are scored.
  await page.waitForFunction((sel) => {
    const s = document.querySelector(sel);
    return !!s && /^\d+(\.\d+)?$/.test(s.textContent.trim());
  }, tid(`score-${zone}`), { timeout: SCORE_TIMEOUT_MS, polling: 250 });
  const score = (await page.locator(tid(`score-${zone}`)).textContent()).trim();
  const state = await page.locator(tid(`zone-${zone}`)).getAttribute('data-state');
  log(`live score ${score} (${state})`);

  // 8. The strip's tiles: turned outlines on the frame, each with its live score.
  const tileSel = `[data-testid^="tile-${zone}-"]`;
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length >= 3, tileSel,
    { timeout: SCORE_TIMEOUT_MS, polling: 250 });
  const tileShapes = await page.locator(tileSel).evaluateAll((els) => els.map((e) => e.getAttribute('points')));
  for (const pts of tileShapes) {
    const p = (pts || '').trim().split(/\s+/).map((xy) => xy.split(',').map(Number));
    if (p.length !== 4) throw new Error(`tile drawn with ${p.length} points: ${pts}`);
    if (Math.abs(p[1][1] - p[0][1]) < 1) throw new Error(`tile not turned with the strip: ${pts}`);
  }
  await page.waitForFunction((n) => {
    const t = [...document.querySelectorAll('.zone-tile-score')].map((e) => e.textContent.trim());
    return t.filter((x) => /^\d+(\.\d+)?$/.test(x)).length >= n;
  }, tileShapes.length, { timeout: SCORE_TIMEOUT_MS, polling: 250 });
  log(`${tileShapes.length} turned tiles drawn, each scored`);

  const historyRows = await page.locator(tid('history-row')).count();
  log(`config history shows ${historyRows} version(s)`);

  if (screenshotPath) {
    await page.screenshot({ path: screenshotPath, fullPage: true });
    log(`screenshot saved to ${screenshotPath}`);
  }

  return { ok: true, zone, points, problem_seen: true, score, version, tiles: tileShapes.length };
}

await main('operator.mjs', OVERALL_TIMEOUT_MS, run);
