#!/usr/bin/env node
// End-to-end test of Latchkey's pages in headless Chromium with a CDP virtual authenticator:
// sign-up with a first passkey; sign-in as the remembered user, by username, with a
// discoverable passkey (**Use a passkey**) and through passkey autofill; adding, renaming and
// deleting passkeys; failed sign-ins (unknown username, a passkey the server does not know)
// that leave the page usable. Elements are found only by their accessible names (DESIGN.md,
// "Pages and accessible names"), so the test also guards the names assistive technology relies
// on. Page errors, CSP violations and requests to other origins fail the run.
//
//   node tests/browser/signin.mjs http://localhost:PORT [SCREENSHOT_DIR]
//
// The base URL must use the host name `localhost` (a secure context for WebAuthn without TLS)
// and must be the server's LATCHKEY_ISSUER, since the WebAuthn origin derives from it.
// With SCREENSHOT_DIR, every page is captured full-page at desktop and phone width, light and
// dark; on failure `failure.png` is saved there. Exits 0 on success, 1 on failure.
// Set CHROMIUM to use another Chromium binary than /usr/bin/chromium.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import path from "node:path";
import { DESKTOP, PHONE, Run, STEP_TIMEOUT_MS, fail, localhostUrl } from "./harness.mjs";

const [baseArg, shotDir] = process.argv.slice(2);
const base = localhostUrl(baseArg, "usage: node signin.mjs http://localhost:PORT [SCREENSHOT_DIR]");
const origin = base.origin;
const url = (p) => new URL(p, base).href;

const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const username = `e2e-${suffix}`;
const email = `${username}@example.com`;
const displayName = `E2E Tester ${suffix}`;

const run = new Run({ origins: [origin], shotDir, timeoutMs: 90_000 });
const step = (name, fn) => run.step(name, fn);
let page;

let shotNumber = 0;
/** Full-page screenshots of the current page: desktop and phone, light and dark. */
async function shot(name) {
  if (!shotDir) return;
  shotNumber += 1;
  const stem = `${String(shotNumber).padStart(2, "0")}-${name}`;
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(viewport);
    for (const scheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.screenshot({ path: path.join(shotDir, `${stem}-${size}-${scheme}.png`), fullPage: true, animations: "disabled" });
    }
  }
  await page.setViewportSize(DESKTOP);
  await page.emulateMedia({ colorScheme: "light" });
}

/** Waits until `locator` matches exactly `count` elements. */
async function expectCount(locator, count, what) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let seen;
  while (Date.now() < deadline) {
    seen = await locator.count();
    if (seen === count) return;
    await page.waitForTimeout(100);
  }
  fail(`expected ${count} ${what}, found ${seen}`);
}

async function expectPath(pathname) {
  await page.waitForURL((u) => u.pathname === pathname, { timeout: STEP_TIMEOUT_MS });
}

const button = (name) => page.getByRole("button", { name, exact: true });
const passkeyList = () => page.getByRole("list", { name: "Passkeys", exact: true });
const passkeyItems = () => passkeyList().getByRole("listitem");

async function signOut() {
  await button("Sign out").click();
  await expectPath("/login");
  await page.getByRole("heading", { name: /^Hello, / }).waitFor();
  await button("Sign in with a passkey").waitFor();
}

async function switchUser() {
  await page.getByRole("link", { name: "Switch user", exact: true }).click();
  await expectPath("/login");
  await page.getByLabel("Username or email", { exact: true }).waitFor();
}

async function expectAccountPage() {
  await expectPath("/account");
  await page.getByRole("heading", { level: 1, name: displayName, exact: true }).waitFor();
}

async function main() {
  page = await run.launch();

  // The virtual authenticator: a platform authenticator holding discoverable credentials.
  const authenticator = (extra = {}) => run.addAuthenticator(extra);
  let active = await authenticator();
  const cdp = run.cdp;
  // With automatic presence on, Chromium answers the username step's conditional (autofill)
  // request at once, as if the person picked the passkey from the autofill list. Steps that
  // need the username step to stay put switch presence off first; a request that is already
  // pending stays pending when presence is switched back on.
  const presence = (enabled) =>
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", { authenticatorId: active, enabled });

  await step("sign up: account form", async () => {
    await page.goto(url("/signup"));
    await page.getByLabel("Username", { exact: true }).fill(username);
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Display name", { exact: true }).fill(displayName);
    await shot("signup");
    await button("Create account").click();
    await button("Create a passkey").waitFor();
    await shot("signup-passkey");
  });

  await step("sign up: create the first passkey", async () => {
    await button("Create a passkey").click();
    await expectAccountPage();
    await expectCount(passkeyItems(), 1, "passkey after sign-up");
    await button("Add a passkey").waitFor();
    await shot("account");
  });

  await step("sign out, remembered: passkey step", async () => {
    await signOut();
    await page.getByRole("link", { name: "Switch user", exact: true }).waitFor();
    await shot("login-remembered");
  });

  await step("sign in as the remembered user", async () => {
    await button("Sign in with a passkey").click();
    await expectAccountPage();
  });

  await step("switch user, sign in by username", async () => {
    await signOut();
    await presence(false);
    await switchUser();
    await button("Use a passkey").waitFor();
    await shot("login-username");
    await page.getByLabel("Username or email", { exact: true }).fill(username);
    await button("Continue").click();
    await button("Sign in with a passkey").waitFor();
    await presence(true);
    await button("Sign in with a passkey").click();
    await expectAccountPage();
  });

  await step("sign in with a discoverable passkey (Use a passkey)", async () => {
    await signOut();
    await presence(false);
    await switchUser();
    // Let the autofill request start, so that the button has to abort it.
    await page.waitForLoadState("networkidle");
    await page.waitForTimeout(300);
    await presence(true);
    await button("Use a passkey").click();
    await expectAccountPage();
  });

  await step("sign in through passkey autofill (conditional mediation)", async () => {
    await signOut();
    // Presence is on: the username step's autofill request completes by itself.
    await page.getByRole("link", { name: "Switch user", exact: true }).click();
    await expectAccountPage();
  });

  await step("add a second passkey on another authenticator", async () => {
    // The first authenticator would refuse: its credential is in excludeCredentials.
    await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: active });
    active = await authenticator({ defaultBackupEligibility: true, defaultBackupState: true });
    await button("Add a passkey").click();
    await expectCount(passkeyItems(), 2, "passkeys after adding one");
    await expectCount(passkeyItems().filter({ hasText: "Synced" }), 1, "synced passkeys");
    await expectCount(passkeyItems().filter({ hasText: "This device only" }), 1, "device-bound passkeys");
    await shot("account-two-passkeys");
  });

  const newName = `Renamed ${suffix}`;
  await step("rename a passkey", async () => {
    const item = passkeyItems().last();
    const rename = item.getByRole("button", { name: /^Rename / });
    await rename.click();
    if ((await rename.getAttribute("aria-expanded")) !== "true") fail("Rename did not expand");
    const field = item.getByLabel("Passkey name", { exact: true });
    if (!(await field.evaluate((el) => el === document.activeElement))) fail("Passkey name is not focused after Rename");
    await shot("account-rename");
    await field.fill(newName);
    await item.getByRole("button", { name: "Save", exact: true }).click();
    await expectPath("/account");
    await passkeyList().getByRole("heading", { name: newName, exact: true }).waitFor();
    await page.getByRole("button", { name: `Rename ${newName}`, exact: true }).waitFor();
  });

  await step("delete a passkey", async () => {
    const item = passkeyItems().filter({ hasNot: page.getByRole("heading", { name: newName, exact: true }) });
    await expectCount(item, 1, "passkey to delete");
    await item.getByRole("button", { name: /^Delete / }).click();
    await shot("account-delete");
    await item.getByRole("button", { name: "Delete passkey", exact: true }).click();
    await expectPath("/account");
    await expectCount(passkeyItems(), 1, "passkey after deleting one");
    await passkeyList().getByRole("heading", { name: newName, exact: true }).waitFor();
    // The last passkey cannot be deleted.
    await expectCount(page.getByRole("button", { name: /^Delete / }), 0, "Delete buttons on the last passkey");
    await shot("account-last-passkey");
  });

  await step("unknown username: passkey step, readable failure", async () => {
    await signOut();
    await presence(false);
    await switchUser();
    await page.getByLabel("Username or email", { exact: true }).fill(`nobody-${suffix}`);
    await button("Continue").click();
    const signIn = button("Sign in with a passkey");
    await signIn.waitFor();
    await presence(true);
    await signIn.click();
    const status = page.getByRole("status");
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    let text = "";
    while (Date.now() < deadline) {
      text = ((await status.first().textContent()) || "").trim();
      if (text && !text.endsWith("…") && (await signIn.isEnabled())) break;
      await page.waitForTimeout(100);
    }
    if (!text || text.endsWith("…")) fail(`no message after the failed sign-in (status: "${text}")`);
    if (!(await signIn.isEnabled())) fail("the sign-in button stayed disabled");
    if (new URL(page.url()).pathname !== "/login") fail(`left the sign-in page for ${page.url()}`);
    console.log(`     message shown: "${text}"`);
    await shot("login-unknown-user");
    // Still usable: the person can go back to the username step.
    await presence(false);
    await switchUser();
  });

  await step("a passkey Latchkey does not know: the server's message, page usable", async () => {
    // A fresh authenticator holding only a credential the server never registered.
    await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: active });
    active = await authenticator({ automaticPresenceSimulation: false });
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await cdp.send("WebAuthn.addCredential", {
      authenticatorId: active,
      credential: {
        credentialId: randomBytes(16).toString("base64"),
        isResidentCredential: true,
        rpId: base.hostname,
        privateKey: privateKey.export({ format: "der", type: "pkcs8" }).toString("base64"),
        userHandle: randomBytes(16).toString("base64"),
        signCount: 1,
      },
    });
    // With presence on, the username step's autofill request answers with that passkey at once.
    await presence(true);
    await page.reload();
    const use = button("Use a passkey");
    const status = page.getByRole("status");
    const message = async () => ((await status.first().textContent()) || "").trim();
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    const settled = (t) => t !== "" && !t.endsWith("…"); // "…" marks work in progress
    while (Date.now() < deadline && !settled(await message())) await page.waitForTimeout(100);
    // A failure restarts the autofill request, which this authenticator would answer again at
    // once with the same passkey: stop that loop before looking at the page.
    await presence(false);
    await page.waitForTimeout(500);
    const text = await message();
    if (!settled(text)) fail(`no message after signing in with an unknown passkey (status: "${text}")`);
    if (/cancelled/i.test(text)) fail(`expected the server's message, got "${text}"`);
    if (!(await use.isEnabled())) fail("Use a passkey stayed disabled");
    if (new URL(page.url()).pathname !== "/login") fail(`left the sign-in page for ${page.url()}`);
    console.log(`     message shown: "${text}"`);
    await shot("login-unknown-passkey");
    await page.getByLabel("Username or email", { exact: true }).waitFor();
  });
}

await run.execute(main);
