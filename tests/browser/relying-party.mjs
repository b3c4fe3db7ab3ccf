#!/usr/bin/env node
// End-to-end test of Latchkey as an OpenID Provider, in headless Chromium with a CDP virtual
// authenticator. The script serves a tiny relying party (RP) on http://localhost:RP_PORT, built
// only on Node's `http`, `fetch` and `crypto`:
//
//   GET /            a link **Sign in with Latchkey** to /login
//   GET /login       discovery, then a redirect to the authorization endpoint (code flow,
//                    scope `openid profile email`, random state and nonce, PKCE S256)
//   GET /callback    checks state and `iss` (RFC 9207), exchanges the code at the token endpoint
//                    (client_secret_basic), verifies the ID token's signature against the JWKS
//                    and its iss, aud, exp, iat, nonce and at_hash, checks userinfo's `sub`, and
//                    shows "Signed in as <name>" with a link **Sign out** (RP-initiated logout)
//   GET /signed-out  checks the logout state and shows "Signed out of the RP"
//
// The browser signs up at Latchkey with a passkey and signs out (remembered), then signs in to
// the RP through Latchkey with **Sign in with a passkey**, signs out through the RP (which must
// end Latchkey's SSO session), and signs in to the RP once more, again with the passkey.
// Page errors, CSP violations, requests to other origins than Latchkey's and the RP's, and any
// check the RP fails make the run fail.
//
//   node tests/browser/relying-party.mjs http://localhost:PORT RP_PORT CLIENT_ID CLIENT_SECRET [SCREENSHOT_DIR]
//
// The base URL must be Latchkey's LATCHKEY_ISSUER on the host name `localhost`. The client must
// be a confidential, first-party client (no consent page) with the redirect URI
// http://localhost:RP_PORT/callback and the post-logout redirect URI
// http://localhost:RP_PORT/signed-out. With SCREENSHOT_DIR, the main pages are captured and on
// failure `failure.png` is saved there. Exits 0 on success, 1 on failure.

import { createHash, createPublicKey, randomBytes, verify } from "node:crypto";
import http from "node:http";
import path from "node:path";
import { Run, STEP_TIMEOUT_MS, fail, localhostUrl } from "./harness.mjs";

const USAGE =
  "usage: node relying-party.mjs http://localhost:PORT RP_PORT CLIENT_ID CLIENT_SECRET [SCREENSHOT_DIR]";
const [baseArg, rpPortArg, clientId, clientSecret, shotDir] = process.argv.slice(2);
const base = localhostUrl(baseArg, USAGE);
const rpPort = Number(rpPortArg);
if (!Number.isInteger(rpPort) || rpPort <= 0 || !clientId || !clientSecret) {
  console.error(USAGE);
  process.exit(2);
}
const issuer = baseArg.replace(/\/+$/, "");
const latchkeyOrigin = base.origin;
const latchkey = (p) => new URL(p, base).href;
const rpOrigin = `http://localhost:${rpPort}`;
const rp = (p) => `${rpOrigin}${p}`;
const REDIRECT_URI = rp("/callback");
const SIGNED_OUT_URI = rp("/signed-out");
/** The algorithm Latchkey signs ID tokens with for a client that registered none. */
const ID_TOKEN_ALG = "RS256";
const CLOCK_SKEW_S = 60;

const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const username = `rp-${suffix}`;
const email = `${username}@example.com`;
const displayName = `RP Tester <${suffix}> & Co`; // markup characters: the RP must escape them

const run = new Run({ origins: [latchkeyOrigin, rpOrigin], shotDir, timeoutMs: 60_000 });
let page;

// ---------------------------------------------------------------------------------------------
// The relying party.

let discovery;
/** Authorization requests in flight, by state: { nonce, verifier }. */
const pendingAuthorizations = new Map();
/** States of RP-initiated logouts in flight. */
const pendingLogouts = new Set();
/** What the RP saw: one entry per completed sign-in, for the browser steps to check. */
const signIns = [];

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const random = () => b64url(randomBytes(32));
const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function html(res, status, title, body) {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
  res.end(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} · Test RP</title></head>` +
      `<body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`,
  );
}

/** The JSON body of `response`, or a failure naming the request and showing the body. */
async function json(response, what) {
  const text = await response.text();
  if (!response.ok) fail(`${what}: HTTP ${response.status} ${text}`);
  try {
    return JSON.parse(text);
  } catch {
    fail(`${what}: not JSON: ${text}`);
  }
}

async function discover() {
  const url = `${issuer}/.well-known/openid-configuration`;
  const doc = await json(await fetch(url), `GET ${url}`);
  if (doc.issuer !== issuer) fail(`discovery: issuer ${doc.issuer}, expected ${issuer}`);
  for (const field of ["authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "end_session_endpoint"]) {
    if (typeof doc[field] !== "string") fail(`discovery: no ${field}`);
  }
  if (!doc.code_challenge_methods_supported?.includes("S256")) fail("discovery: S256 PKCE not supported");
  if (!doc.token_endpoint_auth_methods_supported?.includes("client_secret_basic")) {
    fail("discovery: client_secret_basic not supported");
  }
  if (doc.authorization_response_iss_parameter_supported !== true) fail("discovery: no RFC 9207 iss parameter");
  return doc;
}

/** The signing algorithms' Node names and signature encodings. */
const ALGORITHMS = {
  RS256: { hash: "sha256", kty: "RSA" },
  ES256: { hash: "sha256", kty: "EC", dsaEncoding: "ieee-p1363" },
  EdDSA: { hash: null, kty: "OKP" },
};

/** Verifies `idToken` (OIDC Core §3.1.3.7) and returns its claims. */
async function verifyIdToken(idToken, { nonce, accessToken }) {
  const parts = idToken.split(".");
  if (parts.length !== 3) fail(`ID token: ${parts.length} parts, expected 3`);
  const decode = (part, what) => {
    try {
      return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    } catch {
      fail(`ID token: ${what} is not base64url JSON`);
    }
  };
  const header = decode(parts[0], "header");
  const claims = decode(parts[1], "payload");
  if (header.alg !== ID_TOKEN_ALG) fail(`ID token: alg ${header.alg}, expected ${ID_TOKEN_ALG}`);
  const algorithm = ALGORITHMS[header.alg];

  const jwks = await json(await fetch(discovery.jwks_uri), `GET ${discovery.jwks_uri}`);
  if (!Array.isArray(jwks.keys)) fail("JWKS: no keys array");
  const candidates = jwks.keys.filter(
    (k) =>
      k.kty === algorithm.kty &&
      (k.use === undefined || k.use === "sig") &&
      (k.alg === undefined || k.alg === header.alg) &&
      (header.kid === undefined || k.kid === header.kid),
  );
  if (candidates.length !== 1) {
    fail(`JWKS: ${candidates.length} keys match kid ${header.kid} and alg ${header.alg} among ${JSON.stringify(jwks.keys.map((k) => ({ kid: k.kid, kty: k.kty, alg: k.alg })))}`);
  }
  const key = createPublicKey({ key: candidates[0], format: "jwk" });
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`, "ascii");
  const signature = Buffer.from(parts[2], "base64url");
  const options = algorithm.dsaEncoding ? { key, dsaEncoding: algorithm.dsaEncoding } : key;
  if (!verify(algorithm.hash, signed, options, signature)) fail("ID token: the signature does not verify with the JWKS key");

  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== issuer) fail(`ID token: iss ${claims.iss}, expected ${issuer}`);
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(clientId)) fail(`ID token: aud ${JSON.stringify(claims.aud)} lacks ${clientId}`);
  if (audiences.length > 1 && claims.azp !== clientId) fail(`ID token: azp ${claims.azp}, expected ${clientId}`);
  if (typeof claims.exp !== "number" || claims.exp + CLOCK_SKEW_S <= now) fail(`ID token: expired (exp ${claims.exp}, now ${now})`);
  if (typeof claims.iat !== "number" || claims.iat > now + CLOCK_SKEW_S) fail(`ID token: iat ${claims.iat} in the future (now ${now})`);
  if (claims.nonce !== nonce) fail(`ID token: nonce ${claims.nonce}, expected ${nonce}`);
  if (typeof claims.sub !== "string" || !claims.sub) fail("ID token: no sub");
  if (claims.at_hash !== undefined) {
    const digest = createHash(algorithm.hash || "sha512").update(accessToken, "ascii").digest();
    const expected = b64url(digest.subarray(0, digest.length / 2));
    if (claims.at_hash !== expected) fail(`ID token: at_hash ${claims.at_hash}, expected ${expected}`);
  }
  return claims;
}

async function login(res) {
  const state = random();
  const nonce = random();
  const verifier = random();
  const challenge = b64url(createHash("sha256").update(verifier, "ascii").digest());
  pendingAuthorizations.set(state, { nonce, verifier });
  const url = new URL(discovery.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    scope: "openid profile email",
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  res.writeHead(302, { location: url.href, "cache-control": "no-store" });
  res.end();
}

async function callback(res, query) {
  const state = query.get("state");
  const request = state && pendingAuthorizations.get(state);
  if (!request) fail(`callback: unknown state ${state}`);
  pendingAuthorizations.delete(state);
  if (query.get("iss") !== issuer) fail(`callback: iss ${query.get("iss")}, expected ${issuer}`);
  if (query.has("error")) fail(`callback: error ${query.get("error")}: ${query.get("error_description")}`);
  const code = query.get("code");
  if (!code) fail("callback: no code");

  const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString("base64");
  const response = await fetch(discovery.token_endpoint, {
    method: "POST",
    headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: request.verifier,
    }).toString(),
  });
  const cacheControl = response.headers.get("cache-control") || "";
  const tokens = await json(response, `POST ${discovery.token_endpoint}`);
  if (!/no-store/i.test(cacheControl)) fail(`token response: Cache-Control "${cacheControl}", expected no-store`);
  if (String(tokens.token_type).toLowerCase() !== "bearer") fail(`token response: token_type ${tokens.token_type}`);
  if (typeof tokens.access_token !== "string") fail("token response: no access_token");
  if (typeof tokens.id_token !== "string") fail("token response: no id_token");
  const claims = await verifyIdToken(tokens.id_token, { nonce: request.nonce, accessToken: tokens.access_token });

  const info = await json(
    await fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } }),
    `GET ${discovery.userinfo_endpoint}`,
  );
  if (info.sub !== claims.sub) fail(`userinfo: sub ${info.sub}, ID token's ${claims.sub}`);
  const name = claims.name ?? info.name;
  if (typeof name !== "string") fail("neither the ID token nor userinfo has a name (scope profile)");

  const logoutState = random();
  pendingLogouts.add(logoutState);
  const logout = new URL(discovery.end_session_endpoint);
  logout.search = new URLSearchParams({
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: SIGNED_OUT_URI,
    state: logoutState,
  }).toString();
  signIns.push({ claims, info });
  html(
    res,
    200,
    `Signed in as ${name}`,
    `<p>Subject <code>${escapeHtml(claims.sub)}</code>, email ${escapeHtml(claims.email ?? info.email ?? "none")}.</p>` +
      `<p><a href="${escapeHtml(logout.href)}">Sign out</a></p>`,
  );
}

function signedOut(res, query) {
  const state = query.get("state");
  if (!state || !pendingLogouts.has(state)) fail(`signed-out: unknown state ${state}`);
  pendingLogouts.delete(state);
  html(res, 200, "Signed out of the RP", `<p><a href="/login">Sign in with Latchkey</a></p>`);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, rpOrigin);
  try {
    if (req.method !== "GET") return html(res, 405, "Method not allowed", "");
    switch (url.pathname) {
      case "/":
        return html(res, 200, "Test RP", `<p><a href="/login">Sign in with Latchkey</a></p>`);
      case "/login":
        return await login(res);
      case "/callback":
        return await callback(res, url.searchParams);
      case "/signed-out":
        return signedOut(res, url.searchParams);
      case "/favicon.ico":
        res.writeHead(204);
        return res.end();
      default:
        console.log(`     (RP: 404 for ${url.pathname})`);
        return html(res, 404, "Not found", "");
    }
  } catch (err) {
    const message = err && err.message ? err.message : String(err);
    run.problems.push(`the RP refused ${url.pathname}: ${message}`);
    if (!res.headersSent) html(res, 400, "RP error", `<p role="alert">${escapeHtml(message)}</p>`);
    else res.end();
  }
});

// ---------------------------------------------------------------------------------------------
// The browser.

let shotNumber = 0;
async function shot(name) {
  if (!shotDir) return;
  shotNumber += 1;
  await page.screenshot({ path: path.join(shotDir, `rp-${String(shotNumber).padStart(2, "0")}-${name}.png`), fullPage: true });
}

const button = (name) => page.getByRole("button", { name, exact: true });
const link = (name) => page.getByRole("link", { name, exact: true });

/** Waits until the page is at `origin` + `pathname`. */
async function expectAt(origin, pathname) {
  try {
    await page.waitForURL((u) => u.origin === origin && u.pathname === pathname, { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`expected ${origin}${pathname}, at ${page.url()}`);
  }
}

/** Latchkey's passkey step for the remembered person, then back at the RP, signed in. */
async function signInAtLatchkeyAndReturn() {
  await expectAt(latchkeyOrigin, "/login");
  const signIn = button("Sign in with a passkey");
  await signIn.waitFor();
  await shot("latchkey-login");
  const before = signIns.length;
  await signIn.click();
  await expectAt(rpOrigin, "/callback");
  if (run.problems.length) fail("the RP did not sign the person in");
  await page.getByRole("heading", { level: 1, name: `Signed in as ${displayName}`, exact: true }).waitFor();
  if (signIns.length !== before + 1) fail("the RP shows a sign-in it did not verify");
  const { claims } = signIns.at(-1);
  if (claims.preferred_username !== username) fail(`preferred_username ${claims.preferred_username}, expected ${username}`);
  if (claims.email !== email) fail(`email ${claims.email}, expected ${email}`);
  await shot("rp-signed-in");
}

async function main() {
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(rpPort, "127.0.0.1", resolve);
  });
  page = await run.launch();
  await run.addAuthenticator();

  await run.step("RP: discovery", async () => {
    discovery = await discover();
  });

  await run.step("Latchkey: sign up with a passkey, sign out (remembered)", async () => {
    await page.goto(latchkey("/signup"));
    await page.getByLabel("Username", { exact: true }).fill(username);
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Display name", { exact: true }).fill(displayName);
    await button("Create account").click();
    await button("Create a passkey").click();
    await expectAt(latchkeyOrigin, "/account");
    await page.getByRole("heading", { level: 1, name: displayName, exact: true }).waitFor();
    await button("Sign out").click();
    await expectAt(latchkeyOrigin, "/login");
    await button("Sign in with a passkey").waitFor();
  });

  await run.step("RP: Sign in with Latchkey, passkey at Latchkey, tokens verified at the RP", async () => {
    await page.goto(rp("/"));
    await shot("rp-home");
    await link("Sign in with Latchkey").click();
    await signInAtLatchkeyAndReturn();
  });

  const firstSubject = signIns.at(-1).claims.sub;
  const firstSession = signIns.at(-1).claims.sid;

  await run.step("RP-initiated logout: back at the RP, signed out", async () => {
    await link("Sign out").click();
    await expectAt(rpOrigin, "/signed-out");
    await page.getByRole("heading", { level: 1, name: "Signed out of the RP", exact: true }).waitFor();
    await shot("rp-signed-out");
  });

  await run.step("Latchkey's SSO session ended: /account redirects to /login", async () => {
    await page.goto(latchkey("/account"));
    await expectAt(latchkeyOrigin, "/login");
    await button("Sign in with a passkey").waitFor();
  });

  await run.step("second round: the passkey is asked for again, RP signed in", async () => {
    await page.goto(rp("/login"));
    await signInAtLatchkeyAndReturn();
    const { claims } = signIns.at(-1);
    if (claims.sub !== firstSubject) fail(`sub changed between sign-ins: ${firstSubject} then ${claims.sub}`);
    if (firstSession !== undefined && claims.sid === firstSession) fail(`the new sign-in reused the ended session ${firstSession}`);
  });
}

await run.execute(main);
