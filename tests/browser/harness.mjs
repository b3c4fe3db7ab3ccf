// Shared by the browser tests (signin.mjs, relying-party.mjs): launching headless Chromium
// with the flags this machine needs, the CDP virtual authenticator, named steps, a watchdog and
// the failure report (failing step, page URL, messages and visible text, `failure.png`).
//
// Set CHROMIUM to use another Chromium binary than /usr/bin/chromium.

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

export const STEP_TIMEOUT_MS = 10_000;
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 740 };

/** Without the networking flags Chromium tries the internet and stalls (TECH-NOTES.md). */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A URL on `localhost` (a secure context for WebAuthn without TLS), or exits with usage. */
export function localhostUrl(arg, usage) {
  if (!arg) {
    console.error(usage);
    process.exit(2);
  }
  const url = new URL(arg);
  if (url.hostname !== "localhost") {
    console.error(`the base URL must use the host name localhost (WebAuthn needs a secure context), not ${url.hostname}`);
    process.exit(2);
  }
  return url;
}

export function fail(message) {
  throw new Error(message);
}

/**
 * One test run: a browser, one page, named steps. Page errors, CSP violations and requests to
 * origins other than `origins` fail the step in which they happen.
 */
export class Run {
  constructor({ origins, shotDir, timeoutMs = 90_000 }) {
    this.origins = new Set(origins);
    this.shotDir = shotDir;
    this.timeoutMs = timeoutMs;
    this.currentStep = "start";
    this.problems = [];
    this.browser = undefined;
    this.context = undefined;
    this.page = undefined;
    this.cdp = undefined;
    if (shotDir) fs.mkdirSync(shotDir, { recursive: true });
  }

  /** Launches Chromium and opens the page. */
  async launch() {
    this.browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: CHROMIUM_ARGS,
    });
    this.context = await this.browser.newContext({ viewport: DESKTOP, colorScheme: "light", locale: "en-GB" });
    const page = await this.context.newPage();
    this.page = page;
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
    page.on("pageerror", (err) => this.problems.push(`page error: ${err.message}`));
    page.on("console", (msg) => {
      const text = msg.text();
      if (/Content Security Policy/i.test(text)) this.problems.push(`CSP violation: ${text}`);
      else if (msg.type() === "error") console.log(`     (console: ${text})`);
    });
    page.on("request", (req) => {
      const u = new URL(req.url());
      if ((u.protocol === "http:" || u.protocol === "https:") && !this.origins.has(u.origin)) {
        this.problems.push(`request to another origin: ${req.url()}`);
      }
    });
    return page;
  }

  /**
   * Enables the CDP WebAuthn domain and adds a virtual platform authenticator holding
   * discoverable credentials, with automatic presence; `extra` overrides its options.
   * Returns the authenticator id.
   */
  async addAuthenticator(extra = {}) {
    if (!this.cdp) {
      this.cdp = await this.context.newCDPSession(this.page);
      await this.cdp.send("WebAuthn.enable", { enableUI: false });
    }
    const { authenticatorId } = await this.cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
        ...extra,
      },
    });
    return authenticatorId;
  }

  async step(name, fn) {
    this.currentStep = name;
    const started = Date.now();
    try {
      await fn();
    } catch (err) {
      // A problem seen on the way (a page error, say) usually explains the failure better.
      if (this.problems.length) fail(`${err && err.message ? err.message : err}\n${this.problems.join("\n")}`);
      throw err;
    }
    if (this.problems.length) fail(this.problems.join("\n"));
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  }

  /** Runs `main` under the watchdog; exits 0 on success, 1 with a report on failure. */
  async execute(main) {
    const watchdog = setTimeout(() => {
      console.error(`FAILED at step "${this.currentStep}": the run took longer than ${this.timeoutMs / 1000} s`);
      process.exit(1);
    }, this.timeoutMs);
    const started = Date.now();
    try {
      await main();
      console.log(`all steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      await this.browser.close();
      clearTimeout(watchdog);
      process.exit(0);
    } catch (err) {
      console.error(`FAILED at step "${this.currentStep}": ${err && err.message ? err.message : err}`);
      await this.report();
      if (this.browser) await this.browser.close().catch(() => {});
      clearTimeout(watchdog);
      process.exit(1);
    }
  }

  /** What the page showed when a step failed. */
  async report() {
    const page = this.page;
    if (!page) return;
    console.error(`     page: ${page.url()}`);
    const status = await page.locator('[role="status"], [role="alert"]').allTextContents().catch(() => []);
    const texts = status.map((t) => t.trim()).filter(Boolean);
    if (texts.length) console.error(`     messages on the page: ${texts.join(" | ")}`);
    const visible = await page.locator("body").innerText({ timeout: 1000 }).catch(() => "");
    const compact = visible.replace(/\s*\n\s*/g, " / ").trim();
    if (compact) console.error(`     visible text: ${compact.length > 1500 ? `${compact.slice(0, 1500)}…` : compact}`);
    if (this.shotDir) {
      await page.setViewportSize(DESKTOP).catch(() => {});
      await page.emulateMedia({ colorScheme: "light" }).catch(() => {});
      await page.screenshot({ path: path.join(this.shotDir, "failure.png"), fullPage: true }).catch(() => {});
    }
  }
}
