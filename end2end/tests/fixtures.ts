import { createHmac, randomUUID } from 'node:crypto';
import { test as base, expect, Page, APIRequestContext } from '@playwright/test';

export const password = process.env.E2E_PASSWORD ?? '';
export const adminEmail = process.env.E2E_ADMIN_EMAIL ?? 'admin@e2e.test';
export const operatorEmail = process.env.E2E_OPERATOR_EMAIL ?? 'operator@e2e.test';
export const managerEmail = process.env.E2E_MANAGER_EMAIL ?? 'manager@e2e.test';

// Every test fails on an uncaught page error: a broken hydration still shows the server's HTML,
// so only this (and interactions that need the wasm) catches it.
export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    // A Rust panic in the wasm reaches `pageerror` only as "unreachable"; its message is logged
    // to the console first (console_error_panic_hook), so keep that too.
    page.on('console', (msg) => {
      // A hydration mismatch is logged (naming the view's source line) before it panics, or
      // alone when the framework recovers; either is a page that did not hydrate as rendered.
      if (msg.type() === 'error' && /panicked at|hydration error/.test(msg.text())) errors.push(msg.text());
    });
    await use(page);
    expect(errors, 'uncaught errors in the page').toEqual([]);
  },
});

export { expect };

/** Waits until the wasm has hydrated the page (the app marks <body> once its effects run). */
export async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

export async function signIn(page: Page, email: string) {
  await page.goto('/login');
  await hydrated(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
  await hydrated(page);
}

/** A Shopify order as the store's webhook carries it. */
export function shopifyOrder(id: number, name: string, sku = 'TEE-BLK-M') {
  const now = new Date().toISOString();
  return {
    id, name, order_number: Number(name.slice(1)), email: 'ana.diaz@example.com', currency: 'USD',
    created_at: now, updated_at: now, financial_status: 'paid', fulfillment_status: null,
    total_price: '54.00', subtotal_price: '50.00', total_tax: '4.00', total_discounts: '0.00', taxes_included: false,
    customer: { id: 77001, email: 'ana.diaz@example.com', first_name: 'Ana', last_name: 'Diaz' },
    line_items: [{ id: id * 10, sku, title: 'Organic Cotton Tee', quantity: 2, current_quantity: 2, price: '25.00', total_discount: '0.00', tax_lines: [{ price: '4.00' }] }],
    shipping_lines: [],
    shipping_address: { name: 'Ana Diaz', address1: '12 Harbour Street', city: 'Boston', province_code: 'MA', country_code: 'US', zip: '02110' },
    billing_address: { name: 'Ana Diaz', address1: '12 Harbour Street', city: 'Boston', province_code: 'MA', country_code: 'US', zip: '02110' },
    fulfillments: [], refunds: [],
  };
}

/** Posts `order` as a signed `orders/create` webhook, as the store would. */
export async function postOrder(request: APIRequestContext, order: object) {
  const body = JSON.stringify(order);
  const hmac = createHmac('sha256', process.env.SHOPIFY_WEBHOOK_SECRET ?? '').update(body).digest('base64');
  const res = await request.post('/webhooks/shopify', {
    data: body,
    headers: {
      'Content-Type': 'application/json', 'X-Shopify-Topic': 'orders/create', 'X-Shopify-Hmac-Sha256': hmac,
      'X-Shopify-Webhook-Id': randomUUID(), 'X-Shopify-Shop-Domain': 'e2e.myshopify.com', 'X-Shopify-API-Version': '2024-10',
    },
  });
  expect(res.status()).toBe(200);
}
