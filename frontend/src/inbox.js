/*
 * The Sales Inbox keyboard, Gmail style: j / k move the selection through
 * the conversation list, o or Enter opens it, ? shows the help. Single-key
 * shortcuts never fire while typing in a field. (g i / g t / u / "/" are
 * data-hotkey attributes handled by @github/hotkey in main.js.)
 *
 * "Show images" reloads one message's frame with remote images allowed
 * (still through our image proxy, still without script).
 */

function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  const name = target.nodeName.toLowerCase();
  return name === "input" || name === "textarea" || name === "select" || target.isContentEditable;
}

function rows() {
  return Array.from(document.querySelectorAll("#conversation-list .conversation"));
}

function selectedIndex(list) {
  let index = list.findIndex((row) => row.classList.contains("is-selected"));
  if (index < 0) index = list.findIndex((row) => row.classList.contains("is-open"));
  return index;
}

function select(list, index) {
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
  const row = list[selectedIndex(list)];
  const link = row && row.querySelector(".conversation-link");
  if (link) link.click();
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event.target) || !document.querySelector("[data-testid='inbox']")) return;
  const list = rows();
  if (event.key === "j" || event.key === "k") {
    const at = selectedIndex(list);
    select(list, at < 0 ? 0 : at + (event.key === "j" ? 1 : -1));
    event.preventDefault();
  } else if (event.key === "o" || (event.key === "Enter" && !(event.target instanceof HTMLAnchorElement))) {
    open(list);
    event.preventDefault();
  } else if (["e", "#", "I", "U", "r", "a", "f"].includes(event.key)) {
    const key = { e: "e", "#": "#", I: "Shift+I", U: "Shift+U", r: "r", a: "a", f: "f" }[event.key];
    const button = document.querySelector(`[data-action-key="${key}"]`);
    if (button) button.click();
    event.preventDefault();
  } else if (event.key === "u") {
    const back = document.querySelector("[data-testid='back-to-list']");
    if (back) back.click();
    event.preventDefault();
  } else if (event.key === "?") {
    const help = document.getElementById("shortcuts");
    if (help && !help.open) help.showModal();
    event.preventDefault();
  }
});

// After a conversation opens, move focus into the reading pane for screen readers.
document.addEventListener("htmx:afterSwap", (event) => {
  const target = event.detail && event.detail.target;
  if (target && target.id === "reading-pane") {
    target.focus({ preventScroll: true });
    const id = target.querySelector("[data-testid='conversation-view']")?.getAttribute("data-id");
    rows().forEach((row) => {
      row.classList.toggle("is-open", row.getAttribute("data-id") === id);
      if (row.getAttribute("data-id") === id) row.classList.remove("is-unread");
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

// Send later: the server needs the browser's offset to read a datetime-local value.
function fillTimezoneOffsets() {
  document.querySelectorAll("input[data-timezone-offset]").forEach((input) => {
    input.value = String(new Date().getTimezoneOffset());
  });
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", fillTimezoneOffsets);
} else {
  fillTimezoneOffsets();
}
