// End-to-end test of the dashboard: the real `credits` binary, real data seeded through the HTTP
// API, and Debian's Chromium driven headless by playwright-core. It builds nothing: it runs
// CREDITS_BIN (default target/debug/credits) on a free port with a fresh data directory.
//
// The steps follow three people: the operator (sees every account, adds credits), an account
// owner (balance, chart, a key whose secret is shown once, a budget, the low-balance banner) and
// a viewer (reads everything it may, and finds no control that writes). Each step asserts on the
// page; a screenshot of every page goes to docs/screenshots/. Exits non-zero on the first failure.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.resolve(ROOT, process.env.CREDITS_BIN || 'target/debug/credits');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'docs', 'screenshots');
const ARTIFACTS = path.join(ROOT, 'e2e', 'artifacts');
const DEADLINE_MS = 170_000; // The whole run stays under 3 minutes.
const NUMBER = new Intl.NumberFormat('en-US');

const ADMIN_KEY = `e2e_admin_${randomBytes(24).toString('hex')}`;
let server = null;
let receiver = null;
let browser = null;
let dataDir = null;
let passed = 0;
let failed = 0;

// ------------------------------------------------------------------------------------------------
// The service and its data

async function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function startServer() {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`cargo build --workspace --bins\` first`);
  const port = await freePort();
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'credits-e2e-'));
  const base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: {
      ...process.env,
      CREDITS_ADMIN_KEY: ADMIN_KEY,
      CREDITS_WEBHOOK_ALLOW_PRIVATE: 'true',
      CREDITS_LOG: process.env.CREDITS_LOG || 'error',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  server.once('exit', (code, signal) => {
    if (server) console.error(`credits serve exited early (code ${code}, signal ${signal})`);
  });
  for (let i = 0; i < 100; i += 1) {
    try {
      const response = await fetch(`${base}/readyz`);
      if (response.ok) return base;
    } catch (_) {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the service did not become ready in 10 s');
}

/** A webhook receiver on loopback: answers 200, except 500 to every fifth delivery. */
async function startReceiver() {
  let count = 0;
  receiver = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      count += 1;
      response.writeHead(count % 5 === 0 ? 500 : 200).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${receiver.address().port}/hooks`;
}

function client(base, key) {
  return async (method, route, body, headers = {}) => {
    const response = await fetch(`${base}${route}`, {
      method,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const json = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(`${method} ${route} -> ${response.status} ${text}`);
    return json;
  };
}

let usageCounter = 0;
async function useCredits(call, body) {
  usageCounter += 1;
  return call('POST', '/v2/usage', body, { 'Idempotency-Key': `seed-${usageCounter}` });
}

/**
 * Acme Corp: 1800 credits (1000 SmartCheck, 500 SmartAccess, a 300-credit grant for any service),
 * 1500 used by three members and the operator over four services, 20 held: 280 available, under its
 * low-balance threshold of 500. Globex: 5000 unused credits. One budget and one webhook endpoint.
 */
async function seed(base, hookUrl) {
  const admin = client(base, ADMIN_KEY);
  const acme = await admin('POST', '/v2/accounts', { name: 'Acme Corp', externalId: 'cus_acme', lowBalanceThreshold: 500 });
  const globex = await admin('POST', '/v2/accounts', { name: 'Globex Inc', externalId: 'cus_globex', lowBalanceThreshold: 200 });
  await admin('POST', '/v2/webhook-endpoints', { accountId: acme.id, url: hookUrl, events: ['*'] });
  const year = new Date(Date.now() + 365 * 86400000).toISOString().slice(0, 10);
  const soon = new Date(Date.now() + 5 * 86400000).toISOString().slice(0, 10);
  await admin('POST', '/v2/credits', { accountId: acme.id, amount: 1000, service: 'smartcheck', description: 'SmartCheck annual pack', expiresAt: `${year}T23:59:59Z`, reference: 'pay_1001' });
  await admin('POST', '/v2/credits', { accountId: acme.id, amount: 500, service: 'smartaccess', description: 'SmartAccess starter', expiresAt: `${soon}T23:59:59Z`, reference: 'pay_1002' });
  await admin('POST', '/v2/credits', { accountId: acme.id, amount: 300, service: 'any', kind: 'grant', description: 'Onboarding grant' });
  await admin('POST', '/v2/credits', { accountId: globex.id, amount: 5000, service: 'any', description: 'Enterprise bundle', reference: 'pay_2001' });

  const people = {};
  for (const [role, name] of [['owner', 'Olivia Owner'], ['admin', 'Adam Admin'], ['member', 'Mia Member'], ['viewer', 'Victor Viewer']]) {
    const member = await admin('POST', '/v2/members', { accountId: acme.id, email: `${role}@acme.example`, name, role });
    const key = await admin('POST', '/v2/api-keys', { accountId: acme.id, name: `${role}-laptop`, memberId: member.id });
    people[role] = { member, key: key.secret, keyId: key.id };
  }
  const owner = client(base, people.owner.key);
  const adminKey = client(base, people.admin.key);
  const member = client(base, people.member.key);
  for (const [call, service, quantity] of [
    [owner, 'smartcheck', 250], [owner, 'smartcheck', 150], [owner, 'smartaccess', 200],
    [adminKey, 'smartcheck', 180], [adminKey, 'smartcheck', 120],
    [member, 'smartcheck', 150], [member, 'smartaccess', 90], [member, 'smartaccess', 60],
    [member, 'smartenroll', 100],
  ]) {
    await useCredits(call, { service, quantity });
  }
  await useCredits(admin, { accountId: acme.id, service: 'biometric', quantity: 100 });
  await useCredits(admin, { accountId: acme.id, service: 'smartenroll', quantity: 100 });
  await member('POST', '/v2/reservations', { service: 'smartcheck', credits: 20, ttlSeconds: 3600 }, { 'Idempotency-Key': 'seed-hold' });
  await admin('POST', '/v2/budgets', { accountId: acme.id, name: 'Monthly cap', scope: { type: 'account' }, period: 'month', limit: 2000 });
  await admin('POST', '/v2/budgets', { accountId: acme.id, name: 'Mia daily', scope: { type: 'member', id: people.member.member.id }, period: 'day', limit: 500, enforcement: 'notify' });

  const balance = await admin('GET', `/v2/balance?accountId=${acme.id}`);
  assert.equal(balance.available, 280, 'the seeded balance');
  return { acme, globex, people };
}

// ------------------------------------------------------------------------------------------------
// The browser

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    passed += 1;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name}`);
    throw error;
  }
}

async function shot(page, name) {
  await page.evaluate(() => document.querySelectorAll('.toast').forEach((t) => t.remove()));
  await page.waitForTimeout(150); // Let charts settle at their width.
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

async function signIn(page, base, key) {
  await page.goto(`${base}/`);
  await page.locator('form[data-test="signin"] input[name="key"]').fill(key);
  await page.locator('form[data-test="signin"] button[type="submit"]').click();
  await page.locator('nav.sidenav').waitFor();
}

async function signOut(page) {
  await page.locator('[data-test="sign-out"]').click();
  await page.locator('form[data-test="signin"]').waitFor();
}

async function go(page, hash, ready) {
  await page.evaluate((h) => { window.location.hash = h; }, hash);
  await page.locator(`[data-view]`).first().waitFor();
  await page.locator('.loading').waitFor({ state: 'detached' });
  if (ready) await page.locator(ready).first().waitFor();
}

async function kpi(page, name) {
  return (await page.locator(`[data-test="kpi-${name}"] .value`).innerText()).trim();
}

/** Buttons and controls that write, on the current page. */
async function writeControls(page) {
  const marked = await page.locator('[data-write]').count();
  const labels = await page.locator('button:visible').allInnerTexts();
  const writing = labels.filter((t) => /\b(create|revoke|grant|add|new|delete|void|redeliver|remove|edit|save)\b/i.test(t));
  return { marked, writing };
}

async function main() {
  const timer = setTimeout(() => {
    console.error(`the e2e run passed its ${DEADLINE_MS / 1000} s deadline`);
    cleanup();
    process.exit(1);
  }, DEADLINE_MS);
  mkdirSync(SHOTS, { recursive: true });
  mkdirSync(ARTIFACTS, { recursive: true });

  const base = await startServer();
  const hookUrl = await startReceiver();
  const { acme, people } = await seed(base, hookUrl);
  const hookUrlOwner = `${hookUrl}/owner`;
  console.log(`seeded ${base}: ${acme.id} with four members, usage over four services`);

  await step('the page is served with its security headers, and unknown assets are 404', async () => {
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /^text\/html/);
    const csp = response.headers.get('content-security-policy');
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
    const script = await fetch(`${base}/assets/app.js`);
    assert.match(script.headers.get('content-type'), /^text\/javascript/);
    const css = await fetch(`${base}/assets/app.css`);
    assert.match(css.headers.get('content-type'), /^text\/css/);
    assert.equal((await fetch(`${base}/assets/nope.js`)).status, 404);
  });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({
    viewport: { width: 1360, height: 900 },
    locale: 'en-US',
    timezoneId: 'UTC',
    acceptDownloads: true,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
    else if (message.type() === 'error' && !/status of 40[13]/.test(text)) problems.push(`console: ${text}`);
  });

  try {
    // ---------------------------------------------------------------- the operator
    await step('the operator signs in and sees every account with its balance', async () => {
      await page.goto(`${base}/`);
      await page.locator('form[data-test="signin"]').waitFor();
      assert.equal(await page.locator('nav.sidenav').count(), 0, 'no navigation before sign-in');
      await page.screenshot({ path: path.join(ARTIFACTS, 'signin.png') });
      await page.locator('form[data-test="signin"] input[name="key"]').fill('ck_live_not_a_key');
      await page.locator('form[data-test="signin"] button[type="submit"]').click();
      await page.locator('form[data-test="signin"] .error-box', { hasText: 'not recognised' }).waitFor();
      await signIn(page, base, ADMIN_KEY);
      await page.locator('table[data-test="accounts"]').waitFor();
      assert.match(page.url(), /#\/operator$/);
      const acmeRow = page.locator(`tr[data-account-id="${acme.id}"]`);
      assert.match(await acmeRow.innerText(), /Acme Corp/);
      assert.match(await acmeRow.innerText(), /280/);
      assert.match(await acmeRow.innerText(), /low balance/);
      assert.equal(await page.locator('tr[data-test="account-row"]').count(), 2);
      assert.equal(await kpi(page, 'total-available'), NUMBER.format(5280));
      const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
      assert.ok(!storage.includes(ADMIN_KEY), 'the key is in no browser storage');
      assert.ok(!storage.includes('credits_session'), 'the session cookie is HttpOnly');
      await shot(page, 'operator.png');
    });

    await step('the operator opens Acme and grants 150 credits', async () => {
      await page.locator(`tr[data-account-id="${acme.id}"] a`).click();
      await page.locator('form[data-test="add-credits"]').waitFor();
      assert.equal(await kpi(page, 'available'), '280');
      await page.locator('[data-test="low-balance"]').waitFor();
      const form = page.locator('form[data-test="add-credits"]');
      await form.locator('input[name="amount"]').fill('150');
      await form.locator('select[name="kind"]').selectOption('grant');
      await form.locator('input[name="description"]').fill('Welcome bonus');
      await form.locator('button[type="submit"]').click();
      await page.locator('tr[data-test="account-credit-row"]', { hasText: 'Welcome bonus' }).waitFor();
      assert.equal(await kpi(page, 'available'), '430');
      await shot(page, 'operator-account.png');
      const admin = client(base, ADMIN_KEY);
      const balance = await admin('GET', `/v2/balance?accountId=${acme.id}`);
      assert.equal(balance.available, 430);
    });

    await step('the operator opens the dashboard of Acme and sees its overview', async () => {
      await page.locator('[data-test="work-in-account"]').click();
      await page.locator('[data-test="kpi-available"]').waitFor();
      assert.match(page.url(), /#\/overview$/);
      assert.equal(await kpi(page, 'available'), '430');
      assert.equal(await page.locator('[data-test="account-picker"]').inputValue(), acme.id);
      await page.locator('[data-test="low-balance"]').waitFor();
      await go(page, '#/team', 'table[data-test="members"]');
      assert.equal(await page.locator('tr[data-test="member-row"]').count(), 4);
      for (const [hash, ready] of [
        ['#/credits', 'table[data-test="credits-table"]'],
        ['#/usage', 'table[data-test="usage-table"]'],
        ['#/budgets', 'table[data-test="budgets"]'],
        ['#/webhooks', 'table[data-test="endpoints"]'],
      ]) {
        await go(page, hash, ready);
        assert.equal(await page.locator('.error-box').count(), 0, `${hash} loads for an operator`);
      }
      await go(page, '#/credits', 'table[data-test="credits-table"]');
      assert.equal(await page.locator('button', { hasText: 'Add credits' }).count(), 1, 'operators add credits here too');
    });

    await step('a write without the CSRF token is refused, and sign-out ends the session', async () => {
      const status = await page.evaluate(async (accountId) => {
        const response = await fetch('/v2/budgets', {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ accountId, name: 'x', scope: { type: 'account' }, period: 'day', limit: 1 }),
        });
        return response.status;
      }, acme.id);
      assert.equal(status, 403);
      await signOut(page);
      const after = await page.evaluate(async () => (await fetch('/v2/accounts')).status);
      assert.equal(after, 401);
    });

    // ---------------------------------------------------------------- the owner
    await step('the owner sees the balance, the low-balance banner, the usage chart and budgets', async () => {
      await signIn(page, base, people.owner.key);
      await page.locator('[data-test="kpi-available"]').waitFor();
      assert.match(page.url(), /#\/overview$/);
      assert.match(await page.locator('header.topbar').innerText(), /Acme Corp/);
      assert.match(await page.locator('header.topbar').innerText(), /Full access/);
      assert.equal(await kpi(page, 'available'), '430');
      assert.equal(await kpi(page, 'reserved'), '20');
      assert.equal(await kpi(page, 'used'), NUMBER.format(1500));
      const banner = await page.locator('[data-test="low-balance"]').innerText();
      assert.match(banner, /Low balance/);
      assert.match(banner, /430 credits available/);
      assert.match(banner, /threshold of 500/);
      // One segment per service and day: four, or more if the seeding straddled UTC midnight.
      assert.ok(await page.locator('[data-test="usage-chart"] svg rect.bar').count() >= 4, 'a bar segment per service');
      assert.match(await page.locator('.legend').innerText(), /SmartCheck|smartcheck/i);
      assert.equal(await page.locator('[data-test="budget"]').count(), 2);
      assert.equal(await page.locator('[data-test="service-balance"]').count(), 3);
      const labels = await page.locator('nav.sidenav a').allInnerTexts();
      assert.deepEqual(labels.map((t) => t.trim()), ['Overview', 'Credits', 'Usage', 'Team', 'Budgets', 'Webhooks']);
      await shot(page, 'overview.png');
    });

    await step('the owner lists credits, filters them and opens one record’s ledger', async () => {
      await go(page, '#/credits', 'table[data-test="credits-table"]');
      assert.equal(await page.locator('tr[data-test="credit-row"]').count(), 4);
      assert.match(await page.locator('table[data-test="credits-table"]').innerText(), /expires soon/);
      assert.equal(await page.locator('[data-write]').count(), 0, 'only operators add or void credits');
      await page.locator('select[name="service"]').selectOption('smartcheck');
      await page.waitForFunction(() => document.querySelectorAll('tr[data-test="credit-row"]').length === 1);
      await page.locator('tr[data-test="credit-row"]').first().click();
      await page.locator('table[data-test="ledger"]').waitFor();
      const entries = await page.locator('tr[data-test="ledger-row"]').count();
      assert.ok(entries >= 6, `the SmartCheck record has its purchase, usage and hold entries (${entries})`);
      assert.match(await page.locator('[data-test="credit-detail"]').innerText(), /SmartCheck annual pack/);
      const opened = new URL(page.url()).hash.split('?')[0];
      await go(page, opened, 'table[data-test="ledger"]');
      assert.equal(await page.locator('tr[data-test="credit-row"]').count(), 4, 'the filter is cleared');
      await shot(page, 'credits.png');
    });

    await step('the owner sees usage by service and by member, and exports CSV', async () => {
      await go(page, '#/usage', 'table[data-test="usage-table"]');
      assert.equal(await page.locator('tr[data-test="usage-row"]').count(), 4);
      const table = await page.locator('table[data-test="usage-table"]').innerText();
      assert.match(table, new RegExp(NUMBER.format(1500)));
      await shot(page, 'usage.png');
      const [summary] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test="summary-csv"]').click()]);
      const summaryText = readFileSync(await summary.path(), 'utf8');
      assert.match(summaryText, /^day,service,label,credits,count\r\n/);
      assert.ok(summaryText.trim().split('\r\n').length >= 5, 'a header and a row per service and day');
      const [ledger] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test="ledger-csv"]').click()]);
      const ledgerText = readFileSync(await ledger.path(), 'utf8');
      assert.match(ledgerText, /^id,accountId,creditId,type,credits,remainingAfter,usageId,reservationId,memberId,apiKeyId,createdAt\n/);
      await page.locator('button[data-group="member"]').click();
      await page.waitForFunction(() => /Mia Member/.test(document.querySelector('table[data-test="usage-table"]')?.innerText || ''));
      const byMember = await page.locator('table[data-test="usage-table"]').innerText();
      assert.match(byMember, /Olivia Owner/);
      assert.match(byMember, /Adam Admin/);
      assert.match(byMember, /No member/);
    });

    let secret = null;
    await step('the owner adds a member, creates a key and sees its secret once, not after a reload', async () => {
      await go(page, '#/team', 'table[data-test="keys"]');
      assert.equal(await page.locator('tr[data-test="member-row"]').count(), 4);
      await page.locator('[data-test="add-member"]').click();
      const memberForm = page.locator('form[data-test="member-form"]');
      await memberForm.locator('input[name="email"]').fill('nora@acme.example');
      await memberForm.locator('input[name="name"]').fill('Nora New');
      await memberForm.locator('select[name="role"]').selectOption('viewer');
      await memberForm.locator('button[type="submit"]').click();
      await page.locator('tr[data-test="member-row"]', { hasText: 'Nora New' }).waitFor();
      assert.equal(await page.locator('tr[data-test="member-row"]').count(), 5);
      await page.locator('[data-test="create-key"]').click();
      const form = page.locator('form[data-test="key-form"]');
      await form.locator('input[name="name"]').fill('e2e-ci');
      await page.screenshot({ path: path.join(ARTIFACTS, 'dialog-key.png') });
      await form.locator('button[type="submit"]').click();
      await page.locator('[data-test="new-secret"]').waitFor();
      secret = (await page.locator('[data-test="secret"]').innerText()).trim();
      assert.match(secret, /^ck_live_/);
      const row = page.locator('tr[data-test="key-row"]', { hasText: 'e2e-ci' });
      assert.match(await row.innerText(), /active/);
      const works = await fetch(`${base}/v2/balance`, { headers: { Authorization: `Bearer ${secret}` } });
      assert.equal(works.status, 200, 'the shown secret is a working key');
      await shot(page, 'team.png');
      await page.reload();
      await page.locator('table[data-test="keys"]').waitFor();
      assert.equal(await page.locator('[data-test="new-secret"]').count(), 0);
      const text = await page.locator('body').innerText();
      assert.ok(!text.includes(secret), 'the secret is not shown after a reload');
      const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
      assert.ok(!storage.includes(secret) && !storage.includes(people.owner.key), 'no key in browser storage');
      assert.match(await page.locator('tr[data-test="key-row"]', { hasText: 'e2e-ci' }).innerText(), /ck_live_/);
    });

    await step('the owner revokes the new key, which stops working at once', async () => {
      const row = page.locator('tr[data-test="key-row"]', { hasText: 'e2e-ci' });
      await row.locator('[data-test="revoke-key"]').click();
      await page.locator('dialog button.danger').click();
      await page.locator('tr[data-test="key-row"]', { hasText: 'e2e-ci' }).filter({ hasText: 'revoked' }).waitFor();
      const refused = await fetch(`${base}/v2/balance`, { headers: { Authorization: `Bearer ${secret}` } });
      assert.equal(refused.status, 401);
    });

    await step('the owner creates a budget and edits its limit', async () => {
      await go(page, '#/budgets', 'table[data-test="budgets"]');
      assert.equal(await page.locator('tr[data-test="budget-row"]').count(), 2);
      await page.locator('[data-test="new-budget"]').click();
      const form = page.locator('form[data-test="budget-form"]');
      await form.locator('input[name="name"]').fill('SmartCheck weekly');
      await form.locator('select[name="scopeType"]').selectOption('service');
      await form.locator('select[name="scopeId"]').selectOption('smartcheck');
      await form.locator('input[name="limit"]').fill('700');
      await form.locator('select[name="period"]').selectOption('week');
      await form.locator('button[type="submit"]').click();
      const row = page.locator('tr[data-test="budget-row"]', { hasText: 'SmartCheck weekly' });
      await row.waitFor();
      assert.match(await row.innerText(), /870 spent of\s+700/);
      await row.locator('[data-test="edit-limit"]').click();
      await row.locator('input[aria-label="New limit"]').fill('1200');
      await row.locator('button', { hasText: 'Save' }).click();
      await page.locator('tr[data-test="budget-row"]', { hasText: 'SmartCheck weekly' }).filter({ hasText: NUMBER.format(1200) }).waitFor();
      await shot(page, 'budgets.png');
    });

    await step('the owner sees webhook deliveries, redelivers one and adds an endpoint', async () => {
      await go(page, '#/webhooks', 'table[data-test="endpoints"]');
      await page.locator('tr[data-test="endpoint-row"]').first().click();
      await page.locator('table[data-test="deliveries"]').waitFor();
      const before = await page.locator('tr[data-test="delivery-row"]').count();
      assert.ok(before > 0, 'the seeded events were delivered');
      await page.locator('[data-test="redeliver"]').first().click();
      await page.locator('.toast', { hasText: 'queued' }).waitFor();
      await page.locator('table[data-test="deliveries"]').waitFor();
      await page.locator('[data-test="add-endpoint"]').click();
      const form = page.locator('form[data-test="endpoint-form"]');
      await form.locator('input[name="url"]').fill(hookUrlOwner);
      await form.locator('button[type="submit"]').click();
      await page.locator('[data-test="new-secret"]').waitFor();
      assert.match(await page.locator('[data-test="secret"]').innerText(), /^whsec_/);
      assert.equal(await page.locator('tr[data-test="endpoint-row"]').count(), 2);
      await page.locator('[data-test="new-secret"] button', { hasText: 'Done' }).click();
      await go(page, new URL(page.url()).hash, 'table[data-test="deliveries"]');
      await shot(page, 'webhooks.png');
    });

    await step('the overview on a phone keeps the banner and the chart', async () => {
      await go(page, '#/overview', '[data-test="usage-chart"] svg');
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForTimeout(200);
      assert.ok(await page.locator('[data-test="low-balance"]').isVisible());
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `no sideways scrolling on a phone (${width}px)`);
      await page.screenshot({ path: path.join(SHOTS, 'overview-phone.png'), fullPage: false });
      if (process.env.E2E_PHONE_SHOTS) {
        // For looking at every page at phone width (not committed): E2E_PHONE_SHOTS=1.
        for (const name of ['overview', 'credits', 'usage', 'team', 'budgets', 'webhooks']) {
          await go(page, `#/${name}`);
          await page.waitForTimeout(200);
          await page.screenshot({ path: path.join(ARTIFACTS, `phone-${name}.png`), fullPage: true });
        }
      }
      await page.setViewportSize({ width: 1360, height: 900 });
      await signOut(page);
    });

    // ---------------------------------------------------------------- the viewer
    await step('a viewer reads every page it may and finds no control that writes', async () => {
      await signIn(page, base, people.viewer.key);
      await page.locator('[data-test="kpi-available"]').waitFor();
      assert.match(await page.locator('header.topbar').innerText(), /Read-only/);
      const labels = (await page.locator('nav.sidenav a').allInnerTexts()).map((t) => t.trim());
      assert.deepEqual(labels, ['Overview', 'Credits', 'Usage']);
      for (const [hash, ready] of [
        ['#/overview', '[data-test="kpi-available"]'],
        ['#/credits', 'table[data-test="credits-table"]'],
        ['#/usage', 'table[data-test="usage-table"]'],
      ]) {
        await go(page, hash, ready);
        const { marked, writing } = await writeControls(page);
        assert.equal(marked, 0, `${hash} has no write control`);
        assert.deepEqual(writing, [], `${hash} has no button that writes`);
      }
      await go(page, '#/credits', 'table[data-test="credits-table"]');
      await page.locator('tr[data-test="credit-row"]').first().click();
      await page.locator('table[data-test="ledger"]').waitFor();
      assert.equal((await writeControls(page)).marked, 0, 'no void button for a viewer');
      for (const hidden of ['#/team', '#/budgets', '#/webhooks', '#/operator']) {
        await page.evaluate((h) => { window.location.hash = h; }, hidden);
        await page.waitForFunction(() => window.location.hash === '#/overview');
        await page.locator('[data-test="kpi-available"]').waitFor();
        assert.equal((await writeControls(page)).marked, 0, `${hidden} falls back to the overview`);
      }
      await signOut(page);
    });

    await step('no Content-Security-Policy violation or script error on any page', async () => {
      assert.deepEqual(problems, []);
    });
  } catch (error) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(error);
    if (problems.length) console.error('page problems:', problems);
    console.error(`screenshot of the failure: ${path.join(ARTIFACTS, 'failure.png')}`);
    failed = Math.max(failed, 1);
  } finally {
    clearTimeout(timer);
  }
}

function cleanup() {
  if (browser) browser.close().catch(() => {});
  if (receiver) receiver.close();
  if (server) {
    const child = server;
    server = null;
    child.kill('SIGTERM');
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

main()
  .catch((error) => {
    console.error(error);
    failed = Math.max(failed, 1);
  })
  .finally(async () => {
    if (browser) await browser.close().catch(() => {});
    browser = null;
    cleanup();
    console.log(`e2e: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
