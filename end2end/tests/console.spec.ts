// The operator console through the sandbox: Olga (the sandbox's operator) sees the overview
// and its chart after purchases, credits a held payment and refunds a purchase while the
// buyer's own app, open beside it, follows live; a buyer sees no trace of the console. Every
// console view is photographed in both themes and both languages.
import { expect, FrameLocator, Page, test } from '@playwright/test';
import { failOnConsoleErrors } from './telegram';

const SCREENSHOTS = 'test-results/screens';
const ALICE = '100001';
const OLGA = '100003';

test.use({ viewport: { width: 1280, height: 900 } });

test.beforeEach(async ({ request }) => {
  await request.post('/sandbox/api/knobs', { data: { copies: 1, delay_secs: 0, drop_first: false } });
});

async function openAs(page: Page, user: string, theme = 'light', lang = ''): Promise<FrameLocator> {
  await page.goto('/sandbox');
  const app = page.frameLocator('#miniapp');
  await expect(app.getByTestId('balance')).toBeVisible();
  if (lang) await page.selectOption('#lang', lang);
  if (theme !== 'light') await page.selectOption('#theme', theme);
  if (user !== ALICE) await page.selectOption('#user', user);
  // Switching language then user launches twice; wait for the last launch's page, not the
  // first one still loading.
  await expect(page.locator('#miniapp')).toHaveAttribute('data-loaded', `${user}:${lang}`);
  if (user === OLGA) await expect(app.getByTestId('operator-tabs')).toBeVisible();
  await expect(app.getByTestId('balance')).toBeVisible();
  return app;
}

async function balance(app: FrameLocator): Promise<number> {
  const text = (await app.getByTestId('balance').textContent()) ?? '';
  return Number(text.replace(/[^\d−-]/g, '').replace('−', '-'));
}

async function expectBalance(app: FrameLocator, value: number) {
  await expect.poll(() => balance(app), { timeout: 10_000 }).toBe(value);
}

/** Opens the console tab, then one of its views (0 overview, 1 held, 2 find, 3 health). */
async function openView(app: FrameLocator, view: number) {
  await app.getByTestId('operator-tabs').getByRole('tab').nth(1).click();
  await expect(app.getByTestId('console')).toBeVisible();
  await app.getByTestId('console').getByRole('tab').nth(view).click();
}

/** Answers the Telegram confirmation popup the host page shows. */
async function confirm(page: Page) {
  await expect(page.locator('#popup')).toBeVisible();
  await page.locator('#popup-buttons button[data-button-id="ok"]').click();
}

test('a buyer sees no trace of the console', async ({ page }) => {
  const assertNoErrors = failOnConsoleErrors(page);
  const app = await openAs(page, ALICE);
  await expect(app.getByTestId('history')).toBeVisible();
  await expect(app.getByTestId('operator-tabs')).toHaveCount(0);
  await expect(app.getByTestId('console')).toHaveCount(0);
  await expect(app.locator('body')).not.toContainText('Console');
  // The console's code is not even downloaded.
  const chunks = await page.evaluate(() =>
    performance.getEntriesByType('resource').map((entry) => entry.name).filter((name) => name.includes('split_')),
  );
  const frameChunks = await page.frameLocator('#miniapp').locator('body').evaluate(() =>
    performance.getEntriesByType('resource').map((entry) => entry.name).filter((name) => name.includes('split_')),
  );
  expect([...chunks, ...frameChunks]).toEqual([]);
  assertNoErrors();
});

test('operator: overview after purchases, credit a held payment, refund, the buyer follows live', async ({ browser }) => {
  const buyerPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const operatorPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const assertBuyer = failOnConsoleErrors(buyerPage);
  const assertOperator = failOnConsoleErrors(operatorPage);

  // Two purchases by Alice, in her own app.
  const alice = await openAs(buyerPage, ALICE);
  let expected = await balance(alice);
  for (const [packageId, ndn] of [['ndn-500', 500], ['ndn-100', 100]] as const) {
    await alice.locator(`[data-package="${packageId}"] button`).click();
    await buyerPage.click('#pay');
    expected += ndn;
    await expectBalance(alice, expected);
  }
  // A payment the shop cannot match: recorded and held, nothing credited.
  const held = await buyerPage.request.post('/sandbox/api/unmatched', { data: { user: Number(ALICE), stars: 225 } });
  const { charge_id: chargeId } = await held.json();

  const olga = await openAs(operatorPage, OLGA);
  await openView(olga, 0);
  const overview = olga.getByTestId('console-overview');
  await expect(overview.getByTestId('chart')).toBeVisible();
  await expect(overview.locator('svg rect.bar')).toHaveCount(30);
  await expect(overview.locator('svg circle.dot')).toHaveCount(1);
  await expect(overview.locator('table.figures')).toContainText('Purchases');
  await expect(overview.getByTestId('bot-stars')).toContainText('⭐');

  // Credit the held payment: Telegram's confirmation first; Alice's open app follows.
  await openView(olga, 1);
  const card = olga.locator(`[data-charge="${chargeId}"]`);
  await expect(card).toBeVisible({ timeout: 10_000 });
  await expect(card).toContainText('payload matches no order');
  await card.getByRole('button', { name: 'Credit' }).click();
  await confirm(operatorPage);
  await expect(olga.getByTestId('outcome')).toContainText('credited 500 NDN');
  expected += 500;
  await expectBalance(alice, expected);
  await expect(olga.locator(`[data-charge="${chargeId}"]`)).toHaveCount(0);

  // Find Alice and refund that payment: the Stars go back, her app shows the debit.
  await openView(olga, 2);
  await olga.getByRole('searchbox').fill(ALICE);
  await olga.getByRole('button', { name: 'Find', exact: true }).click();
  const buyer = olga.getByTestId('buyer-card');
  await expect
    .poll(async () => Number(((await buyer.getByTestId('buyer-balance').textContent()) ?? '').replace(/\D/g, '')))
    .toBe(expected);
  await buyer.locator(`li[data-charge="${chargeId}"]`).getByRole('button', { name: 'Refund' }).click();
  await confirm(operatorPage);
  await expect(olga.getByTestId('outcome')).toContainText('Stars refunded by Telegram');
  expected -= 500;
  await expectBalance(alice, expected);

  // The audit log has both, with who did them.
  await openView(olga, 3);
  const log = olga.getByTestId('audit-log');
  await expect(log).toContainText(`credit ${chargeId}`);
  await expect(log).toContainText(`refund ${chargeId}`);
  await expect(log).toContainText(OLGA);

  // The books of this month, as a file.
  await openView(olga, 0);
  const downloading = operatorPage.waitForEvent('download');
  await olga.getByTestId('export-csv').click();
  const file = await downloading;
  expect(file.suggestedFilename()).toMatch(/^ndn-transfers-\d{4}-\d{2}-01-to-\d{4}-\d{2}-\d{2}\.csv$/);
  const text = (await (await file.createReadStream()).toArray()).join('');
  expect(text.startsWith('\ufefftime,kind,user_id')).toBe(true);
  expect(text).toContain(chargeId);

  assertBuyer();
  assertOperator();
  await buyerPage.close();
  await operatorPage.close();
});

for (const [theme, lang] of [['light', 'en'], ['dark', 'en'], ['light', 'ru'], ['dark', 'ru']]) {
  test(`console screenshots: ${theme}, ${lang}`, async ({ page }) => {
    const assertNoErrors = failOnConsoleErrors(page);
    // Something to credit or refund in the Held view.
    await page.request.post('/sandbox/api/unmatched', { data: { user: 100002, stars: 50 } });
    const olga = await openAs(page, OLGA, theme, lang);
    const names = ['overview', 'held', 'find', 'health'];
    for (const [index, name] of names.entries()) {
      await openView(olga, index);
      const view = olga.getByTestId(`console-${name}`);
      await expect(view).toBeVisible();
      if (name === 'find') {
        await olga.getByRole('searchbox').fill(ALICE);
        await olga.getByRole('searchbox').press('Enter');
        await expect(olga.getByTestId('buyer-card')).toBeVisible();
      } else if (name === 'held') {
        // The payment is delivered to the webhook in the background: reopen until it is listed.
        await expect(async () => {
          await openView(olga, 0);
          await openView(olga, 1);
          await expect(view.locator('article.held-payment').first()).toBeVisible({ timeout: 1_000 });
        }).toPass({ timeout: 10_000 });
      } else {
        await expect(view.locator('.hint', { hasText: /Loading|Загрузка/ })).toHaveCount(0);
      }
      if (lang === 'ru') await expect(olga.getByTestId('console')).toContainText('Обзор');
      await page.screenshot({ path: `${SCREENSHOTS}/console-${name}-${theme}-${lang}.png` });
    }
    assertNoErrors();
  });
}
