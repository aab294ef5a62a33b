// The whole purchase through the sandbox page, as a developer sees it: the host plays the
// Telegram client, the fake Telegram talks to the webhook over HTTP, the Mini App runs in an
// iframe with the official telegram-web-app.js.
import { APIRequestContext, expect, FrameLocator, Page, test } from '@playwright/test';
import { failOnConsoleErrors } from './telegram';

const SCREENSHOTS = 'test-results/screens';
const ALICE = '100001';
const BORIS = '100002';

async function openSandbox(page: Page, user = ALICE, theme = 'light'): Promise<FrameLocator> {
  await page.goto('/sandbox');
  const app = page.frameLocator('#miniapp');
  await expect(app.getByTestId('balance')).toBeVisible();
  if (user !== ALICE) {
    await page.selectOption('#user', user);
  }
  if (theme !== 'light') {
    await page.selectOption('#theme', theme);
  }
  await expect(page.locator('#miniapp')).toHaveAttribute('data-loaded', `${user}:`);
  await expect(app.getByTestId('balance')).toBeVisible();
  // The chat so far (earlier tests' messages too) is on the page before anyone counts it.
  await expect(page.locator('#messages')).toHaveAttribute('data-loaded-for', user);
  return app;
}

async function balance(app: FrameLocator): Promise<number> {
  const text = (await app.getByTestId('balance').textContent()) ?? '';
  return Number(text.replace(/[^\d−-]/g, '').replace('−', '-'));
}

async function expectBalance(app: FrameLocator, value: number, timeout = 10_000) {
  await expect.poll(() => balance(app), { timeout }).toBe(value);
}

async function buy(page: Page, app: FrameLocator, packageId = 'ndn-500') {
  await app.locator(`[data-package="${packageId}"] button`).click();
  await expect(page.locator('#sheet')).toBeVisible();
}

function botMessages(page: Page, pattern: RegExp) {
  return page.locator('#messages li.bot').filter({ hasText: pattern });
}

// Tall enough for the whole phone frame, so the screenshots show the app's banners.
test.use({ viewport: { width: 1280, height: 860 } });

test.beforeEach(async ({ request }) => {
  await request.post('/sandbox/api/knobs', { data: { copies: 1, delay_secs: 0, drop_first: false } });
});

test('purchase: balance updates live and the bot sends a message', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  const app = await openSandbox(page);
  await page.screenshot({ path: `${SCREENSHOTS}/sandbox-home.png` });
  const before = await balance(app);
  const messagesBefore = await botMessages(page, /^\+500 NDN/).count();
  await buy(page, app);
  await expect(page.locator('#sheet-amount')).toHaveText('225');
  await page.click('#pay');
  await expectBalance(app, before + 500);
  await expect(app.getByTestId('credited')).toContainText('500');
  await expect(botMessages(page, /^\+500 NDN/)).toHaveCount(messagesBefore + 1);
  await expect(page.locator('body')).toHaveAttribute('data-last-haptic', 'success');
  await page.screenshot({ path: `${SCREENSHOTS}/success.png` });
  assertNoErrors();
});

test('cancel: nothing changes', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  const app = await openSandbox(page);
  const before = await balance(app);
  await buy(page, app);
  await expect(app.locator('.package button').first()).toBeDisabled();
  await page.click('#cancel');
  await expect(page.locator('#sheet')).toBeHidden();
  await expect(app.locator('.package button').first()).toBeEnabled();
  await expect(app.getByTestId('checkout-error')).toHaveCount(0);
  await page.waitForTimeout(500);
  expect(await balance(app)).toBe(before);
  assertNoErrors();
});

test('failed payment: a clear message and no credit', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  const app = await openSandbox(page);
  const before = await balance(app);
  await buy(page, app);
  await page.click('#pay-fail');
  await expect(page.locator('#sheet-error')).toContainText('declined');
  await page.click('#cancel');
  await expect(app.getByTestId('checkout-error')).toContainText('did not go through');
  await page.screenshot({ path: `${SCREENSHOTS}/error.png` });
  await page.waitForTimeout(500);
  expect(await balance(app)).toBe(before);
  assertNoErrors();
});

/** How many `successful_payment` updates the webhook has received (the sandbox's `/metrics`). */
async function paymentUpdatesReceived(request: APIRequestContext): Promise<number> {
  const text = await (await request.get('/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith('ndn_updates_received_total{kind="successful_payment"}'));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('each payment update delivered 5 times is credited once', async ({ page, request }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  await request.post('/sandbox/api/knobs', { data: { copies: 5, delay_secs: 0, drop_first: true } });
  const app = await openSandbox(page);
  const before = await balance(app);
  const messagesBefore = await botMessages(page, /^\+100 NDN/).count();
  const copiesBefore = await paymentUpdatesReceived(request);
  await buy(page, app, 'ndn-100');
  await page.click('#pay');
  await expectBalance(app, before + 100);
  // The webhook did get every copy: five, and the first again after its answer was lost.
  await expect.poll(async () => (await paymentUpdatesReceived(request)) - copiesBefore).toBeGreaterThanOrEqual(6);
  await page.reload();
  await expectBalance(app, before + 100);
  await expect(botMessages(page, /^\+100 NDN/)).toHaveCount(messagesBefore + 1);
  assertNoErrors();
});

test('delayed webhook: "confirming payment" first, then the new balance without reload', async ({ page, request }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  await request.post('/sandbox/api/knobs', { data: { copies: 1, delay_secs: 5, drop_first: false } });
  const app = await openSandbox(page);
  const before = await balance(app);
  await buy(page, app);
  await page.click('#pay');
  await expect(app.getByTestId('confirming')).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}/confirming.png` });
  expect(await balance(app)).toBe(before);
  await expectBalance(app, before + 500, 15_000);
  await expect(app.getByTestId('credited')).toBeVisible();
  assertNoErrors();
});

test('without the live stream the app polls and still shows the credit', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page, /ERR_FAILED|EventSource/);
  await page.route('**/api/events**', (route) => route.abort());
  const app = await openSandbox(page);
  const before = await balance(app);
  await buy(page, app, 'ndn-100');
  await page.click('#pay');
  await expectBalance(app, before + 100);
  await expect(app.getByTestId('credited')).toBeVisible();
  assertNoErrors();
});

test('refund: the balance goes down and the history shows it', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  const app = await openSandbox(page);
  const before = await balance(app);
  await buy(page, app, 'ndn-1000');
  await page.click('#pay');
  await expectBalance(app, before + 1000);
  await page.locator('#charges li button', { hasText: 'Refund' }).first().click();
  await expectBalance(app, before);
  await expect(app.getByTestId('history')).toContainText('Refunded');
  await expect(page.locator('#messages li.bot').last()).toContainText('Refund');
  assertNoErrors();
});

test('Russian buyer in the dark theme', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  const app = await openSandbox(page, BORIS, 'dark');
  await expect(app.getByText('Ваш баланс')).toBeVisible();
  await expect(app.locator('body')).toHaveCSS('background-color', 'rgb(23, 33, 43)');
  const before = await balance(app);
  await buy(page, app);
  await page.click('#pay');
  await expectBalance(app, before + 500);
  await expect(app.getByTestId('credited')).toContainText('зачислены');
  await expect(botMessages(page, /баланс/).last()).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}/russian-dark.png` });
  assertNoErrors();
});

test('bot chat: /start answers with a button that opens the Mini App', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  await openSandbox(page);
  await page.fill('#command', '/start');
  await page.press('#command', 'Enter');
  const reply = page.locator('#messages li.bot', { hasText: 'Hi, Alice' }).last();
  await expect(reply).toBeVisible();
  await expect(reply.getByRole('button', { name: 'Open shop' })).toBeVisible();
  assertNoErrors();
});

test("the operator's backend receives payment.credited, signed, in the receiver panel", async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  const app = await openSandbox(page);
  const before = await balance(app);
  const credited = page.locator('#received li[data-type="payment.credited"]');
  const countBefore = await credited.count();
  await buy(page, app, 'ndn-100');
  await page.click('#pay');
  await expectBalance(app, before + 100);
  await expect(credited).toHaveCount(countBefore + 1);
  const newest = credited.first();
  await expect(newest).toHaveClass('verified');
  await expect(newest).toContainText(`user ${ALICE}`);
  await expect(newest).toContainText(`100 NDN, balance ${before + 100}`);
  await expect(newest).toContainText('✓ signature valid');
  await page.locator('#received').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${SCREENSHOTS}/sandbox-receiver.png` });
  assertNoErrors();
});

test('a launch answered late never replaces the newer one', async ({ page }) => {
  await page.goto('/sandbox');
  const frame = page.locator('#miniapp');
  await expect(frame).toHaveAttribute('data-loaded', `${ALICE}:`);
  // Alice's next launch is answered late: after the switch to Boris has loaded his page.
  await page.route(/\/sandbox\/api\/launch\?user=100001/, async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await route.continue();
  });
  await page.selectOption('#lang', 'ru');
  await page.selectOption('#user', BORIS);
  await expect(frame).toHaveAttribute('data-loaded', `${BORIS}:ru`);
  await expect(page.locator('#events')).toContainText(`launch as user ${ALICE} dropped`);
  const src = (await frame.getAttribute('src')) ?? '';
  expect(src).toContain(BORIS);
  expect(src).not.toContain(ALICE);
  await expect(frame).toHaveAttribute('data-loaded', `${BORIS}:ru`);
  await expect(page.frameLocator('#miniapp').getByTestId('balance')).toBeVisible();
});
