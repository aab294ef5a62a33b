// The first open of the Mini App on a phone, measured in Chromium with Chrome's throttling:
// navigation to the balance on screen and to the hydrated app (its Buy buttons), and the bytes
// of our own files on the wire.
// Each run is a fresh browser context (an empty HTTP cache): the first open, then a reopen in a
// new page of the same context (Telegram's webview opened again, its HTTP cache kept).
// Telegram's script is run before each run, as a phone that has opened Mini Apps before has it
// cached from telegram.org (HTTP cache and V8's code cache), and is not counted in our bytes.
//
// Usage: node first-open.mjs --url http://127.0.0.1:PORT [--runs 5] [--json FILE]
import { writeFileSync } from 'node:fs';
import { chromium } from '@playwright/test';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const base = args.url ?? 'http://127.0.0.1:3000';
const runs = Number(args.runs ?? 5);

const TELEGRAM_SCRIPT = '/sandbox/telegram-web-app.js';
// Alice, one of the sandbox's users: the sandbox signs her launch data as Telegram would.
const SANDBOX_USER = 100_001;

const profiles = {
  // Chrome's mobile presets as the issue names them; throughput in bytes per second.
  '3G': { latency: 150, download: 1.6e6 / 8, upload: 750e3 / 8, cpu: 4 },
  '4G': { latency: 40, download: 9e6 / 8, upload: 1.5e6 / 8, cpu: 2 },
};

/** The address Telegram would open: fresh launch data from the sandbox, in the fragment. */
async function launchUrl() {
  const launch = await fetch(`${base}/sandbox/api/launch?user=${SANDBOX_USER}`);
  if (!launch.ok) throw new Error(`sandbox launch data: HTTP ${launch.status}`);
  const { init_data: initData } = await launch.json();
  const fragment = new URLSearchParams({
    tgWebAppData: initData,
    tgWebAppVersion: '8.0',
    tgWebAppPlatform: 'android',
    tgWebAppThemeParams: JSON.stringify({ bg_color: '#ffffff', text_color: '#000000', button_color: '#3390ec', button_text_color: '#ffffff' }),
  });
  return `${base}/#${fragment}`;
}

/** Opens the app in a new page of `context`; milliseconds to the balance and our bytes. */
async function open(context, profile) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: profile.latency,
    downloadThroughput: profile.download,
    uploadThroughput: profile.upload,
  });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: profile.cpu });
  const urls = new Map();
  const files = [];
  cdp.on('Network.requestWillBeSent', (event) => urls.set(event.requestId, event.request.url));
  cdp.on('Network.loadingFinished', (event) => {
    const url = urls.get(event.requestId) ?? '';
    if (url.startsWith(base) && !url.includes(TELEGRAM_SCRIPT)) {
      files.push({ url: url.slice(base.length).split('#')[0], bytes: event.encodedDataLength });
    }
  });
  // The moment the balance is on screen: the first frame after its text is in the page,
  // noted by the page itself (asking from here would add the round trips of the test driver);
  // and the moment the app can be used: the first frame with the hydrated wallet's Buy buttons.
  await page.addInitScript(() => {
    const shown = () => /^\d[\d\s,.]*\s*NDN$/.test(document.querySelector('[data-testid=balance]')?.textContent?.trim() ?? '');
    const ready = () => document.querySelector('.package button') !== null;
    const observer = new MutationObserver(() => {
      if (window.__balanceShownAt === undefined && shown()) {
        window.__balanceShownAt = null;
        requestAnimationFrame(() => {
          window.__balanceShownAt = performance.now();
        });
      }
      if (window.__readyAt === undefined && ready()) {
        window.__readyAt = null;
        requestAnimationFrame(() => {
          window.__readyAt = performance.now();
        });
      }
      if (window.__balanceShownAt !== undefined && window.__readyAt !== undefined) observer.disconnect();
    });
    observer.observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(await launchUrl(), { waitUntil: 'commit' });
  const ms = await (await page.waitForFunction(() => window.__balanceShownAt, null, { timeout: 60_000 })).jsonValue();
  const readyMs = await (await page.waitForFunction(() => window.__readyAt, null, { timeout: 60_000 })).jsonValue();
  // Let requests in flight (the event stream's first bytes, the icon) be counted.
  await page.waitForTimeout(300);
  await cdp.detach();
  await page.close();
  const bytes = files.filter((file) => !file.url.startsWith('/api/events')).reduce((sum, file) => sum + file.bytes, 0);
  return { ms, readyMs, bytes, files };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const results = {};
for (const [name, profile] of Object.entries(profiles)) {
  const first = [];
  const again = [];
  for (let run = 0; run < runs; run++) {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    // Telegram's script, cached as on a phone that has opened Mini Apps before: in the HTTP
    // cache and, having run, in V8's code cache (which Chrome fills on a script's second run).
    const warm = await context.newPage();
    await warm.route(`${base}/__warm`, (route) =>
      route.fulfill({ contentType: 'text/html', body: `<script src="${TELEGRAM_SCRIPT}"></script>` }),
    );
    for (let i = 0; i < 3; i++) await warm.goto(`${base}/__warm`, { waitUntil: 'load' });
    await warm.close();
    first.push(await open(context, profile));
    again.push(await open(context, profile));
    await context.close();
  }
  results[name] = {
    first_open_ms: median(first.map((r) => r.ms)),
    first_open_ms_all: first.map((r) => Math.round(r.ms)),
    first_open_bytes: median(first.map((r) => r.bytes)),
    first_open_ready_ms: median(first.map((r) => r.readyMs)),
    reopen_ms: median(again.map((r) => r.ms)),
    reopen_ready_ms: median(again.map((r) => r.readyMs)),
    reopen_ms_all: again.map((r) => Math.round(r.ms)),
    reopen_bytes: median(again.map((r) => r.bytes)),
    first_open_files: first[0].files,
    reopen_files: again[0].files,
  };
}
await browser.close();

const kb = (bytes) => `${(bytes / 1000).toFixed(1)} KB`;
console.log(`\nFirst open of the Mini App in Chromium (median of ${runs}; our files on the wire, Telegram's script excluded;`);
console.log('the balance on screen, then the hydrated app with its Buy buttons)');
console.log('profile  first open                      reopen');
for (const [name, r] of Object.entries(results)) {
  const both = (shown, ready) => `${Math.round(shown)} ms (ready ${Math.round(ready)} ms)`;
  console.log(
    `${name.padEnd(8)} ${`${both(r.first_open_ms, r.first_open_ready_ms)}, ${kb(r.first_open_bytes)}`.padEnd(32)} ${both(r.reopen_ms, r.reopen_ready_ms)}, ${kb(r.reopen_bytes)}` +
      `   (balance, runs: ${r.first_open_ms_all.join(' ')} / ${r.reopen_ms_all.join(' ')} ms)`,
  );
}
for (const [label, files] of [['first open', results['3G'].first_open_files], ['reopen', results['3G'].reopen_files]]) {
  console.log(`3G ${label}: ${files.map((file) => `${file.url} ${kb(file.bytes)}`).join(', ')}`);
}
if (args.json) writeFileSync(args.json, JSON.stringify(results, null, 2));
