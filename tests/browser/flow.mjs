// A Client ID Metadata Document client (shaped like Claude Code's) goes through the whole
// authorization code flow of an MCP client, with the user's part in headless Chromium:
//
//   1. its document is served over HTTPS here (the certificate run.sh made, whose CA Latchkey
//      trusts through LATCHKEY_OUTBOUND_CA_FILE); its client_id is that document's URL
//   2. discovery as an MCP client does it: 401 from the MCP server, RFC 9728 metadata, RFC 8414
//      metadata (client_id_metadata_document_supported)
//   3. /authorize with PKCE S256 and resource, in Chromium: the login form, the consent page
//      (the document's host, "unverified", the localhost warning; a screenshot), "Allow"
//   4. the redirect to the loopback callback with code, state and iss
//   5. the code exchanged at /token without a secret; the token's claims
//   6. the token used at the example MCP server: initialize and the whoami tool
//   7. the refresh token rotated; the code refused a second time, revoking its grant
//
// Settings come from the environment run.sh sets: ISSUER, MCP_URL, DOC_CERT, DOC_KEY,
// USER_EMAIL, USER_PASSWORD, SCREENSHOT_DIR, CHROMIUM. Each step is an assertion; the first
// that fails ends the run with exit 1.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set`);
  return v;
};
const ISSUER = env('ISSUER');
const MCP_URL = env('MCP_URL');
const EMAIL = env('USER_EMAIL');
const PASSWORD = env('USER_PASSWORD');
const SCREENSHOT_DIR = env('SCREENSHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = 15_000;

let passed = 0;
function ok(what) {
  passed += 1;
  console.log(`ok ${passed} - ${what}`);
}

/** Listens on 127.0.0.1, a free port. */
function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

function close(server) {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

const b64url = (buf) => buf.toString('base64url');

/** `key="value"` from an RFC 6750 challenge. */
function challengeParam(challenge, key) {
  const m = challenge.match(new RegExp(`${key}="([^"]*)"`));
  return m ? m[1] : undefined;
}

function jwtClaims(jwt) {
  const parts = jwt.split('.');
  assert.equal(parts.length, 3, 'the access token is a JWS in compact form');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

async function getJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  assert.equal(res.status, 200, `GET ${url}`);
  return res.json();
}

async function token(fields) {
  const res = await fetch(`${ISSUER}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  return { res, body: await res.json() };
}

/** A JSON-RPC message over Streamable HTTP; the answer may come as JSON or as SSE. */
async function rpc(message, { bearer, session } = {}) {
  const headers = {
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'mcp-protocol-version': '2025-06-18',
  };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (session) headers['mcp-session-id'] = session;
  const res = await fetch(MCP_URL, {
    method: 'POST',
    headers,
    body: JSON.stringify(message),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  let body;
  if ((res.headers.get('content-type') || '').startsWith('text/event-stream')) {
    body = text
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => {
        try {
          return JSON.parse(l.slice(5).trim());
        } catch {
          return undefined;
        }
      })
      .find((v) => v && v.id !== undefined);
  } else if (text) {
    body = JSON.parse(text);
  }
  return { res, body };
}

const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'latchkey-browser-test', version: '1' },
  },
};

// 1. The client's metadata document, served over HTTPS on loopback.
let documentFetches = 0;
const docServer = createHttpsServer(
  { cert: readFileSync(env('DOC_CERT')), key: readFileSync(env('DOC_KEY')) },
  (req, res) => {
    if (req.method === 'GET' && req.url === '/oauth/claude-code.json') {
      documentFetches += 1;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
      res.end(JSON.stringify(documentBody));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  },
);
const docPort = await listen(docServer);
const docHost = `127.0.0.1:${docPort}`;
const clientId = `https://${docHost}/oauth/claude-code.json`;
const documentBody = {
  client_id: clientId,
  client_name: 'Claude Code',
  client_uri: 'https://claude.ai',
  logo_uri: 'https://claude.ai/logo.png',
  redirect_uris: ['http://localhost/callback', 'http://127.0.0.1/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};

// The loopback callback the client listens on (RFC 8252 §7.3: any port).
let callbackQuery;
const callbackServer = createHttpServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/callback') {
    callbackQuery = url.searchParams;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Signed in</title><h1>Authorization received</h1>');
  } else {
    res.writeHead(404);
    res.end();
  }
});
const callbackPort = await listen(callbackServer);
const redirectUri = `http://127.0.0.1:${callbackPort}/callback`;

let browser;
try {
  // 2. Discovery, from the MCP server's 401.
  const unauthenticated = await rpc(initialize);
  assert.equal(unauthenticated.res.status, 401, 'the MCP server wants a token');
  const challenge = unauthenticated.res.headers.get('www-authenticate') || '';
  const prmUrl = challengeParam(challenge, 'resource_metadata');
  assert.ok(prmUrl, `resource_metadata in the challenge: ${challenge}`);
  const prm = await getJson(prmUrl);
  assert.equal(prm.resource, MCP_URL, 'RFC 9728 metadata names the resource');
  assert.equal(prm.authorization_servers?.[0], ISSUER, 'and Latchkey as its server');
  ok('MCP server answers 401 with resource_metadata; RFC 9728 metadata names Latchkey');

  const asm = await getJson(`${ISSUER}/.well-known/oauth-authorization-server`);
  assert.equal(asm.issuer, ISSUER);
  assert.equal(asm.client_id_metadata_document_supported, true);
  assert.ok(asm.code_challenge_methods_supported.includes('S256'));
  assert.ok(asm.token_endpoint_auth_methods_supported.includes('none'));
  ok('RFC 8414 metadata advertises Client ID Metadata Documents, S256 and public clients');

  // 3. The authorization request, in Chromium.
  const verifier = b64url(randomBytes(32));
  const challengeS256 = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(16));
  const authorize = new URL(asm.authorization_endpoint);
  for (const [k, v] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: 'mcp:tools',
    state,
    code_challenge: challengeS256,
    code_challenge_method: 'S256',
    resource: MCP_URL,
  })) {
    authorize.searchParams.set(k, v);
  }

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root (CI) Chromium refuses to start with its sandbox.
    args: ['--no-sandbox'],
    timeout: 60_000,
  });
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
  context.setDefaultTimeout(TIMEOUT_MS);
  const page = await context.newPage();

  const loginResponse = await page.goto(authorize.toString());
  assert.equal(loginResponse.status(), 200, 'GET /authorize shows a page');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.match(await page.locator('main').innerText(), /Claude Code/, 'the login page names the client');
  assert.ok(documentFetches >= 1, 'Latchkey fetched the metadata document');
  ok(`Chromium: /authorize fetched the document at ${clientId} and shows the login form`);

  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await Promise.all([page.waitForURL(/\/authorize\/login$/), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.getByRole('heading', { name: 'Authorize Claude Code?' }).waitFor();
  ok('Chromium: the login form signs the user in and the consent page follows');

  // The consent page: whose document this is, above the fold, unverified, loopback only.
  const hostLine = page.locator('p.document-host');
  await hostLine.waitFor();
  const hostCode = hostLine.locator('strong > code');
  assert.equal((await hostCode.innerText()).trim(), docHost, 'the document host, in bold');
  const box = await hostCode.boundingBox();
  assert.ok(box && box.y + box.height <= 800, `the host is visible without scrolling: ${JSON.stringify(box)}`);
  const heading = await page.getByRole('heading', { name: 'Authorize Claude Code?' }).boundingBox();
  assert.ok(box.y < heading.y + 200, 'the host is right under the heading');
  ok(`consent page shows the document host ${docHost} prominently`);

  const unverified = hostLine.locator('.unverified');
  assert.ok(await unverified.isVisible(), 'the unverified mark is shown');
  assert.match(await unverified.innerText(), /^\(unverified:/);
  assert.equal(await page.locator('.verified').count(), 0, 'nothing says verified');
  assert.equal(await page.locator('img').count(), 0, 'no logo for an unverified client');
  ok('consent page marks the client unverified and shows no logo');

  const warning = page.getByRole('alert');
  assert.ok(await warning.isVisible(), 'a warning is shown');
  assert.match(await warning.innerText(), /^Warning: this application only returns to this computer \(localhost\)/);
  ok('consent page warns that the client only returns to localhost');

  const consentText = await page.locator('main').innerText();
  assert.ok(consentText.includes(MCP_URL), 'the resource is named');
  assert.ok(consentText.includes(EMAIL), 'the user is named');
  assert.ok(consentText.includes('mcp:tools'), 'the scope is listed');
  const screenshot = join(SCREENSHOT_DIR, 'consent.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`# consent page text:\n# ${consentText.split('\n').filter(Boolean).join('\n# ')}`);
  console.log(`# screenshot: ${screenshot}`);
  ok('consent page names the resource, the user and the scope (screenshot taken)');

  // 4. "Allow": the browser lands on the loopback callback.
  await Promise.all([
    page.waitForURL((u) => u.toString().startsWith(redirectUri)),
    page.getByRole('button', { name: 'Allow' }).click(),
  ]);
  await page.getByRole('heading', { name: 'Authorization received' }).waitFor();
  assert.ok(callbackQuery, 'the callback was reached');
  assert.equal(callbackQuery.getAll('code').length, 1, 'one code');
  const code = callbackQuery.get('code');
  assert.ok(code && code.length >= 32, 'a code');
  assert.equal(callbackQuery.get('state'), state, 'the state comes back');
  assert.equal(callbackQuery.get('iss'), ISSUER, 'iss is the issuer (RFC 9207)');
  assert.equal(callbackQuery.get('error'), null, 'no error');
  ok('Allow redirects Chromium to the loopback callback with code, state and iss');
  await browser.close();
  browser = undefined;

  // 5. The code for tokens, as a public client: no secret, the PKCE verifier.
  const exchange = {
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
    client_id: clientId,
    resource: MCP_URL,
  };
  const first = await token(exchange);
  assert.equal(first.res.status, 200, `token: ${JSON.stringify(first.body)}`);
  assert.match(first.res.headers.get('cache-control') || '', /no-store/);
  assert.equal(first.body.token_type, 'Bearer');
  const claims = jwtClaims(first.body.access_token);
  assert.equal(claims.iss, ISSUER);
  assert.equal(claims.client_id, clientId, 'the token names the document URL as its client');
  assert.ok([claims.aud].flat().includes(MCP_URL), `the token is for the MCP server: ${claims.aud}`);
  assert.ok(claims.scope.split(' ').includes('mcp:tools'));
  assert.ok(first.body.refresh_token, 'a refresh token');
  ok('the code is exchanged for an RFC 9068 token for the MCP server, client_id = the document URL');

  // 6. The token at the MCP server.
  const init = await rpc(initialize, { bearer: first.body.access_token });
  assert.equal(init.res.status, 200, 'initialize with the token');
  assert.equal(typeof init.body?.result?.serverInfo, 'object');
  const session = init.res.headers.get('mcp-session-id') || undefined;
  const initialized = await rpc(
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { bearer: first.body.access_token, session },
  );
  assert.ok(initialized.res.status >= 200 && initialized.res.status < 300);
  const call = await rpc(
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
    { bearer: first.body.access_token, session },
  );
  assert.equal(call.res.status, 200, 'tools/call');
  const who = JSON.parse(call.body.result.content[0].text);
  assert.equal(who.client_id, clientId);
  assert.equal(who.sub, claims.sub);
  assert.deepEqual(who.scopes, ['mcp:tools']);
  ok(`the example MCP server accepts the token: whoami = ${JSON.stringify(who)}`);

  // 7. The refresh token rotates; a second use of the code is refused and revokes what the
  // code gave, the rotated refresh token included (RFC 6749 §4.1.2).
  const refreshed = await token({
    grant_type: 'refresh_token',
    refresh_token: first.body.refresh_token,
    client_id: clientId,
  });
  assert.equal(refreshed.res.status, 200, `refresh: ${JSON.stringify(refreshed.body)}`);
  assert.ok(refreshed.body.refresh_token, 'a new refresh token');
  assert.notEqual(refreshed.body.refresh_token, first.body.refresh_token, 'the refresh token rotates');
  assert.equal(jwtClaims(refreshed.body.access_token).client_id, clientId);
  ok('the refresh token rotates, for the same document client');

  const replay = await token(exchange);
  assert.equal(replay.res.status, 400, 'a code used twice');
  assert.equal(replay.body.error, 'invalid_grant');
  const afterReplay = await token({
    grant_type: 'refresh_token',
    refresh_token: refreshed.body.refresh_token,
    client_id: clientId,
  });
  assert.equal(afterReplay.res.status, 400, 'the grant is revoked after a code replay');
  assert.equal(afterReplay.body.error, 'invalid_grant');
  ok('the code is refused a second time (invalid_grant), and its grant is revoked');

  console.log(`browser: ${passed} passed, 0 failed`);
} catch (err) {
  console.error(`not ok ${passed + 1} - ${err.message}`);
  if (browser) {
    const pages = browser.contexts().flatMap((c) => c.pages());
    for (const p of pages) {
      const shot = join(SCREENSHOT_DIR, 'failure.png');
      await p.screenshot({ path: shot, fullPage: true }).catch(() => {});
      console.error(`# page at failure: ${p.url()} (screenshot ${shot})`);
      console.error(await p.locator('body').innerText().catch(() => ''));
    }
  }
  console.log(`browser: ${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  await close(docServer);
  await close(callbackServer);
}
