import { createHmac, randomUUID } from 'node:crypto';
import { test, expect, signIn, operatorEmail, shopifyOrder } from './fixtures';

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
