import { APIRequestContext, expect, Page, test } from '@playwright/test';
import { apiKey, Buyer, deliver, failOnConsoleErrors, launchUrl, newBuyer, successfulPayment } from './telegram';

const SCREENSHOTS = 'test-results/screens';

test('server renders the skeleton before any wasm runs', async ({ request }) => {
  const html = await (await request.get('/')).text();
  expect(html).toContain('data-testid="skeleton"');
  expect(html).toContain('/sandbox/telegram-web-app.js');
  expect(html).toMatch(/\/pkg\/ndn\.[\w-]+\.js/);
});

test('the release build is hashed, precompressed and cached for a year; the page revalidates', async ({ request }) => {
  const page = await request.get('/', { headers: { 'Accept-Encoding': 'br, gzip' } });
  expect(page.headers()['content-encoding']).toBe('br');
  expect(page.headers()['cache-control']).toBe('no-cache');
  const etag = page.headers()['etag'];
  expect(etag).toBeTruthy();
  const html = await page.text();
  // The page names only this build's files, each with its content hash.
  const names = [...html.matchAll(/\/pkg\/([^"']+)["']/g)].map((match) => match[1]);
  expect(new Set(names.map((name) => name.split('.').pop()))).toEqual(new Set(['css', 'js', 'wasm']));
  for (const name of names) {
    expect(name).toMatch(/^ndn\.[\w-]{8,}\.(css|js|wasm)$/);
    for (const [accept, encoding] of [['br', 'br'], ['gzip', 'gzip'], ['identity', undefined]] as const) {
      const file = await request.get(`/pkg/${name}`, { headers: { 'Accept-Encoding': accept } });
      expect(file.status(), name).toBe(200);
      expect(file.headers()['content-encoding'], `${name} asked ${accept}`).toBe(encoding);
      expect(file.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(file.headers()['vary']).toMatch(/accept-encoding/i);
    }
  }
  // Unchanged page: 304, nothing sent again.
  const again = await request.get('/', { headers: { 'If-None-Match': etag } });
  expect(again.status()).toBe(304);
  // A name that is not this build's answers 404.
  expect((await request.get('/pkg/ndn.AAAAAAAAAAAAAAAAAAAAAA.wasm')).status()).toBe(404);
  expect((await request.get('/pkg/ndn.wasm')).status()).toBe(404);
});

test('hydrates and loads the wallet through a server function', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  await page.goto(launchUrl(newBuyer('en')));
  await expect(page.getByTestId('balance')).toHaveText(/^0\s+NDN$/);
  const buttons = page.locator('.package button');
  await expect(buttons).toHaveCount(3);
  await expect(buttons.first()).toBeEnabled();
  await expect(page.getByText('Best value')).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}/home.png`, fullPage: true });
  assertNoErrors();
});

test('the balance is on screen before the WebAssembly runs, and the app hydrates over it', async ({ page: first, request }) => {
  // A Russian-speaking buyer who has opened the app before and holds 12 345 NDN.
  const buyer = newBuyer('ru');
  await first.goto(launchUrl(buyer));
  await expect(first.getByTestId('balance')).toHaveText(/^0\s+NDN$/);
  const grant = await request.post('/v1/credits', {
    data: { user_id: buyer.id, amount: 12_345, reason: 'Early balance' },
    headers: { Authorization: `Bearer ${apiKey()}`, 'Idempotency-Key': `early-${buyer.id}` },
  });
  expect(grant.status(), await grant.text()).toBe(201);

  // Opened again in a new page (the first one's memory cache would serve the WebAssembly).
  const page = await first.context().newPage();
  const assertNoErrors = failOnConsoleErrors(page);
  // Every text the balance line shows, in order, from the page's first byte.
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { balanceTexts: string[] }).balanceTexts = seen;
    new MutationObserver(() => {
      const text = document.querySelector('.balance-card .balance')?.textContent?.trim();
      if (text && text !== seen[seen.length - 1]) seen.push(text);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  // The WebAssembly is held back until the balance has been seen.
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route(/\/pkg\/[^/]+\.wasm$/, async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(launchUrl(buyer, 'dark'));
  await expect(page.getByTestId('balance')).toHaveText(/^12\s345\s+NDN$/);
  await expect(page.getByTestId('skeleton')).toBeVisible();
  await expect(page.locator('.package button')).toHaveCount(0);

  release();
  // Hydrated: the wallet in the buyer's language, its buttons working.
  await expect(page.locator('.package button')).toHaveCount(3);
  await expect(page.getByText('Ваш баланс')).toBeVisible();
  await expect(page.getByTestId('balance')).toHaveText(/^12\s345\s+NDN$/);
  await expect(page.locator('.package button').first()).toBeEnabled();
  // Once shown, the balance never went back to "Loading" (the language arriving with the
  // launch data must not redraw the skeleton over it).
  const texts = await page.evaluate(() => (window as unknown as { balanceTexts: string[] }).balanceTexts);
  const shown = texts.findIndex((text) => /NDN$/.test(text));
  expect(shown, texts.join(' | ')).toBeGreaterThanOrEqual(0);
  for (const text of texts.slice(shown)) expect(text, texts.join(' | ')).toMatch(/^12\s345\s+NDN$/);
  assertNoErrors();
});

test('outside Telegram it asks to be opened in Telegram', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  await page.goto('/');
  await expect(page.getByTestId('outside-telegram')).toContainText('Open this app in Telegram');
  assertNoErrors();
});

test('a payment processed by the webhook shows up live, without reload', async ({ page, request }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  const buyer = newBuyer('ru');
  await page.goto(launchUrl(buyer, 'dark'));
  await expect(page.getByText('Ваш баланс')).toBeVisible();
  await expect(page.getByTestId('balance')).toHaveText(/^0\s+NDN$/);

  const invoiceResponse = page.waitForResponse((response) => response.url().endsWith('/api/create_invoice'));
  await page.locator('[data-package="ndn-500"] button').click();
  const invoice = await (await invoiceResponse).json();
  expect(invoice.invoice_url).toMatch(/^https:\/\/t\.me\/\$/);
  // While the sheet is open, every Buy button is disabled (no double purchase).
  await expect(page.locator('.package button').first()).toBeDisabled();

  const from = { id: buyer.id, is_bot: false, first_name: buyer.first_name, language_code: 'ru' };
  const checkout = await deliver(request, {
    update_id: 1,
    pre_checkout_query: { id: 'e2e-q', from, currency: 'XTR', total_amount: 225, invoice_payload: invoice.order_id },
  });
  expect(await checkout.json()).toMatchObject({ method: 'answerPreCheckoutQuery', ok: true });
  const paid = await deliver(request, successfulPayment(2, buyer, invoice.order_id, 225, `e2e-charge-${buyer.id}`));
  expect(paid.status()).toBe(200);

  await expect(page.getByTestId('balance')).toHaveText(/^500\s+NDN$/);
  await expect(page.getByTestId('credited')).toContainText('500');
  await expect(page.getByTestId('history')).toContainText('Оплачено');
  await page.screenshot({ path: `${SCREENSHOTS}/credited-ru-dark.png`, fullPage: true });
  assertNoErrors();
});

test('an expired launch says to reopen the app', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page, /401/);
  await page.goto(launchUrl(newBuyer('en'), 'light', { ageSeconds: 2 * 86_400 }));
  await expect(page.getByTestId('load-error')).toContainText('session has expired');
  assertNoErrors();
});

test('no connection: a clear message and a working retry', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page, /ERR_FAILED|Failed to fetch/);
  await page.route('**/api/wallet', (route) => route.abort());
  await page.goto(launchUrl(newBuyer('en')));
  await expect(page.getByTestId('load-error')).toContainText('No connection');
  await page.unroute('**/api/wallet');
  await page.getByRole('button', { name: 'Retry' }).click();
  await expect(page.getByTestId('balance')).toHaveText(/^0\s+NDN$/);
  assertNoErrors();
});

test('a client too old for openInvoice is told to update, and no order is created', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  let invoices = 0;
  page.on('request', (request) => {
    if (request.url().endsWith('/api/create_invoice')) invoices += 1;
  });
  await page.goto(launchUrl(newBuyer('en'), 'light', { version: '6.0' }));
  await page.locator('[data-package="ndn-100"] button').click();
  await expect(page.getByTestId('checkout-error')).toContainText('update Telegram');
  expect(invoices).toBe(0);
  assertNoErrors();
});

/** Buys the 500 NDN package as `buyer` through the webhook, as Telegram would deliver it. */
async function payThroughTheWebhook(page: Page, request: APIRequestContext, buyer: Buyer) {
  const invoiceResponse = page.waitForResponse((response) => response.url().endsWith('/api/create_invoice'));
  await page.locator('[data-package="ndn-500"] button').click();
  const invoice = await (await invoiceResponse).json();
  const paid = await deliver(request, successfulPayment(3, buyer, invoice.order_id, 225, `e2e-live-${buyer.id}`));
  expect(paid.status()).toBe(200);
}

test('a live stream the server refused is opened again with a fresh token', async ({ page, request }) => {
  const assertNoErrors = failOnConsoleErrors(page, /503/);
  let streams = 0;
  await page.route(
    (url) => url.pathname === '/api/events',
    async (route) => {
      streams += 1;
      // The first attempt meets a restarting server: the browser gives that stream up.
      if (streams === 1) await route.fulfill({ status: 503, body: 'restarting' });
      else await route.continue();
    },
  );
  let wallets = 0;
  page.on('request', (r) => {
    if (r.url().endsWith('/api/wallet')) wallets += 1;
  });
  const buyer = newBuyer('en');
  const reopened = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/events' && r.status() === 200);
  await page.goto(launchUrl(buyer));
  await expect(page.getByTestId('balance')).toHaveText(/^0\s+NDN$/);
  await reopened;
  await expect(page.locator('main')).toHaveAttribute('data-live', 'open');
  expect(streams).toBe(2);
  expect(wallets).toBe(2);

  await payThroughTheWebhook(page, request, buyer);
  await expect(page.getByTestId('balance')).toHaveText(/^500\s+NDN$/);
  assertNoErrors();
});

test('when the launch data expires, the stream ends and the app asks to be reopened', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page, /401/);
  const opened = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/events' && r.status() === 200);
  // Launch data with twenty seconds left.
  await page.goto(launchUrl(newBuyer('en'), 'light', { ageSeconds: 86_400 - 20 }));
  await expect(page.getByTestId('balance')).toHaveText(/^0\s+NDN$/);
  await opened;
  await expect(page.locator('main')).toHaveAttribute('data-live', 'open');
  await expect(page.getByTestId('load-error')).toContainText('session has expired', { timeout: 35_000 });
  await expect(page.locator('main')).toHaveAttribute('data-live', 'closed');
  assertNoErrors();
});
