import { createHmac, randomUUID } from 'node:crypto';
import { test, expect, hydrated, signIn, operatorEmail, shopifyOrder, postOrder } from './fixtures';

const secret = process.env.SHOPIFY_WEBHOOK_SECRET ?? '';

test('a signed store webhook shows up as an order an operator can find', async ({ page, request }) => {
  const name = `#${9000 + Math.floor(Math.random() * 999)}`;
  const body = JSON.stringify(shopifyOrder(Date.now(), name));
  const hmac = createHmac('sha256', secret).update(body).digest('base64');
  const res = await request.post('/webhooks/shopify', {
    data: body,
    headers: {
      'Content-Type': 'application/json', 'X-Shopify-Topic': 'orders/create', 'X-Shopify-Hmac-Sha256': hmac,
      'X-Shopify-Webhook-Id': randomUUID(), 'X-Shopify-Shop-Domain': 'e2e.myshopify.com', 'X-Shopify-API-Version': '2024-10',
    },
  });
  expect(res.status()).toBe(200);
  expect((await res.json()).outcome).toBe('applied');

  // A forged signature is refused.
  const forged = await request.post('/webhooks/shopify', {
    data: body,
    headers: { 'Content-Type': 'application/json', 'X-Shopify-Topic': 'orders/create', 'X-Shopify-Hmac-Sha256': 'Zm9yZ2Vk', 'X-Shopify-Webhook-Id': randomUUID() },
  });
  expect(forged.status()).toBe(401);

  await signIn(page, operatorEmail);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Orders', exact: true }).click();
  const row = page.getByRole('row').filter({ hasText: name });
  await expect(row).toBeVisible();
  await expect(row).toContainText('paid');
  await expect(row).toContainText('USD 54.00');

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Exceptions', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'By cause' })).toBeVisible();
});

test('an operator finds an order by its number and reads its timeline across systems', async ({ page, request }) => {
  const number = 6000 + Math.floor(Math.random() * 999);
  const order = shopifyOrder(Date.now(), `#${number}`);
  await postOrder(request, order);
  await signIn(page, operatorEmail);
  await page.goto('/orders');
  await page.getByLabel('Find an order').fill(String(number));
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByRole('link', { name: `#${number}` }).click();
  await expect(page.getByRole('heading', { name: `Order #${number}` })).toBeVisible();

  // The store's webhook, then the CRM's and the ERP's deliveries, each in the timeline.
  const timeline = page.getByRole('table').filter({ hasText: 'When (UTC)' });
  await expect(timeline.getByRole('row').filter({ hasText: 'orders/create' })).toContainText('applied');
  await expect(async () => {
    await page.reload();
    await expect(timeline.getByRole('row').filter({ hasText: 'ERP' }).filter({ hasText: 'synced' })).toHaveCount(1, { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  const erp = page.getByRole('region', { name: 'ERP' });
  await expect(erp).toContainText('synced');
  await erp.getByText('ERP: payload for the current state').click();
  await expect(erp.locator('pre')).toContainText('TEE-BLK-M');

  // Sending a synced order again says so, and sends nothing.
  await hydratedClick(page, erp.getByRole('button', { name: 'Send to the ERP again' }));
  await expect(page.getByRole('status')).toContainText('Already applied');
});

test('an operator edits the payload the ERP refused and sends it; the original is kept', async ({ page, request }) => {
  const number = 4000 + Math.floor(Math.random() * 999);
  const order = shopifyOrder(Date.now(), `#${number}`);
  order.shipping_address.address1 = 'Apartment 4B, The Old Harbour Warehouse Building, 12 Harbour Street';
  await postOrder(request, order);
  await signIn(page, operatorEmail);
  await page.goto(`/orders/${order.id}`);
  const erp = page.getByRole('region', { name: 'ERP' });
  await expect(async () => {
    await page.reload();
    await expect(erp).toContainText('needs action', { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await expect(erp.locator('.problems')).toContainText('street');
  await hydrated(page);

  // Shorten the street in the ERP's payload only, and send it.
  await erp.getByText('Edit what the ERP gets').click();
  const editor = erp.getByLabel('ERP payload (JSON)');
  const payload = JSON.parse(await editor.inputValue());
  payload.ship_to.street = '12 Harbour Street';
  payload.ship_to.street2 = 'Apt 4B, Old Harbour Warehouse';
  await editor.fill(JSON.stringify(payload, null, 2));
  await erp.getByRole('button', { name: 'Save and send to the ERP' }).click();
  await expect(page.getByRole('status')).toContainText('Saved your edit (2 fields changed: ship_to.street, ship_to.street2)');

  await expect(async () => {
    await page.reload();
    await expect(erp.getByRole('heading')).toContainText('synced', { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await expect(erp).toContainText('edited');
  await erp.getByText('ERP: the computed payload (kept, not sent)').click();
  await expect(erp.locator('pre').last()).toContainText('Old Harbour Warehouse Building');
  const timeline = page.getByRole('table').filter({ hasText: 'When (UTC)' });
  await expect(timeline.getByRole('row').filter({ hasText: 'payload edited' })).toContainText('ship_to.street');
});

async function hydratedClick(page: import('@playwright/test').Page, target: import('@playwright/test').Locator) {
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  await target.click();
}
