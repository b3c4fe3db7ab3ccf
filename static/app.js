/*
 * Latchkey page script: runs the WebAuthn ceremonies and small page behaviours.
 *
 * No framework and no build step. Pages carry no inline script (strict CSP); they hand data
 * over in <script type="application/json"> blocks and data- attributes:
 *   [data-ceremony="login"]       #passkey-options, optional data-discoverable, data-restart
 *   [data-ceremony="signup"]      #passkey-creation-options, data-finish, data-restart
 *   [data-ceremony="add-passkey"] data-options (POST → creation options), data-finish
 *   #passkey-signal               signalAllAcceptedCredentials() input on the account page
 *   [data-reveal]                 aria-expanded button that shows the form named by aria-controls
 * Ceremony answers are {"verified": true, "redirect_to": …} or an RFC 9457 problem document,
 * optionally with `retry` (fresh options) and, for unknown passkeys, `code`/`credential_id`.
 */
"use strict";

(() => {
  const PKC = window.PublicKeyCredential;
  const LOGIN_FINISH = "/login/passkey";

  // ---- base64url (RFC 4648 §5, no padding) ------------------------------------------------

  function b64urlEncode(data) {
    const bytes = data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function b64urlDecode(text) {
    const b64 = String(text).replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  // ---- WebAuthn JSON <-> browser objects ----------------------------------------------------

  /** Copy of a JSON value without null members: the WebAuthn dictionaries reject null enums. */
  function dropNulls(value) {
    if (Array.isArray(value)) return value.map(dropNulls);
    if (value && typeof value === "object") {
      const out = {};
      for (const [key, item] of Object.entries(value)) if (item !== null) out[key] = dropNulls(item);
      return out;
    }
    return value;
  }

  const withIds = (list) => (list || []).map((c) => ({ ...c, id: b64urlDecode(c.id) }));

  function creationOptions(json) {
    const pk = dropNulls(json);
    if (typeof PKC.parseCreationOptionsFromJSON === "function") {
      try { return PKC.parseCreationOptionsFromJSON(pk); } catch (e) { /* decode by hand */ }
    }
    return {
      ...pk,
      challenge: b64urlDecode(pk.challenge),
      user: { ...pk.user, id: b64urlDecode(pk.user.id) },
      excludeCredentials: withIds(pk.excludeCredentials),
    };
  }

  function requestOptions(json) {
    const pk = dropNulls(json);
    if (typeof PKC.parseRequestOptionsFromJSON === "function") {
      try { return PKC.parseRequestOptionsFromJSON(pk); } catch (e) { /* decode by hand */ }
    }
    return { ...pk, challenge: b64urlDecode(pk.challenge), allowCredentials: withIds(pk.allowCredentials) };
  }

  /** Binary members of extension outputs become base64url, as toJSON() does. */
  function jsonSafe(value) {
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return b64urlEncode(value);
    if (Array.isArray(value)) return value.map(jsonSafe);
    if (value && typeof value === "object") {
      const out = {};
      for (const [key, item] of Object.entries(value)) out[key] = jsonSafe(item);
      return out;
    }
    return value;
  }

  /** RegistrationResponseJSON / AuthenticationResponseJSON (WebAuthn Level 3 §5.1). */
  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") {
      try { return cred.toJSON(); } catch (e) { /* serialise by hand */ }
    }
    const r = cred.response;
    const response = { clientDataJSON: b64urlEncode(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = b64urlEncode(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
      if (typeof r.getAuthenticatorData === "function") {
        response.authenticatorData = b64urlEncode(r.getAuthenticatorData());
      }
      const key = typeof r.getPublicKey === "function" ? r.getPublicKey() : null;
      if (key) response.publicKey = b64urlEncode(key);
      if (typeof r.getPublicKeyAlgorithm === "function") {
        response.publicKeyAlgorithm = r.getPublicKeyAlgorithm();
      }
    } else {
      response.authenticatorData = b64urlEncode(r.authenticatorData);
      response.signature = b64urlEncode(r.signature);
      if (r.userHandle) response.userHandle = b64urlEncode(r.userHandle);
    }
    const json = {
      id: cred.id,
      rawId: b64urlEncode(cred.rawId),
      type: cred.type,
      response,
      clientExtensionResults: jsonSafe(cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}),
    };
    if (cred.authenticatorAttachment) json.authenticatorAttachment = cred.authenticatorAttachment;
    return json;
  }

  // ---- page helpers -------------------------------------------------------------------------

  function readJSON(id) {
    const el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  /** Writes into a role="status" region; tone is "info", "ok" or "error" (styling only). */
  function statusRegion(el) {
    return {
      show(text, tone = "info", link = null) {
        if (!el) return;
        el.textContent = text;
        el.dataset.tone = tone;
        if (link) {
          const a = document.createElement("a");
          a.href = link.href;
          a.textContent = link.text;
          el.append(" ", a);
        }
      },
      clear() {
        if (!el) return;
        el.textContent = "";
        delete el.dataset.tone;
      },
    };
  }

  async function postJSON(url, body) {
    let res;
    try {
      res = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json, application/problem+json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, data: { title: "Latchkey could not be reached. Check your connection and try again." } };
    }
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    return { ok: res.ok, status: res.status, data: data && typeof data === "object" ? data : null };
  }

  function problemText(data, status) {
    if (data && (data.detail || data.title)) return String(data.detail || data.title);
    return status
      ? `Something went wrong (error ${status}). Please try again.`
      : "Something went wrong. Please try again.";
  }

  /** Follows redirect_to; anything but an http(s) URL falls back to the account page. */
  function go(target) {
    let url = null;
    try { url = new URL(target, location.href); } catch (e) { /* fall back */ }
    if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) url = new URL("/account", location.href);
    location.assign(url.href);
  }

  function promptError(err, creating) {
    switch (err && err.name) {
      case "NotAllowedError":
      case "AbortError":
        return creating
          ? ["Creating the passkey was cancelled. You can try again.", "info"]
          : ["Sign-in was cancelled. You can try again.", "info"];
      case "InvalidStateError":
        return creating
          ? ["This device or security key already has a passkey for this account. Try another one, or sign in with it.", "error"]
          : ["The passkey prompt could not start. Please try again.", "error"];
      case "SecurityError":
        return ["Passkeys cannot be used on this address. Open Latchkey through its usual address and try again.", "error"];
      case "NotSupportedError":
        return ["This device cannot create a passkey Latchkey accepts. Try another device or security key.", "error"];
      default:
        return ["The passkey prompt failed. Please try again.", "error"];
    }
  }

  const supported = () => !!(PKC && navigator.credentials && window.isSecureContext);
  const unsupportedText = "This browser cannot use passkeys here. Try a current version of Chrome, Edge, Firefox or Safari.";

  function signalUnknown(problem, options) {
    if (!problem || problem.code !== "unknown_credential" || !problem.credential_id) return;
    if (typeof PKC.signalUnknownCredential !== "function") return;
    const rpId = (options && options.publicKey && options.publicKey.rpId) || location.hostname;
    try {
      Promise.resolve(PKC.signalUnknownCredential({ rpId, credentialId: problem.credential_id })).catch(() => {});
    } catch (e) { /* best effort */ }
  }

  // ---- sign-in and sign-up ceremonies -------------------------------------------------------

  /**
   * One page's ceremony: `prompt(options, signal?)` asks the authenticator; the answer is posted
   * to `finishUrl`. A problem with `retry` replaces the options; without it the ceremony state is
   * gone, so the page offers "Start again" (and the button does the same).
   */
  function setupCeremony(root, { button, optionsId, finishUrl, creating, prompt, conditional }) {
    const status = statusRegion(root.querySelector("[data-status]"));
    const restart = root.dataset.restart || location.href;
    let options = readJSON(optionsId);
    let busy = false;
    let exhausted = false;
    let autofill = null; // AbortController of the pending conditional request

    if (!button) return;
    if (!supported()) {
      status.show(unsupportedText, "error");
      button.disabled = true;
      return;
    }
    if (!options || !options.publicKey) {
      status.show("This page is missing its passkey options.", "error", { href: restart, text: "Start again" });
      button.disabled = true;
      return;
    }

    async function finish(cred) {
      status.show(creating ? "Saving your passkey…" : "Checking your passkey…");
      const { ok, status: code, data } = await postJSON(finishUrl, credentialJSON(cred));
      if (ok && data && data.verified) {
        status.show(creating ? "Passkey saved. One moment…" : "Signed in. One moment…", "ok");
        go(data.redirect_to || "/account");
        return true;
      }
      if (!creating) signalUnknown(data, options);
      if (data && data.retry && data.retry.publicKey) {
        options = data.retry;
        status.show(problemText(data, code), "error");
      } else {
        exhausted = true;
        status.show(problemText(data, code), "error", { href: restart, text: "Start again" });
      }
      return false;
    }

    async function run(getCredential) {
      // A disabled button loses focus; give it back afterwards so keyboard users stay in place.
      const refocus = document.activeElement === button;
      busy = true;
      button.disabled = true;
      let leaving = false;
      try {
        const cred = await getCredential();
        leaving = await finish(cred);
      } catch (err) {
        const [text, tone] = promptError(err, creating);
        status.show(text, tone);
      } finally {
        busy = false;
        if (!leaving) {
          button.disabled = false;
          if (refocus) button.focus();
          startAutofill();
        }
      }
    }

    async function startAutofill() {
      if (!conditional || busy || exhausted || autofill) return;
      if (typeof PKC.isConditionalMediationAvailable !== "function") return;
      let available = false;
      try { available = await PKC.isConditionalMediationAvailable(); } catch (e) { /* no autofill */ }
      if (!available || busy || exhausted || autofill) return;
      const controller = new AbortController();
      autofill = controller;
      let cred;
      try {
        cred = await prompt(options, { mediation: "conditional", signal: controller.signal });
      } catch (e) {
        if (autofill === controller) autofill = null;
        return; // aborted for the button, or declined: the buttons still work
      }
      if (autofill !== controller) return;
      autofill = null;
      status.clear();
      run(() => Promise.resolve(cred));
    }

    button.addEventListener("click", () => {
      if (busy) return;
      if (exhausted) {
        location.assign(restart);
        return;
      }
      if (autofill) {
        autofill.abort();
        autofill = null;
      }
      status.show("Follow the prompt from your browser or device…");
      run(() => prompt(options, {}));
    });

    startAutofill();
  }

  function initLogin(root) {
    setupCeremony(root, {
      button: root.querySelector('[data-action="passkey-signin"]'),
      optionsId: "passkey-options",
      finishUrl: LOGIN_FINISH,
      creating: false,
      conditional: root.dataset.discoverable === "true",
      prompt: (options, extra) => navigator.credentials.get({ publicKey: requestOptions(options.publicKey), ...extra }),
    });
  }

  function initSignup(root) {
    setupCeremony(root, {
      button: root.querySelector('[data-action="passkey-create"]'),
      optionsId: "passkey-creation-options",
      finishUrl: root.dataset.finish,
      creating: true,
      conditional: false,
      prompt: (options) => navigator.credentials.create({ publicKey: creationOptions(options.publicKey) }),
    });
  }

  // ---- account page -------------------------------------------------------------------------

  /** "Add a passkey": fresh creation options on every press, so a cancel needs no restart. */
  function initAddPasskey(button) {
    const status = statusRegion(button.parentElement.querySelector("[data-status]"));
    if (!supported()) {
      status.show(unsupportedText, "error");
      button.disabled = true;
      return;
    }
    button.addEventListener("click", async () => {
      const refocus = document.activeElement === button;
      button.disabled = true;
      let leaving = false;
      try {
        status.show("Preparing…");
        const start = await postJSON(button.dataset.options, {});
        if (!start.ok || !start.data || !start.data.publicKey) {
          status.show(problemText(start.data, start.status), "error");
          return;
        }
        status.show("Follow the prompt from your browser or device…");
        let cred;
        try {
          cred = await navigator.credentials.create({ publicKey: creationOptions(start.data.publicKey) });
        } catch (err) {
          const [text, tone] = promptError(err, true);
          status.show(text, tone);
          return;
        }
        status.show("Saving your passkey…");
        const done = await postJSON(button.dataset.finish, credentialJSON(cred));
        if (done.ok && done.data && done.data.verified) {
          leaving = true;
          status.show("Passkey added.", "ok");
          go(done.data.redirect_to || "/account");
        } else {
          status.show(problemText(done.data, done.status), "error");
        }
      } finally {
        if (!leaving) {
          button.disabled = false;
          if (refocus) button.focus();
        }
      }
    });
  }

  function signalAcceptedCredentials() {
    const data = readJSON("passkey-signal");
    if (!data || !PKC || typeof PKC.signalAllAcceptedCredentials !== "function") return;
    try {
      Promise.resolve(PKC.signalAllAcceptedCredentials(data)).catch(() => {});
    } catch (e) { /* best effort */ }
  }

  /** Disclosure buttons (aria-expanded + aria-controls) for the rename and delete forms. */
  function initReveal(button) {
    const panel = document.getElementById(button.getAttribute("aria-controls"));
    if (!panel) return;
    const setOpen = (open) => {
      button.setAttribute("aria-expanded", String(open));
      panel.hidden = !open;
    };
    const close = () => {
      setOpen(false);
      button.focus();
    };
    button.addEventListener("click", () => {
      const open = button.getAttribute("aria-expanded") !== "true";
      if (open) {
        // One open form per passkey: opening Delete closes Rename and the other way round.
        const scope = button.closest("li") || document;
        for (const other of scope.querySelectorAll('[data-reveal][aria-expanded="true"]')) {
          if (other !== button) other.click();
        }
      }
      setOpen(open);
      if (open) {
        const target = panel.querySelector('input:not([type="hidden"])') || panel.querySelector('button[type="submit"]');
        if (target) {
          target.focus();
          if (typeof target.select === "function") target.select();
        }
      }
    });
    for (const dismiss of panel.querySelectorAll("[data-dismiss]")) dismiss.addEventListener("click", close);
    panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        close();
      }
    });
  }

  // ---- start --------------------------------------------------------------------------------

  function init() {
    for (const root of document.querySelectorAll('[data-ceremony="login"]')) initLogin(root);
    for (const root of document.querySelectorAll('[data-ceremony="signup"]')) initSignup(root);
    for (const button of document.querySelectorAll('[data-ceremony="add-passkey"]')) initAddPasskey(button);
    for (const button of document.querySelectorAll("[data-reveal]")) initReveal(button);
    // Form Post Response Mode: hand the authorization response to the application at once.
    for (const form of document.querySelectorAll("form[data-autosubmit]")) form.submit();
    signalAcceptedCredentials();

    // Ceremony options are single-use: a page restored from the back/forward cache reloads.
    window.addEventListener("pageshow", (e) => {
      if (e.persisted && document.querySelector("[data-ceremony]")) location.reload();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
