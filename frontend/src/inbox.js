/*
 * The Sales Inbox keyboard, Gmail style. Single keys never fire while typing
 * in a field (Esc leaves the field; Ctrl/⌘+Enter sends from compose).
 *
 *   j / k        move the cursor through the conversation list
 *   o, Enter     open the conversation under the cursor
 *   u            back to the list
 *   x            choose the conversation under the cursor (bulk toolbar)
 *   e / #        archive / delete: the chosen ones, else the one under the
 *                cursor, else the open one; the rows go at once and a toast
 *                offers Undo
 *   z            undo the last archive or delete, on the server too
 *   Shift+I / U  read / unread (the chosen ones, else the open one)
 *   r / a / f    reply / reply all / forward (buttons in the reading pane)
 *   Esc          clear the chosen ones, else close the conversation
 *   ?            the help
 * (c, /, g i, g t, g d ... are data-hotkey attributes handled by
 * @github/hotkey in main.js.)
 *
 * Undo: archive and delete are done on the server at once (POST
 * /inbox/{folder}/bulk); undo is the opposite action (unarchive, restore),
 * which the server can do at once because it records where a move landed.
 * Undo is offered in the Inbox only, where "back" means one place: from
 * elsewhere Restore would put mail in the Inbox, not where it came from.
 *
 * "Show images" reloads one message's frame with remote images allowed
 * (still through our image proxy, still without script).
 */

import htmx from "htmx.org";

const UNDO = { archive: "unarchive", trash: "restore" };
const TOAST_SECONDS = 10;

const chosen = new Set(); // ids ticked with x or a click, kept across live list refreshes
const gone = new Set(); // ids removed here whose server answer may still be on its way
let lastUndoable = null; // { ids, undo, done: Promise<boolean> }
let toastTimer = null;

const NOT_TYPED = new Set(["checkbox", "radio", "button", "submit", "reset", "file", "range", "color"]);

function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target instanceof HTMLInputElement) return !NOT_TYPED.has(target.type);
  const name = target.nodeName.toLowerCase();
  return name === "textarea" || name === "select" || target.isContentEditable;
}

function inboxElement() {
  return document.querySelector("[data-testid='inbox']");
}

function folder() {
  return inboxElement()?.getAttribute("data-folder") || "inbox";
}

function rows() {
  return Array.from(document.querySelectorAll("#conversation-list .conversation[data-id]:not([hidden])"));
}

function rowFor(id) {
  return document.querySelector(`#conversation-list .conversation[data-id="${CSS.escape(id)}"]`);
}

function openId() {
  return document.querySelector("#reading-pane [data-testid='conversation-view']")?.getAttribute("data-id") || null;
}

function cursorIndex(list) {
  let index = list.findIndex((row) => row.classList.contains("is-selected"));
  if (index < 0) index = list.findIndex((row) => row.classList.contains("is-open"));
  return index;
}

function moveCursor(list, index) {
  list.forEach((row) => row.classList.remove("is-selected"));
  const row = list[Math.max(0, Math.min(index, list.length - 1))];
  if (!row) return;
  row.classList.add("is-selected");
  const link = row.querySelector(".conversation-link");
  if (link) {
    link.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }
}

function open(list) {
  const row = list[cursorIndex(list)];
  const link = row && row.querySelector(".conversation-link");
  if (link) link.click();
}

/* Choosing (x) ------------------------------------------------------------ */

function showChosen() {
  document.querySelectorAll("#conversation-list .c-check").forEach((box) => {
    box.checked = chosen.has(box.value);
    box.closest(".conversation")?.classList.toggle("is-chosen", box.checked);
  });
  const count = document.querySelector("[data-bulk-count]");
  if (count) count.textContent = String(chosen.size);
}

function toggleChosen() {
  const list = rows();
  let at = cursorIndex(list);
  if (at < 0 && list.length) {
    at = 0;
    moveCursor(list, 0);
  }
  const id = list[at]?.getAttribute("data-id");
  if (!id) return;
  if (chosen.has(id)) chosen.delete(id);
  else chosen.add(id);
  showChosen();
}

function clearChosen() {
  chosen.clear();
  showChosen();
}

document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.classList.contains("c-check")) return;
  if (box.checked) chosen.add(box.value);
  else chosen.delete(box.value);
  showChosen();
});

/* Acting on the server ------------------------------------------------------ */

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") || "";
}

async function post(action, ids, extra = {}) {
  const body = new URLSearchParams({ action, ...extra });
  ids.forEach((id) => body.append("ids", id));
  try {
    const response = await fetch(`/inbox/${encodeURIComponent(folder())}/bulk`, {
      method: "POST",
      headers: { Accept: "application/json", "x-csrftoken": csrfToken() },
      body,
      credentials: "same-origin",
    });
    if (response.ok) return await response.json();
  } catch {
    // the network went away: said below, and the rows come back
  }
  return { ok: false, message: toastWords("failed") };
}

function refreshList() {
  const source = document.getElementById("list-refresh");
  const url = source?.getAttribute("hx-get");
  if (url) htmx.ajax("GET", url, { target: "#conversation-list", swap: "outerHTML" });
}

function toastWords(name) {
  return document.getElementById("toast")?.getAttribute(`data-words-${name}`)
    || document.getElementById("toast")?.getAttribute(`data-${name}`) || "";
}

function toast(text, undoable) {
  const box = document.getElementById("toast");
  if (!box) return;
  box.querySelector("[data-toast-text]").textContent = text;
  box.querySelector("[data-undo]").hidden = !undoable;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
    lastUndoable = null;
  }, TOAST_SECONDS * 1000);
}

function hide(ids) {
  ids.forEach((id) => {
    const row = rowFor(id);
    if (row) row.hidden = true;
  });
}

function show(ids) {
  ids.forEach((id) => {
    const row = rowFor(id);
    if (row) row.hidden = false;
  });
}

function closeReadingPane() {
  const pane = document.getElementById("reading-pane");
  const empty = document.getElementById("reading-empty");
  if (!pane || !empty) return;
  pane.replaceChildren(empty.content.cloneNode(true));
  history.replaceState(history.state, "", `/inbox/${encodeURIComponent(folder())}${location.search}`);
}

function targets() {
  if (chosen.size) return Array.from(chosen);
  const list = rows();
  const cursor = list[cursorIndex(list)]?.getAttribute("data-id");
  if (cursor) return [cursor];
  const opened = openId();
  return opened ? [opened] : [];
}

/* Archive or delete: the rows go at once; the server follows; Undo is offered. */
async function remove(action, ids) {
  if (!ids.length) return;
  const undo = folder() === "inbox" ? UNDO[action] : null;
  const list = rows();
  const after = list.slice(list.findIndex((row) => ids.includes(row.getAttribute("data-id")))).find(
    (row) => !ids.includes(row.getAttribute("data-id")),
  );
  ids.forEach((id) => {
    gone.add(id);
    chosen.delete(id);
  });
  hide(ids);
  showChosen();
  if (ids.includes(openId())) closeReadingPane();
  if (after) moveCursor(rows(), rows().indexOf(after));
  toast(toastWords(action), Boolean(undo));
  const done = post(action, ids).then((answer) => {
    // Done on the server (its lists no longer hold them) or refused (they are back): either way not ours to hide.
    ids.forEach((id) => gone.delete(id));
    if (!answer.ok) {
      show(ids);
      toast(answer.message, false);
      lastUndoable = null;
    }
    return answer.ok;
  });
  lastUndoable = undo ? { ids, undo, done } : null;
  await done;
}

async function undoLast() {
  const last = lastUndoable;
  if (!last) return;
  lastUndoable = null;
  if (!(await last.done)) return; // it never happened: nothing to undo
  show(last.ids);
  const answer = await post(last.undo, last.ids);
  toast(answer.ok ? toastWords(last.undo) : answer.message, false);
  refreshList();
}

async function markRead(action, extra = {}) {
  const ids = Array.from(chosen);
  const answer = await post(action, ids, extra);
  toast(answer.message, false);
  if (answer.ok) {
    clearChosen();
    refreshList();
  }
}

// The buttons (reading pane, bulk toolbar) go the same way as the keys.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !inboxElement()) return;
  const action = form.getAttribute("data-undoable");
  if (action) {
    event.preventDefault();
    remove(action, [form.getAttribute("data-id")]);
    return;
  }
  const button = event.submitter;
  if (form.id === "bulk-form" && button && chosen.size) {
    event.preventDefault();
    const name = button.getAttribute("value");
    if (button.hasAttribute("data-undoable")) remove(name, Array.from(chosen));
    else if (button.hasAttribute("data-bulk-label")) markRead(name, { label: form.elements.namedItem("label")?.value || "" });
    else markRead(name);
  }
});

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (target?.closest("[data-undo]")) undoLast();
  else if (target?.closest("[data-bulk-clear]")) clearChosen();
});

// A live refresh or a page of the list replaces the rows: keep what was chosen and what went.
document.addEventListener("htmx:load", (event) => {
  const element = event.detail && event.detail.elt;
  if (element instanceof Element && element.id === "conversation-list") {
    for (const id of chosen) if (!rowFor(id)) chosen.delete(id);
    hide(Array.from(gone));
    showChosen();
  }
});

/* The keys ---------------------------------------------------------------- */

function sendFromCompose(event) {
  const form = event.target instanceof Element ? event.target.closest("form[data-testid='compose-form']") : null;
  if (!form) return false;
  event.preventDefault();
  form.requestSubmit(form.querySelector("[data-send]") || undefined);
  return true;
}

function escape(event) {
  if (typing(event.target)) {
    event.target.blur();
    return;
  }
  if (!inboxElement() || document.querySelector("dialog[open]")) return;
  if (chosen.size) clearChosen();
  else document.querySelector("[data-testid='back-to-list']")?.click();
}

const SEQUENCE_MS = 1500; // @github/hotkey's own wait for the second key of a sequence
let afterG = 0;

const BUTTON_KEYS = { I: "Shift+I", U: "Shift+U", r: "r", a: "a", f: "f" };

function inboxKey(event) {
  const list = rows();
  const key = event.key;
  if (key === "j" || key === "k") {
    const at = cursorIndex(list);
    moveCursor(list, at < 0 ? 0 : at + (key === "j" ? 1 : -1));
  } else if (key === "o" || (key === "Enter" && !event.target.closest?.("a, button"))) {
    open(list);
  } else if (key === "x") {
    toggleChosen();
  } else if (key === "e") {
    if (folder() === "inbox") remove("archive", targets());
  } else if (key === "#") {
    if (folder() !== "outbox") remove("trash", targets());
  } else if (key === "z") {
    undoLast();
  } else if ((key === "I" || key === "U") && chosen.size) {
    markRead(key === "I" ? "read" : "unread");
  } else if (key in BUTTON_KEYS) {
    document.querySelector(`[data-action-key="${BUTTON_KEYS[key]}"]`)?.click();
  } else if (key === "u") {
    document.querySelector("[data-testid='back-to-list']")?.click();
  } else if (key === "?") {
    const help = document.getElementById("shortcuts");
    if (help && !help.open) help.showModal();
  } else {
    return;
  }
  event.preventDefault();
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.altKey) return;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    sendFromCompose(event);
    return;
  }
  if (event.key === "Escape") {
    escape(event);
    return;
  }
  if (event.ctrlKey || event.metaKey || typing(event.target) || !inboxElement()) return;
  // "g" starts a two-key shortcut (g i, g a, g #) that @github/hotkey finishes: the
  // second key is not also an action here (g a is not "reply all", g # not "delete").
  if (event.key === "g") {
    afterG = Date.now();
    return;
  }
  if (Date.now() - afterG < SEQUENCE_MS) {
    afterG = 0;
    return;
  }
  inboxKey(event);
});

// After a conversation opens, move focus into the reading pane for screen readers,
// and the cursor to its row (so e and # act on what is being read).
document.addEventListener("htmx:afterSwap", (event) => {
  const target = event.detail && event.detail.target;
  if (target && target.id === "reading-pane") {
    target.focus({ preventScroll: true });
    const id = openId();
    rows().forEach((row) => {
      const here = row.getAttribute("data-id") === id;
      row.classList.toggle("is-open", here);
      row.classList.toggle("is-selected", here);
      if (here) row.classList.remove("is-unread");
    });
  }
});

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-show-images]") : null;
  if (!button) return;
  const frame = button.closest(".m-html")?.querySelector("iframe.message-frame");
  if (frame) frame.src = button.getAttribute("data-show-images");
  button.disabled = true;
});

// Send later: the server needs the browser's UTC offset to read a datetime-local value, and the offset
// that holds on the chosen date (across a daylight-saving change it differs from today's), so it is
// worked out again whenever the chosen time changes and just before the form goes.
function offsetFor(form) {
  const chosen = form?.querySelector('input[name="send_at"]')?.value;
  const when = chosen ? new Date(chosen) : new Date(); // "YYYY-MM-DDTHH:MM" is read as local time
  return String((Number.isNaN(when.getTime()) ? new Date() : when).getTimezoneOffset());
}
function fillTimezoneOffsets() {
  document.querySelectorAll("input[data-timezone-offset]").forEach((input) => {
    input.value = offsetFor(input.form);
  });
}
document.addEventListener("change", (event) => {
  if (event.target.matches?.('input[name="send_at"]')) fillTimezoneOffsets();
});
document.addEventListener("submit", fillTimezoneOffsets, true);
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", fillTimezoneOffsets);
} else {
  fillTimezoneOffsets();
}
