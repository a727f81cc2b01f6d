import { test, expect, hydrated, signIn, adminEmail, operatorEmail, password } from './fixtures';

const allSections = ['Exceptions', 'Orders', 'SKU mappings', 'Merges', 'Dashboard', 'Audit', 'Admin'];

test('an admin signs in and sees every section', async ({ page }) => {
  await signIn(page, adminEmail);
  await expect(page).toHaveURL(/\/exceptions$/);
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const name of allSections) {
    await expect(nav.getByRole('link', { name, exact: true })).toBeVisible();
  }
  await nav.getByRole('link', { name: 'Audit', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Audit', level: 1 })).toBeVisible();
  await expect(page.getByRole('cell', { name: 'signin.succeeded' }).first()).toBeVisible();
});

test('an operator sees only the operator sections and is refused the admin page', async ({ page }) => {
  await signIn(page, operatorEmail);
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const name of ['Exceptions', 'Orders', 'SKU mappings']) {
    await expect(nav.getByRole('link', { name, exact: true })).toBeVisible();
  }
  for (const name of ['Merges', 'Dashboard', 'Audit', 'Admin']) {
    await expect(nav.getByRole('link', { name, exact: true })).toHaveCount(0);
  }
  await page.goto('/admin');
  await expect(page.getByRole('heading', { name: "You don't have access to this page" })).toBeVisible();
  await expect(page.getByRole('table')).toHaveCount(0);
});

test('a wrong password gets a clear message and no session', async ({ page }) => {
  await page.goto('/login');
  await hydrated(page);
  await page.getByLabel('Email').fill(operatorEmail);
  await page.getByLabel('Password').fill('not the right password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText("That email and password don't match an active account.");
  await expect(page).toHaveURL(/\/login/);
  await page.goto('/orders');
  await expect(page).toHaveURL(/\/login\?next=%2Forders|\/login\?next=\/orders/);
});

test('signing out ends the session', async ({ page }) => {
  await signIn(page, operatorEmail);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await page.goto('/exceptions');
  await expect(page).toHaveURL(/\/login/);
});

test('an unknown address shows a real 404 page', async ({ page }) => {
  await signIn(page, adminEmail);
  const response = await page.goto('/no/such/page');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await page.getByRole('link', { name: 'Go to SyncDesk' }).click();
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
});

test('an admin adds a user, who can then sign in with only their role', async ({ page, browser }) => {
  await signIn(page, adminEmail);
  await page.goto('/admin');
  await hydrated(page);
  const email = `steward-${Date.now()}@e2e.test`;
  await page.getByLabel('Name').fill('Sasha Steward');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.locator('#new-steward').check();
  await page.getByRole('button', { name: 'Add user' }).click();
  await expect(page.getByRole('status')).toHaveText(`Added ${email}.`);
  await expect(page.getByRole('cell', { name: email, exact: true })).toBeVisible();

  const other = await browser.newPage();
  await signIn(other, email);
  await expect(other).toHaveURL(/\/merges$/);
  await expect(other.getByRole('navigation', { name: 'Main' }).getByRole('link')).toHaveText(['Merges']);
  await other.close();

  // The audit log shows what was set, field by field, in words.
  await page.goto('/audit?action=user.created');
  const change = page.getByRole('row').filter({ hasText: email }).getByRole('cell').last();
  await expect(change).toContainText('display name Sasha Steward');
  await expect(change).toContainText('roles steward');
});
