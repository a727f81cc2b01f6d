import { test as base, expect, Page } from '@playwright/test';

export const password = process.env.E2E_PASSWORD ?? '';
export const adminEmail = process.env.E2E_ADMIN_EMAIL ?? 'admin@e2e.test';
export const operatorEmail = process.env.E2E_OPERATOR_EMAIL ?? 'operator@e2e.test';

// Every test fails on an uncaught page error: a broken hydration still shows the server's HTML,
// so only this (and interactions that need the wasm) catches it.
export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
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
