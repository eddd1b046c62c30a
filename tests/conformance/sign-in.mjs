// Completes, as a user at a browser would, the authorization request the conformance suite's
// authorization-code-grant scenario prints: the login form, the consent page ("Allow"), and
// the redirect to the suite's callback server. Every step is checked; any surprise exits 1.
//
// usage: SIGN_IN_PASSWORD=… node sign-in.mjs AUTHORIZATION_URL EMAIL
// Works on Node 20 and later (fetch, Headers.getSetCookie).

const [authorizationUrl, email] = process.argv.slice(2);
const password = process.env.SIGN_IN_PASSWORD;
if (!authorizationUrl || !email || !password) {
  console.error('usage: SIGN_IN_PASSWORD=… node sign-in.mjs AUTHORIZATION_URL EMAIL');
  process.exit(2);
}

const origin = new URL(authorizationUrl).origin;
const cookies = new Map();

function fail(message) {
  console.error(`sign-in: ${message}`);
  process.exit(1);
}

/** One request, no redirect followed, cookies kept, bounded in time. */
async function request(url, init = {}) {
  const headers = new Headers(init.headers);
  if (cookies.size > 0) {
    headers.set('cookie', [...cookies].map(([k, v]) => `${k}=${v}`).join('; '));
  }
  const res = await fetch(url, {
    ...init,
    headers,
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
  });
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const eq = pair.indexOf('=');
    cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  return res;
}

function csrf(html, page) {
  const m = html.match(/name="csrf_token" value="([^"]+)"/);
  if (!m) fail(`no csrf_token on the ${page} page`);
  return m[1];
}

function form(fields) {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  };
}

const loginPage = await request(authorizationUrl);
const loginHtml = await loginPage.text();
if (loginPage.status !== 200 || !loginHtml.includes('action="/authorize/login"')) {
  fail(`GET /authorize: expected the login page, got ${loginPage.status}: ${loginHtml.slice(0, 500)}`);
}
console.log('sign-in: login page shown');

const consentPage = await request(
  `${origin}/authorize/login`,
  form({ csrf_token: csrf(loginHtml, 'login'), email, password }),
);
const consentHtml = await consentPage.text();
if (consentPage.status !== 200 || !consentHtml.includes('action="/authorize/consent"')) {
  fail(`POST /authorize/login: expected the consent page, got ${consentPage.status}: ${consentHtml.slice(0, 500)}`);
}
console.log('sign-in: signed in, consent page shown');

const done = await request(
  `${origin}/authorize/consent`,
  form({ csrf_token: csrf(consentHtml, 'consent'), decision: 'allow' }),
);
const location = done.headers.get('location');
if (done.status !== 303 || !location) {
  fail(`POST /authorize/consent: expected a 303 to the callback, got ${done.status}`);
}
const callback = new URL(location);
console.log(
  `sign-in: allowed; redirected to ${callback.origin}${callback.pathname} with ${[...callback.searchParams.keys()].join(', ')}`,
);

// The suite's callback server reads the code; it answers 200 once.
const delivered = await fetch(callback, { signal: AbortSignal.timeout(10_000) });
if (delivered.status !== 200) fail(`the callback answered ${delivered.status}`);
console.log('sign-in: the callback received the authorization response');
