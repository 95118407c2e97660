// End-to-end: a real `perch serve` serving ui/dist, a real `perch node run`, and headless
// Chromium driven by playwright-core (no browser download: it uses /usr/bin/chromium).
//
//   npm run e2e                      (builds ui/dist first)
//   PERCH_BIN=/path/to/perch  CHROMIUM=/path/to/chromium  to override the defaults.
//
// Screenshots go to ui/test-results/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const UI_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(UI_ROOT, 'dist');
const SHOTS = join(UI_ROOT, 'test-results');
const TARGET = process.env.CARGO_TARGET_DIR || '/root/.cache/perch-target';
const PERCH_BIN = process.env.PERCH_BIN || join(TARGET, 'debug', 'perch');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const procs = [];
const tmpDirs = [];
let port;
let base;
let token;
let hostData;
let context;
const pageErrors = [];

function tmp(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port: p } = srv.address();
      srv.close(() => res(p));
    });
  });
}

/** The environment for perch processes: no model keys from this shell, so no tier is usable. */
function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/API_KEY|_TOKEN$|^PERCH_/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, RUST_LOG: 'warn', ...extra };
}

function start(name, args, env) {
  const child = spawn(PERCH_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const rec = { name, child, out: '', exited: null };
  child.stdout.on('data', (d) => (rec.out += d.toString()));
  child.stderr.on('data', (d) => (rec.out += d.toString()));
  child.on('exit', (code, signal) => (rec.exited = { code, signal }));
  procs.push(rec);
  return rec;
}

async function stop(rec) {
  if (rec.exited) return;
  const gone = new Promise((r) => rec.child.once('exit', r));
  rec.child.kill('SIGTERM');
  const timer = setTimeout(() => rec.child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

/** Runs a one-shot operator command against the host under test; resolves with its stdout. */
function perchCli(args) {
  return new Promise((res, rej) => {
    execFile(
      PERCH_BIN,
      [...args, '--data-dir', hostData, '--gateway', `ws://127.0.0.1:${port}`],
      { env: cleanEnv({ HOME: hostData }), timeout: 30_000 },
      (err, stdout, stderr) => (err ? rej(new Error(`perch ${args.join(' ')}: ${err.message}\n${stderr}`)) : res(stdout)),
    );
  });
}

async function waitFor(what, fn, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function openPage(path) {
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`${path}: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`${path}: ${e.message}`));
  await page.goto(`${base}${path}`);
  return page;
}

before(async () => {
  assert.ok(existsSync(PERCH_BIN), `no perch binary at ${PERCH_BIN}; run \`cargo build -p perch-cli\` or set PERCH_BIN`);
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}; install it (apt-get install chromium) or set CHROMIUM`);
  assert.ok(existsSync(join(DIST, 'index.html')), 'ui/dist is not built; run `npm run build`');
  mkdirSync(SHOTS, { recursive: true });

  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const data = tmp('perch-e2e-host-');
  hostData = data;
  // The same values as the flags below, so the settings page starts with nothing to restart for.
  writeFileSync(join(data, 'perch.toml'), `# e2e host\n[gateway]\nname = "e2e-host"\nbind = "127.0.0.1:${port}"\nmdns = "off"\n`);
  const host = start('host', ['serve', '--data-dir', data, '--bind', `127.0.0.1:${port}`, '--mdns', 'off'], cleanEnv({ PERCH_UI_DIR: DIST, HOME: data, PERCH_NO_KEYRING: '1' }));
  await waitFor('the host to answer /healthz', async () => {
    if (host.exited) throw new Error(`perch serve exited ${JSON.stringify(host.exited)}:\n${host.out}`);
    const r = await fetch(`${base}/healthz`);
    return r.ok;
  });
  const ui = await fetch(`${base}/ui/`);
  const body = await ui.text();
  assert.equal(ui.status, 200, `GET /ui/ answered ${ui.status}: the host does not serve the web UI (${body.slice(0, 200)})`);
  assert.match(body, /<div id="app">/, 'GET /ui/ is not the built UI');
  token = readFileSync(join(data, 'operator.token'), 'utf8').trim();

  context = await chromium.launchPersistentContext(tmp('perch-e2e-chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 800 },
  });
});

after(async () => {
  await context?.close().catch(() => {});
  for (const p of procs.reverse()) await stop(p);
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe('the web UI against a real host', () => {
  test('serves the UI with a CSP that allows no inline script', async () => {
    const r = await fetch(`${base}/ui/devices`);
    assert.equal(r.status, 200, 'an SPA path under /ui/ falls back to index.html');
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.doesNotMatch(csp, /script-src[^;]*'unsafe-inline'/);
  });

  test('a wrong token shows the host message and the sign-in form; the right one gets in', async () => {
    const page = await openPage('/ui/devices#token=this-is-not-the-operator-token');
    // What the host says to a wrong token, asked directly over a socket from the same origin.
    const hostError = await page.evaluate(
      (url) =>
        new Promise((res) => {
          const ws = new WebSocket(url);
          ws.onmessage = (ev) => {
            const f = JSON.parse(ev.data);
            if (f.type === 'event' && f.event === 'connect.challenge') {
              ws.send(
                JSON.stringify({
                  type: 'req',
                  id: 'probe',
                  method: 'connect',
                  params: {
                    minProtocol: 4,
                    maxProtocol: 4,
                    client: { id: 'e2e-probe', version: '0', platform: 'linux', mode: 'test' },
                    role: 'operator',
                    auth: { token: 'definitely-wrong-token-123' },
                  },
                }),
              );
            } else if (f.type === 'res' && f.id === 'probe') {
              res(f.error);
              ws.close();
            }
          };
        }),
      `ws://127.0.0.1:${port}/`,
    );
    assert.equal(hostError.code, 'UNAUTHORIZED');

    const err = page.getByTestId('signin-error');
    await err.waitFor({ timeout: 15_000 });
    const text = await err.innerText();
    assert.match(text, /UNAUTHORIZED/);
    assert.ok(text.includes(hostError.message), `the sign-in error shows the host's message: ${text}`);
    assert.ok(await page.getByLabel('Operator token').isVisible(), 'the form is there again');
    assert.ok(!page.url().includes('token='), 'the token left the address bar');
    await shot(page, 'signin-wrong-token');

    await page.getByLabel('Operator token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('status').filter({ hasText: 'Connected to' }).waitFor({ timeout: 15_000 });
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    await page.close();
  });

  test('approve a pairing request by its verification code; the node shows online', async () => {
    const page = await openPage(`/ui/devices#token=${encodeURIComponent(token)}`);
    await page.getByRole('status').filter({ hasText: 'Connected to' }).waitFor({ timeout: 15_000 });
    assert.equal(new URL(page.url()).hash, '', 'the token is removed from the URL');
    assert.equal(new URL(page.url()).pathname, '/ui/devices');

    const nodeData = tmp('perch-e2e-node-');
    const node = start(
      'node',
      ['node', 'run', '--data-dir', nodeData, '--gateway', `ws://127.0.0.1:${port}`, '--name', 'e2e-node'],
      cleanEnv({ HOME: nodeData }),
    );
    const nodeCode = await waitFor('the node to print its verification code', () => {
      if (node.exited) throw new Error(`perch node run exited ${JSON.stringify(node.exited)}:\n${node.out}`);
      return /verification code (\d{3} \d{3})/.exec(node.out)?.[1];
    });

    const request = page.getByRole('listitem').filter({ hasText: 'e2e-node' }).filter({ has: page.getByRole('button', { name: 'Approve' }) });
    await request.waitFor({ timeout: 15_000 });
    const shown = (await request.getByTestId('verification-code').innerText()).trim();
    assert.equal(shown, nodeCode, 'the page shows the code the device shows');
    await shot(page, 'devices-pending');

    await request.getByRole('button', { name: 'Approve' }).click();
    const device = page.locator('[data-testid=device-list] li[data-online=true]').filter({ hasText: 'e2e-node' });
    await device.waitFor({ timeout: 20_000 });
    assert.equal((await device.getByTestId('device-status').innerText()).trim(), 'online');
    await page.locator('[data-testid=pending-list]').waitFor({ state: 'detached' });
    // once node.list answered, its commands are listed
    await device.getByRole('list', { name: 'Commands' }).waitFor({ timeout: 10_000 });
    await shot(page, 'devices-approved');

    // The device's access record: an operator's call, and one the host refused on its behalf.
    await perchCli(['nodes', 'invoke', 'e2e-node', 'device.info', '--json']);
    await assert.rejects(perchCli(['nodes', 'invoke', 'e2e-node', 'system.run', '--json']));
    await device.getByRole('button', { name: 'Access' }).click();
    const record = device.getByRole('region', { name: 'Access record of e2e-node' });
    const table = record.getByTestId('access-table');
    await table.waitFor({ timeout: 10_000 });
    const rowsText = await table.locator('tbody tr').allInnerTexts();
    assert.equal(rowsText.length, 2, rowsText.join('\n'));
    assert.match(rowsText[0], /system\.run/);
    assert.match(rowsText[0], /refused by the host: COMMAND_NOT_ALLOWED/);
    assert.match(rowsText[1], /device\.info/);
    assert.match(rowsText[1], /perch-cli/);
    assert.match(rowsText[1], /\bok\b/);
    assert.equal(await table.locator('tbody tr[data-requester=operator]').count(), 2);
    await shot(page, 'devices-access');

    // live: the node goes away, the page says offline without a reload
    await stop(node);
    await page.locator('[data-testid=device-list] li[data-online=false]').filter({ hasText: 'e2e-node' }).waitFor({ timeout: 15_000 });
    await page.close();
  });

  test('chat shows CREDENTIAL_MISSING with what to do when no model is configured', async () => {
    const page = await openPage(`/ui/chat#token=${encodeURIComponent(token)}`);
    await page.getByRole('status').filter({ hasText: 'Connected to' }).waitFor({ timeout: 15_000 });
    const box = page.getByLabel('Message');
    await box.click();
    await page.keyboard.type('Hello');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('there');
    assert.equal(await box.inputValue(), 'Hello\nthere', 'Shift+Enter adds a line and sends nothing');
    await page.keyboard.press('Enter');
    const error = page.getByTestId('chat-error').last();
    await error.waitFor({ timeout: 15_000 });
    const text = await error.innerText();
    assert.match(text, /CREDENTIAL_MISSING/);
    assert.match(text, /perch auth set/);
    assert.equal(await box.inputValue(), '', 'Enter sent the message');
    assert.ok(await page.locator('.msg.user').filter({ hasText: 'Hello' }).isVisible());
    await shot(page, 'chat-credential-missing');
    await page.close();
  });

  test('settings: load from the host, catch a bad address, save a change that needs a restart', async () => {
    const page = await openPage(`/ui/settings#token=${encodeURIComponent(token)}`);
    await page.getByRole('status').filter({ hasText: 'Connected to' }).waitFor({ timeout: 15_000 });
    const bind = page.getByLabel('Listen address');
    await bind.waitFor({ timeout: 15_000 });
    assert.equal(await bind.inputValue(), `127.0.0.1:${port}`);
    assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'e2e-host');
    assert.equal(await page.getByTestId('restart-required').count(), 0, 'the file matches the running host');
    assert.equal(await page.getByText('Not configured', { exact: true }).count(), 3, 'no model tier is set up on this host');

    await bind.fill('nowhere');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('.field-error').filter({ hasText: 'ADDRESS:PORT' }).waitFor();
    assert.equal(await page.getByTestId('restart-required').count(), 0, 'nothing was sent');
    await bind.fill(`127.0.0.1:${port}`);

    // A second window with the settings open follows the save live (settings.changed).
    const other = await openPage(`/ui/settings#token=${encodeURIComponent(token)}`);
    const otherName = other.getByLabel('Name', { exact: true });
    await otherName.waitFor({ timeout: 15_000 });
    assert.equal(await otherName.inputValue(), 'e2e-host');

    await page.getByLabel('Name', { exact: true }).fill('e2e-host renamed');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByTestId('restart-required').waitFor({ timeout: 10_000 });
    await other.getByTestId('restart-required').waitFor({ timeout: 10_000 });
    assert.equal(await otherName.inputValue(), 'e2e-host renamed', 'the other window shows the saved name');
    await other.close();
    const toml = readFileSync(join(hostData, 'perch.toml'), 'utf8');
    assert.match(toml, /name = "e2e-host renamed"/);
    assert.match(toml, /^# e2e host$/m, 'the comment in perch.toml survives');

    // location sharing lists the node paired above; a change sticks across a reload
    const sharing = () =>
      page.getByRole('region', { name: 'Location sharing with the assistant' }).locator('li').filter({ hasText: 'e2e-node' });
    await sharing().getByRole('radio', { name: 'off' }).waitFor({ timeout: 10_000 });
    assert.ok(await sharing().getByRole('radio', { name: 'off' }).isChecked(), 'sharing is off until chosen');
    await sharing().getByRole('radio', { name: 'city' }).check();
    await waitFor('location.share to answer', async () => !(await sharing().getByRole('radio', { name: 'city' }).isDisabled()));
    await page.reload();
    await waitFor('sharing to reload as city', () => sharing().getByRole('radio', { name: 'city' }).isChecked(), 15_000);
    await shot(page, 'settings');
    await page.close();
  });

  test('settings: a tier\'s key is set from the page, shown only as "set", and removed', async () => {
    const KEY = 'sk-e2e-NEVER-SHOWN-9090';
    const page = await openPage(`/ui/settings#token=${encodeURIComponent(token)}`);
    await page.getByRole('status').filter({ hasText: 'Connected to' }).waitFor({ timeout: 15_000 });
    await page.getByLabel('Listen address').waitFor({ timeout: 15_000 });
    // A tier first: the key field belongs to a configured tier.
    await page.locator('#f-models-fast-provider').selectOption('openai');
    await page.locator('#f-models-fast-model').fill('gpt-e2e');
    await page.getByRole('button', { name: 'Save' }).click();
    const state = page.getByTestId('key-state-fast');
    await state.waitFor({ timeout: 10_000 });
    assert.equal(await state.innerText(), 'not set');
    const field = page.locator('#f-models-fast-key');
    assert.equal(await field.getAttribute('type'), 'password');

    await field.fill(KEY);
    await page.getByRole('button', { name: 'Set', exact: true }).click();
    await waitFor('the key to show as set', async () => (await state.innerText()) === 'set', 10_000);
    assert.equal(await field.inputValue(), '', 'the field is emptied once the key is sent');
    assert.ok(await page.getByRole('button', { name: 'Replace', exact: true }).isVisible());

    await page.reload();
    await page.getByTestId('key-state-fast').waitFor({ timeout: 15_000 });
    await waitFor('the key to reload as set', async () => (await page.getByTestId('key-state-fast').innerText()) === 'set', 10_000);
    assert.equal(await page.locator('#f-models-fast-key').inputValue(), '');
    assert.ok(!(await page.content()).includes(KEY), 'the page never holds the key');
    await shot(page, 'settings-tier-key');

    // Stored in the host's secret store (its 0600 file here), never in perch.toml or the log.
    assert.ok(!readFileSync(join(hostData, 'perch.toml'), 'utf8').includes(KEY));
    const secretsFile = join(hostData, 'secrets.json');
    assert.ok(readFileSync(secretsFile, 'utf8').includes('openai:api_key:fast'));
    assert.equal(statSync(secretsFile).mode & 0o777, 0o600);
    const host = procs.find((p) => p.name === 'host');
    assert.ok(!host.out.includes(KEY), 'the key is in the host log');

    await page.getByRole('button', { name: 'Remove', exact: true }).click();
    await waitFor('the key to be removed', async () => (await page.getByTestId('key-state-fast').innerText()) === 'not set', 10_000);
    assert.ok(!readFileSync(secretsFile, 'utf8').includes('openai:api_key:fast'));
    await page.close();
  });

  test('no page logged an error (CSP violations included)', () => {
    // A wrong-token connection makes the browser log the refused socket; nothing else may.
    const unexpected = pageErrors.filter((e) => !/WebSocket connection to .* failed|status of 40[13]/.test(e));
    assert.deepEqual(unexpected, []);
  });
});
