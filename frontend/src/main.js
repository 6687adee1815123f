/*
 * salesinbox front-end entry point (bundled by esbuild into static/dist/app.js,
 * loaded with `defer`; the imported stylesheet becomes static/dist/app.css).
 *
 * Deliberately tiny: the pages are server-rendered and htmx does the rest.
 *   1. styles
 *   2. htmx (+ window.htmx for inline attributes and other extensions)
 *   3. the SSE extension (registers itself as hx-ext="sse")
 *   4. CSRF header on every htmx request
 *   5. keyboard shortcuts for every [data-hotkey] element, kept in sync with swaps
 *   6. compose: rich text editor and draft autosave (compose.js)
 */

import "./styles.css";
import htmx from "htmx.org";
// The ESM build of the extension imports htmx.org itself and calls
// htmx.defineExtension("sse", ...) on import; nothing else to do.
import "htmx-ext-sse";
import { install, uninstall } from "@github/hotkey";
import "./inbox.js";
import "./compose.js";

window.htmx = htmx;

// htmx normally injects an inline <style> for .htmx-indicator; a strict
// Content-Security-Policy (style-src 'self') would block it, and styles.css
// already has those rules. This runs before DOMContentLoaded (defer), which
// is when htmx reads the setting.
htmx.config.includeIndicatorStyles = false;

/* CSRF ------------------------------------------------------------------ */

// The server puts its token in <meta name="csrf-token" content="...">.
// It is read on every request, so a page swapped in by hx-boost that carries
// a fresh token is picked up automatically.
function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : null;
}

function isSameOrigin(path) {
  try {
    return new URL(path, window.location.href).origin === window.location.origin;
  } catch {
    return false;
  }
}

document.addEventListener("htmx:configRequest", (event) => {
  const token = csrfToken();
  // htmx 2 already refuses cross-origin requests by default
  // (htmx.config.selfRequestsOnly); the check here keeps the token
  // from leaking even if that setting is ever relaxed.
  if (token && isSameOrigin(event.detail.path)) {
    event.detail.headers["x-csrftoken"] = token;
  }
});

/* Hotkeys --------------------------------------------------------------- */

// element -> the data-hotkey value it was installed with. install() is not
// idempotent (a second call registers the element twice), so we track what
// we've done and only (re)install when something is new or changed.
const installed = new Map();

function forget(el) {
  if (installed.has(el)) {
    uninstall(el);
    installed.delete(el);
  }
}

function installHotkeys(root) {
  // Drop elements that have left the document (swapped out, history restore),
  // so a shortcut never "clicks" something the user can no longer see.
  for (const el of installed.keys()) {
    if (!el.isConnected) forget(el);
  }

  const scope = root && root.querySelectorAll ? root : document;
  const found = Array.from(scope.querySelectorAll("[data-hotkey]"));
  if (scope instanceof Element && scope.hasAttribute("data-hotkey")) {
    found.push(scope);
  }

  for (const el of found) {
    const keys = el.getAttribute("data-hotkey");
    if (installed.get(el) === keys) continue;
    forget(el);
    if (keys) {
      install(el, keys);
      installed.set(el, keys);
    }
  }
}

// htmx fires htmx:load once for <body> when it initialises and then for
// every piece of content it swaps in; onLoad covers both cases.
htmx.onLoad(installHotkeys);

// Belt and braces for the first paint, in case htmx initialised before this
// listener existed. Harmless if it runs twice (see `installed`).
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => installHotkeys(document));
} else {
  installHotkeys(document);
}

// Unregister shortcuts on content htmx is about to remove.
document.addEventListener("htmx:beforeCleanupElement", (event) => {
  if (event.target instanceof Element) forget(event.target);
});

/* Confirmations ------------------------------------------------------------ */

// A destructive button carries data-confirm="question"; the form is only
// submitted when the user agrees. Without JavaScript the form submits as is.
document.addEventListener("submit", (event) => {
  const submitter = event.submitter;
  const question = submitter && submitter.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
