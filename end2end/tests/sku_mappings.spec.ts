import { test, expect, signIn, operatorEmail, shopifyOrder, postOrder, hydrated } from './fixtures';

// The server runs `syncdesk demo --no-traffic`: its simulated ERP knows `ERP-<sku>` for the
// demo catalogue's SKUs (e.g. ERP-TEE-BLK-M) and nothing else.

test('a CSV with a bad row imports nothing and names the rows; the fixed file releases the orders', async ({ page, request }) => {
  const sku = `NEW-CSV-${Math.floor(Math.random() * 1e6)}`;
  const order = shopifyOrder(Date.now(), `#${3000 + Math.floor(Math.random() * 999)}`, sku);
  await postOrder(request, order);
  await signIn(page, operatorEmail);
  await page.goto('/sku-mappings');
  const waiting = page.getByRole('table', { name: 'Waiting for a mapping' }).getByRole('row').filter({ hasText: sku });
  await expect(async () => {
    await page.reload();
    await expect(waiting).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await hydrated(page);

  // A spreadsheet's Windows-1252 export ("Café" in one byte) is refused in the browser: read as
  // UTF-8 it would map a SKU no order carries.
  const latin1 = Buffer.concat([Buffer.from('sku,item_code\nCaf'), Buffer.from([0xe9]), Buffer.from('-Mug,ERP-TEE-BLK-M\n')]);
  await page.getByLabel('CSV file').setInputFiles({ name: 'excel.csv', mimeType: 'text/csv', buffer: latin1 });
  await expect(page.getByRole('alert')).toContainText('This file is not UTF-8 text');
  await expect(page.getByLabel('Contents (or paste them here)')).toHaveValue('');

  // One good row, one item code with a space, one the ERP does not know: nothing is applied.
  const bad = `sku,item_code\n${sku},ERP-TEE-BLK-M\n${sku}-B,ERP TEE\n${sku}-C,ERP-NO-SUCH-ITEM\n`;
  await page.getByLabel('CSV file').setInputFiles({ name: 'mappings.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
  await expect(page.getByLabel('Contents (or paste them here)')).toHaveValue(bad);
  await page.getByRole('button', { name: 'Import' }).click();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('Nothing was imported: 2 of 3 rows are wrong.');
  const rejected = page.getByRole('table', { name: 'Rejected rows' });
  await expect(rejected.getByRole('row').filter({ hasText: `${sku}-B` })).toContainText('cannot contain spaces');
  await expect(rejected.getByRole('row').filter({ hasText: `${sku}-C` })).toContainText('The ERP has no item ERP-NO-SUCH-ITEM');
  await expect(rejected.getByRole('row').filter({ hasText: `${sku}-C` }).getByRole('cell').first()).toHaveText('4');
  await expect(waiting).toBeVisible();

  // The fixed file: the order is released and its SKU leaves the waiting list.
  const good = `sku,item_code\n${sku},ERP-TEE-BLK-M\n`;
  await page.getByLabel('CSV file').setInputFiles({ name: 'fixed.csv', mimeType: 'text/csv', buffer: Buffer.from(good) });
  await page.getByRole('button', { name: 'Import' }).click();
  await expect(page.getByRole('status')).toContainText('Imported 1 row: 1 new, 0 changed, 0 already so. 1 order released');
  await expect(waiting).toHaveCount(0);
  const history = page.getByRole('table', { name: 'History' });
  await expect(history.getByRole('row').filter({ hasText: sku }).first()).toContainText('saved');
  await expect(history.getByRole('row').filter({ hasText: 'whole file' }).first()).toContainText('imported');

  // The export has it, ready to import elsewhere.
  const href = await page.getByRole('link', { name: 'Export all mappings (CSV)' }).getAttribute('href');
  const csv = await page.request.get(href ?? '');
  expect(csv.status()).toBe(200);
  expect(await csv.text()).toContain(`\n${sku},ERP-TEE-BLK-M,`);
});
