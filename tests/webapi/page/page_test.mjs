// Drives ringseed's built-in web page (or any server with the same page and
// the qBittorrent Web API v2) in Debian's headless Chromium, as a phone
// would: log in (a wrong password first), add TORRENT_FILE through the page's
// file input with a category and tags, wait until the page shows it seeding,
// take screenshots into OUTDIR, change its category and tags, open its
// trackers, stop and start it, delete it (keeping the files), log out.
//
//   node page_test.mjs URL USER PASSWORD TORRENT_FILE OUTDIR
//
// Environment:
//   CHROMIUM               the browser (default /usr/bin/chromium)
//   PAGE_TEST_SAVEPATH     typed into the page's save path field when set
//   PAGE_TEST_HANDSHAKE=1  at each `CHECKPOINT NAME` line, wait (bounded)
//                          until OUTDIR/continue-NAME exists; its content
//                          must be `ok` (the caller checked the daemon's
//                          side), anything else fails the run
//
// Prints one line per step on stderr (a caller that reads one stream sees
// the checkpoints in order); the last line is `PAGE TEST PASSED` on success.
// Exit status 0 only then.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = 20_000;
const SEED_TIMEOUT_MS = 45_000;
const HANDSHAKE_TIMEOUT_MS = 30_000;
const TOTAL_TIMEOUT_MS = 100_000;

const [url, user, password, torrentFile, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error('usage: node page_test.mjs URL USER PASSWORD TORRENT_FILE OUTDIR');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const handshake = process.env.PAGE_TEST_HANDSHAKE === '1';
const savePath = process.env.PAGE_TEST_SAVEPATH || '';

const t0 = Date.now();
function log(...args) {
  console.error(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...args);
}

class Failure extends Error {}
function fail(msg) {
  throw new Failure(msg);
}
function check(cond, msg) {
  if (!cond) fail(msg);
}

// ---------- the .torrent: info-hash and name ----------

// Returns [value, end] for the bencoded item at `i`; dictionaries also carry
// the byte span of each value, to hash `info` as it is in the file.
function bdecode(buf, i = 0) {
  const c = buf[i];
  if (c === 0x69) { // i
    const e = buf.indexOf(0x65, i);
    return [BigInt(buf.subarray(i + 1, e).toString('latin1')), e + 1];
  }
  if (c === 0x6c) { // l
    const out = [];
    i += 1;
    while (buf[i] !== 0x65) {
      const [v, n] = bdecode(buf, i);
      out.push(v);
      i = n;
    }
    return [out, i + 1];
  }
  if (c === 0x64) { // d
    const out = new Map();
    const spans = new Map();
    i += 1;
    while (buf[i] !== 0x65) {
      const [k, n] = bdecode(buf, i);
      const [v, m] = bdecode(buf, n);
      const key = k.toString('utf8');
      out.set(key, v);
      spans.set(key, [n, m]);
      i = m;
    }
    out.spans = spans;
    return [out, i + 1];
  }
  if (c >= 0x30 && c <= 0x39) {
    const colon = buf.indexOf(0x3a, i);
    const len = Number(buf.subarray(i, colon).toString('latin1'));
    const start = colon + 1;
    if (start + len > buf.length) throw new Error('truncated string');
    return [buf.subarray(start, start + len), start + len];
  }
  throw new Error(`bad bencode byte ${c} at ${i}`);
}

function torrentMeta(file) {
  const buf = fs.readFileSync(file);
  const [root] = bdecode(buf);
  const span = root.spans.get('info');
  if (!span) throw new Error(`${file}: no info dictionary`);
  const hash = createHash('sha1').update(buf.subarray(span[0], span[1])).digest('hex');
  const info = root.get('info');
  const name = (info.get('name.utf-8') || info.get('name')).toString('utf8');
  return { hash, name };
}

// ---------- helpers ----------

async function handshakeAt(name) {
  log(`CHECKPOINT ${name}`);
  if (!handshake) return;
  const file = path.join(outDir, `continue-${name}`);
  const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (fs.existsSync(file)) {
      const text = fs.readFileSync(file, 'utf8').trim();
      if (text !== 'ok') fail(`the caller's check at checkpoint ${name} failed: ${text}`);
      log(`checkpoint ${name}: the caller agrees`);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`no ${file} within ${HANDSHAKE_TIMEOUT_MS} ms`);
}

// Nothing may make the page wider than the phone's screen.
async function checkFits(page, when) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `${when}: the page is ${overflow}px wider than the phone's screen`);
}

async function rowInfo(page, hash) {
  return page.evaluate((h) => {
    const row = document.querySelector(`article.torrent[data-hash="${h}"]`);
    if (!row) return null;
    const f = (k) => row.querySelector(`[data-field="${k}"]`)?.textContent ?? null;
    return {
      state: row.dataset.state,
      group: row.dataset.group,
      progress: row.dataset.progress,
      category: row.dataset.category,
      tags: row.dataset.tags,
      label: f('state'),
      name: f('name'),
      progressText: f('progress'),
      peers: f('peers'),
      tracker: f('tracker'),
      ratio: f('ratio'),
      message: document.getElementById('message')?.hidden ? '' : document.getElementById('message')?.textContent,
    };
  }, hash);
}

// Waits until `pred(rowInfo)` holds; fails with the last row seen.
async function waitRow(page, hash, what, pred, timeout = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let last = null;
  while (Date.now() < deadline) {
    last = await rowInfo(page, hash);
    if (pred(last)) return last;
    await page.waitForTimeout(200);
  }
  fail(`the page did not show the torrent ${what} within ${timeout} ms; last: ${JSON.stringify(last)}`);
}

// The API seen from the page's own session (same cookie).
async function apiInfo(page, hash) {
  return page.evaluate(async (h) => {
    const r = await fetch(`api/v2/torrents/info?hashes=${h}`, { credentials: 'same-origin' });
    return { status: r.status, body: await r.text() };
  }, hash);
}

function rowSelector(hash) {
  return `article.torrent[data-hash="${hash}"]`;
}

// ---------- the run ----------

async function run(ctx, page) {
  const { hash, name } = torrentMeta(torrentFile);
  log(`torrent ${hash} ${JSON.stringify(name)}`);

  const pageErrors = [];
  page.on('pageerror', (e) => {
    pageErrors.push(String(e));
    log(`PAGE ERROR: ${e}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log(`console.${m.type()}: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) log(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => log(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));

  // 1. No session: the login form.
  const res = await page.goto(url, { waitUntil: 'load' });
  check(res && res.ok(), `GET ${url} answered ${res && res.status()}`);
  await page.locator('#login-form').waitFor({ state: 'visible' });
  check(await page.locator('#app').isHidden(), 'the app is visible without a session');
  log('login form shown');

  // 2. A wrong password: the page says so.
  await page.fill('#login-username', user);
  await page.fill('#login-password', `${password}-wrong`);
  await page.tap('#login-submit');
  await page.locator('#login-error').waitFor({ state: 'visible' });
  const wrong = await page.textContent('#login-error');
  check(/wrong/i.test(wrong), `wrong password: the page said ${JSON.stringify(wrong)}`);
  check(await page.locator('#app').isHidden(), 'the app is visible after a wrong password');
  log(`wrong password refused: ${JSON.stringify(wrong)}`);

  // 3. Log in.
  await page.fill('#login-password', password);
  await page.tap('#login-submit');
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator('body[data-loaded="true"]').waitFor();
  const cookies = await ctx.cookies();
  check(cookies.some((c) => c.name === 'SID'), `no SID cookie after login: ${JSON.stringify(cookies)}`);
  log(`logged in; version ${JSON.stringify(await page.textContent('#version'))}`);

  await checkFits(page, 'after login');

  // 4. Add the .torrent through the file input, with category and tags.
  await page.tap('#add-toggle');
  await page.locator('#add-form').waitFor({ state: 'visible' });
  await page.setInputFiles('#add-file', torrentFile);
  if (savePath) await page.fill('#add-savepath', savePath);
  await page.fill('#add-category', 'page-cat');
  await page.fill('#add-tags', 'page-tag, second');
  await page.tap('#add-submit');
  await page.waitForFunction(() => {
    const r = document.getElementById('add-result');
    return !r.hidden && (r.classList.contains('ok') || r.classList.contains('error'));
  }, null, { timeout: STEP_TIMEOUT_MS });
  const added = await page.locator('#add-result').evaluate((r) => ({ cls: r.className, text: r.textContent }));
  check(added.cls.includes('ok'), `adding failed: ${added.text}`);
  log(`add: ${added.text}`);
  await page.tap('#add-cancel');

  // 5. It appears, and seeds.
  await page.locator(rowSelector(hash)).waitFor({ timeout: STEP_TIMEOUT_MS });
  log(`listed: ${JSON.stringify(await rowInfo(page, hash))}`);
  const seeding = await waitRow(page, hash, 'seeding', (r) => r && r.group === 'seeding' && r.progress === '1',
    SEED_TIMEOUT_MS);
  log(`seeding: ${JSON.stringify(seeding)}`);
  check(seeding.label.startsWith('Seeding'), `state label ${JSON.stringify(seeding.label)}`);
  check(seeding.progressText === '100%', `progress shown ${JSON.stringify(seeding.progressText)}`);
  check(seeding.name === name, `name shown ${JSON.stringify(seeding.name)}, expected ${JSON.stringify(name)}`);
  check(seeding.category === 'page-cat', `category ${JSON.stringify(seeding.category)}`);
  check(seeding.tags.split(',').sort().join(',') === 'page-tag,second', `tags ${JSON.stringify(seeding.tags)}`);
  check(/^\d+ \(\d+ seeds, \d+ leechers\)$/.test(seeding.peers), `peers ${JSON.stringify(seeding.peers)}`);
  check(seeding.tracker && seeding.tracker.length > 0, 'no tracker status');
  check(/^\d+\.\d\d$|^∞$/.test(seeding.ratio), `ratio ${JSON.stringify(seeding.ratio)}`);
  // The name is markup-like: it must be text, never markup.
  const injected = await page.evaluate((sel) => ({
    pwned: window.__pwned === undefined ? null : String(window.__pwned),
    elements: document.querySelector(sel).querySelectorAll('img, b, script, iframe').length,
  }), rowSelector(hash));
  check(injected.pwned === null && injected.elements === 0,
    `the torrent's name was rendered as markup: ${JSON.stringify(injected)}`);

  await checkFits(page, 'with the torrent listed');

  // 6. Screenshots: the phone, then a desktop window.
  fs.mkdirSync(outDir, { recursive: true });
  const phoneShot = path.join(outDir, 'page-seeding-phone.png');
  await page.screenshot({ path: phoneShot, fullPage: true });
  log(`screenshot ${phoneShot}`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForTimeout(300);
  const desktopShot = path.join(outDir, 'page-seeding-desktop.png');
  await page.screenshot({ path: desktopShot, fullPage: true });
  log(`screenshot ${desktopShot}`);
  await page.setViewportSize({ width: 390, height: 844 });

  // 7. Category and tags through the dialog.
  await page.tap(`${rowSelector(hash)} [data-action="edit"]`);
  await page.locator('#edit-dialog').waitFor({ state: 'visible' });
  check((await page.inputValue('#edit-category')) === 'page-cat', 'the edit dialog lost the category');
  await page.fill('#edit-category', 'page-cat2');
  await page.fill('#edit-tags', 'second, third');
  await page.tap('#edit-save');
  await page.locator('#edit-dialog').waitFor({ state: 'hidden' });
  const edited = await waitRow(page, hash, 'with its new category and tags',
    (r) => r && r.category === 'page-cat2' && r.tags.split(',').sort().join(',') === 'second,third');
  log(`edited: category ${edited.category}, tags ${edited.tags}`);
  const info = await apiInfo(page, hash);
  check(info.status === 200, `torrents/info answered ${info.status}`);
  const t = JSON.parse(info.body)[0];
  check(t && t.category === 'page-cat2', `the API says category ${t && t.category}`);
  check(t && t.tags.split(',').map((s) => s.trim()).sort().join(',') === 'second,third',
    `the API says tags ${t && JSON.stringify(t.tags)}`);
  await handshakeAt('seeding');

  // 8. The trackers panel.
  await page.tap(`${rowSelector(hash)} [data-action="trackers"]`);
  await page.locator(`${rowSelector(hash)} .t-details h4`).waitFor({ state: 'visible' });
  await page.waitForFunction((sel) => {
    const d = document.querySelector(`${sel} .t-details`);
    return d && !d.hidden && !/Loading/.test(d.textContent);
  }, rowSelector(hash), { timeout: STEP_TIMEOUT_MS });
  const details = await page.locator(`${rowSelector(hash)} .t-details`).innerText();
  await checkFits(page, 'with the trackers panel open');
  log(`trackers panel: ${JSON.stringify(details)}`);
  check(!/HTTP \d/.test(details), `the trackers request failed: ${details}`);
  await page.tap(`${rowSelector(hash)} [data-action="trackers"]`);

  // 9. Stop, then start.
  await page.tap(`${rowSelector(hash)} [data-action="stop"]`);
  const stopped = await waitRow(page, hash, 'stopped', (r) => r && r.group === 'stopped');
  log(`stopped: ${stopped.state} (${stopped.label})`);
  check(await page.locator(`${rowSelector(hash)} [data-action="start"]`).isVisible(), 'no Start button');
  check(await page.locator(`${rowSelector(hash)} [data-action="stop"]`).isHidden(), 'a Stop button on a stopped torrent');
  await handshakeAt('stopped');
  await page.tap(`${rowSelector(hash)} [data-action="start"]`);
  const started = await waitRow(page, hash, 'seeding again', (r) => r && r.group === 'seeding', SEED_TIMEOUT_MS);
  log(`started: ${started.state} (${started.label})`);

  // 10. Delete, keeping the files.
  await page.tap(`${rowSelector(hash)} [data-action="delete"]`);
  await page.locator('#delete-dialog').waitFor({ state: 'visible' });
  check((await page.textContent('#delete-name')) === name, 'the delete dialog names another torrent');
  check(!(await page.isChecked('#delete-files')), '"delete files" is checked by default');
  await page.tap('#delete-confirm');
  await page.locator(rowSelector(hash)).waitFor({ state: 'detached', timeout: STEP_TIMEOUT_MS });
  const gone = await apiInfo(page, hash);
  check(gone.status === 200 && JSON.parse(gone.body).length === 0,
    `after delete torrents/info answered ${gone.status} ${gone.body}`);
  log('deleted (files kept)');

  // 11. Log out: the login form again, also after a reload.
  await page.tap('#logout');
  await page.locator('#login-form').waitFor({ state: 'visible' });
  await page.reload({ waitUntil: 'load' });
  await page.locator('#login-form').waitFor({ state: 'visible' });
  check(await page.locator('#app').isHidden(), 'the app is visible after logout and reload');
  log('logged out');

  check(pageErrors.length === 0, `JavaScript errors in the page: ${pageErrors.join('; ')}`);
}

async function main() {
  for (const [what, p] of [['chromium', executablePath], ['torrent', torrentFile]]) {
    if (!fs.existsSync(p)) {
      console.error(`${what} not found at ${p}` +
        (what === 'chromium' ? ' (install it with `apt-get install -y chromium`; scripts/test.sh does)' : ''));
      process.exit(2);
    }
  }
  fs.mkdirSync(outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ringseed-page-chromium-'));
  const guard = setTimeout(() => {
    console.error(`page test ran past ${TOTAL_TIMEOUT_MS} ms`);
    process.exit(3);
  }, TOTAL_TIMEOUT_MS);
  let ctx = null;
  let code = 1;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true, // Playwright passes --headless
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 1,
      timeout: STEP_TIMEOUT_MS * 2,
    });
    ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
    log(`chromium ${ctx.browser()?.version() ?? '?'} from ${executablePath}`);
    const page = ctx.pages()[0] || (await ctx.newPage());
    try {
      await run(ctx, page);
      code = 0;
      console.error('PAGE TEST PASSED');
    } catch (e) {
      console.error(`PAGE TEST FAILED: ${e instanceof Failure ? e.message : e.stack || e}`);
      try {
        const shot = path.join(outDir, 'page-failure.png');
        await page.screenshot({ path: shot, fullPage: true });
        console.error(`screenshot of the failure: ${shot}`);
      } catch (_) {
        // no screenshot
      }
    }
  } catch (e) {
    console.error(`PAGE TEST FAILED: cannot start chromium: ${e.stack || e}`);
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
    clearTimeout(guard);
  }
  process.exit(code);
}

main();
