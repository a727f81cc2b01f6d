import { test, expect, hydrated, signIn, adminEmail, operatorEmail, managerEmail, shopifyOrder, postOrder } from './fixtures';

// The server runs `syncdesk demo --no-traffic`: a simulated CRM and ERP, no store traffic. An
// order with a SKU nobody mapped becomes an ERP exception, grouped by that SKU.

function unmappedOrders(count: number) {
  const sku = `NEW-E2E-${Math.floor(Math.random() * 1e6)}`;
  const base = Date.now();
  const orders = Array.from({ length: count }, (_, i) => {
    const name = `#${7000 + Math.floor(Math.random() * 2000)}`;
    return shopifyOrder(base + i, name, sku);
  });
  return { sku, orders };
}

test('new exceptions appear by themselves, and an operator retries a whole group after counting it', async ({ page, request }) => {
  await signIn(page, operatorEmail);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Exceptions', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'By cause' })).toBeVisible();

  // Orders arrive while the page is open: their group shows up without a reload.
  const { sku, orders } = unmappedOrders(2);
  for (const order of orders) await postOrder(request, order);
  const group = page.getByRole('table', { name: 'By cause' }).getByRole('row').filter({ hasText: sku });
  await expect(group).toBeVisible({ timeout: 20_000 });
  await expect(group).toContainText('2');
  await expect(group.getByRole('link', { name: 'Map SKU' })).toBeVisible();

  // Retry the group: counted first, then confirmed.
  await group.getByRole('button', { name: 'Retry all' }).click();
  const dialog = page.getByRole('alertdialog');
  await expect(dialog).toContainText('2 orders will be sent again now.');
  await dialog.getByRole('button', { name: 'Retry now' }).click();
  await expect(page.getByRole('status')).toContainText('2 orders queued to be sent again now.');
  await expect(dialog).toHaveCount(0);

  // Still unmapped, so they wait again — one exception per order, not more.
  await expect(group).toContainText('2');

  // Expand the group to its orders, and skip one of them with a reason.
  await group.getByRole('link', { name: 'Show 2 orders' }).click();
  await expect(page.getByRole('heading', { name: new RegExp(`Orders waiting on .*${sku}`) })).toBeVisible();
  const first = orders[0].name;
  const list = page.getByRole('table', { name: /Orders waiting on/ });
  const row = list.getByRole('row').filter({ hasText: first });
  await row.getByRole('checkbox').check();
  await expect(page.getByText('1 selected')).toBeVisible();
  await page.getByRole('group', { name: /Act on the selection/ }).getByRole('button', { name: 'Skip…' }).click();
  await expect(page.getByRole('alertdialog')).toContainText('1 order will be skipped.');
  await expect(page.getByRole('button', { name: 'Skip now' })).toBeDisabled();
  await page.getByLabel(/Why skip them/).fill('Test order placed by the e2e suite');
  await page.getByRole('button', { name: 'Skip now' }).click();
  await expect(page.getByRole('status')).toContainText('1 order skipped.');
  await expect(list.getByRole('row').filter({ hasText: first })).toHaveCount(0);

  // The skipped one is still found under "Skipped", with the reason.
  await page.getByLabel('Search').fill(first);
  await page.getByLabel('Status').selectOption('skipped');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(list.getByRole('row').filter({ hasText: first })).toContainText('Test order placed by the e2e suite');
});

test('a manager sees the queue without action buttons, and the server refuses the action', async ({ page, request }) => {
  const { sku, orders } = unmappedOrders(1);
  await postOrder(request, orders[0]);
  await signIn(page, managerEmail);
  await page.goto('/exceptions');
  const group = page.getByRole('table', { name: 'By cause' }).getByRole('row').filter({ hasText: sku });
  await expect(group).toBeVisible({ timeout: 20_000 });
  await expect(group.getByRole('button', { name: 'Retry all' })).toHaveCount(0);
  await expect(page.getByRole('group', { name: /Act on the selection/ })).toHaveCount(0);

  // Calling the server function directly, with the manager's session, is refused.
  const res = await page.request.post('/rpc/exceptions/triage', {
    data: { target: { kind: 'group', fingerprint: `missing_sku:erp:${sku}` }, request: { action: 'retry' }, dry_run: false },
    headers: { Origin: new URL(page.url()).origin },
  });
  expect(res.status()).toBe(403);
});

test('the queue hydrates while the engine writes exceptions into it', async ({ page, request }) => {
  // Each load races a worker turning the order just posted into an exception. The page once
  // sent the data of one rendering pass and the HTML of another, and failed to hydrate when they
  // differed; the fixture fails the test on any logged hydration error.
  await signIn(page, operatorEmail);
  for (let i = 0; i < 6; i++) {
    const { sku, orders } = unmappedOrders(1);
    await postOrder(request, orders[0]);
    await page.goto('/exceptions');
    await hydrated(page);
    await expect(page.getByRole('table', { name: 'By cause' }).getByRole('row').filter({ hasText: sku })).toBeVisible({ timeout: 10_000 });
  }
});

test('mapping a SKU releases its orders: they sync to the ERP and their exceptions resolve', async ({ page, request }) => {
  const { sku, orders } = unmappedOrders(2);
  for (const order of orders) await postOrder(request, order);
  await signIn(page, operatorEmail);
  await page.goto('/exceptions');
  const group = page.getByRole('table', { name: 'By cause' }).getByRole('row').filter({ hasText: sku });
  await expect(group).toBeVisible({ timeout: 20_000 });

  // The group's fix leads to the SKU, ranked among those waiting.
  await group.getByRole('link', { name: 'Map SKU' }).click();
  await expect(page.getByRole('heading', { name: 'Waiting for a mapping' })).toBeVisible();
  const line = page.getByRole('table', { name: 'Waiting for a mapping' }).getByRole('row').filter({ hasText: sku });
  await expect(line).toContainText('2');
  await line.getByLabel(`ERP item code for ${sku}`).fill('ERP-TEE-BLK-M');
  await line.getByRole('button', { name: 'Map and release' }).click();
  await expect(page.getByRole('status')).toContainText(`SKU ${sku} now maps to ERP-TEE-BLK-M: 2 orders released`);
  await expect(line).toHaveCount(0);
  const mapping = page.getByRole('table', { name: 'Mappings', exact: true }).getByRole('row').filter({ hasText: sku });
  await expect(mapping).toContainText('ERP-TEE-BLK-M');
  await expect(page.getByRole('table', { name: 'History' }).getByRole('row').filter({ hasText: sku }).first()).toContainText('saved');
  // Its orders may still ship or be refunded, so the mapping cannot be deleted yet.
  await mapping.getByRole('button', { name: `Delete the mapping of ${sku}` }).click();
  await expect(page.getByRole('alert')).toContainText('still need its ERP item code');

  // The orders reach the ERP, and the queue no longer holds the group.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Orders', exact: true }).click();
  for (const order of orders) {
    const row = page.getByRole('row').filter({ hasText: order.name });
    await expect(async () => {
      await page.reload();
      await expect(row.locator('td').nth(4)).toHaveText('synced', { timeout: 1_000 });
    }).toPass({ timeout: 20_000 });
  }
  await page.goto(`/exceptions?status=resolved&q=${sku}`);
  await expect(page.getByRole('table', { name: /Matching/ }).getByRole('row').filter({ hasText: orders[0].name })).toContainText(`mapped to ERP item ERP-TEE-BLK-M`);
});

test('an ERP that refuses the credentials pauses with one exception, and an admin resumes it', async ({ page, request }) => {
  const erp = process.env.E2E_ERP_URL ?? '';
  expect(erp, 'scripts/test.sh gives the simulated ERP\'s address').toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  const order = shopifyOrder(Date.now(), `#${9000 + Math.floor(Math.random() * 900)}`);
  await signIn(page, adminEmail);
  const group = page.getByRole('table', { name: 'By cause' }).getByRole('row').filter({ hasText: 'auth expired' });
  expect((await request.put(`${erp}_sim/faults`, { data: { revoked: true } })).status()).toBe(200);
  try {
    await postOrder(request, order);
    await page.goto('/exceptions');
    await expect(group).toBeVisible({ timeout: 20_000 });
    await expect(group).toContainText('rejected our credentials');
    await expect(group).toContainText('An admin renews the credentials and restarts SyncDesk');
    // No order of its own to send again: the list offers no Retry for it.
    const wide = page.getByRole('table', { name: 'All in this view' }).getByRole('row').filter({ hasText: 'whole destination' });
    await expect(wide).toBeVisible();
    await expect(wide.getByRole('button', { name: 'Retry' })).toHaveCount(0);
  } finally {
    // The ERP accepts them again (as after a fix on its side); SyncDesk still holds back.
    expect((await request.delete(`${erp}_sim/faults`)).status()).toBe(200);
  }
  await group.getByRole('button', { name: 'Resume deliveries' }).click();
  await expect(group).toHaveCount(0, { timeout: 10_000 });

  // The order that waited reaches the ERP, and the audit log says who resumed it.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Orders', exact: true }).click();
  const row = page.getByRole('row').filter({ hasText: order.name });
  await expect(async () => {
    await page.reload();
    await expect(row.locator('td').nth(4)).toHaveText('synced', { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await page.goto('/audit?action=destination.resumed');
  const entry = page.getByRole('row').filter({ hasText: 'destination:erp' }).first();
  await expect(entry).toContainText(adminEmail);
});

test('an order the store sent unreadable waits in the queue, with a resync from the store as its fix', async ({ page, request }) => {
  await signIn(page, operatorEmail);
  await page.goto('/exceptions?destination=store');
  await hydrated(page);
  const id = Date.now();
  const order = shopifyOrder(id, `#${9000 + Math.floor(Math.random() * 900)}`);
  order.line_items[0].price = 'twelve';
  await postOrder(request, order);

  // Its row names the order by the store's id (SyncDesk never took it in) and what could not
  // be read; it has no task to retry, only the resync that reads the order again.
  const list = page.getByRole('table', { name: 'All in this view' });
  const row = list.getByRole('row').filter({ hasText: `store id ${id}` });
  await expect(row).toBeVisible({ timeout: 20_000 });
  await expect(row).toContainText('cannot read (at line_items[0].price)');
  await expect(row.getByRole('button', { name: 'Retry' })).toHaveCount(0);
  const cause = page.getByRole('table', { name: 'By cause' }).getByRole('row').filter({ hasText: `the order with store id ${id}` });
  await expect(cause.getByRole('button', { name: 'Retry all' })).toHaveCount(0);

  // The demo's store has no such order: the resync says so, and the exception stays.
  await row.getByRole('button', { name: 'Resync from the store' }).click();
  await expect(page.getByRole('alert').filter({ hasText: `The store has no order with id ${id}.` })).toBeVisible();
  await expect(row).toBeVisible();
});
