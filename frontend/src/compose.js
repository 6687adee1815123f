/*
 * Compose: rich text (TipTap) and drafts saved as you type.
 *
 * Without JavaScript the form still works: a plain-text textarea, "Save draft"
 * posts to /drafts, "Send" to /compose. With it:
 *   1. rich text: a TipTap editor replaces the textarea (a toggle goes back to
 *      plain text); its HTML goes in the hidden field "html" and its text in
 *      "text", with format=html. The server cleans the HTML (nh3) anyway.
 *   2. autosave: a few seconds after typing stops the form is posted to
 *      /drafts (JSON); one save at a time, the latest text always wins; on a
 *      failure it keeps the text and tries again with growing pauses. The
 *      page's address becomes /compose?draft=<id>, so a reload reopens it.
 *   3. address autocomplete for every address of a To / Cc / Bcc field, not
 *      only the first: the field gets a datalist of its own whose options are
 *      what is typed before the last comma followed by a matching address
 *      (the browser's own suggestion list, so keyboard and screen readers work
 *      as with any datalist).
 *
 * TipTap's stylesheet is not injected (CSP: style-src 'self'); styles.css
 * section 17 has the rules ProseMirror needs.
 */

import { Editor } from "@tiptap/core";
import StarterKit from "@tiptap/starter-kit";

const QUIET_MS = 2500; // autosave this long after the last keystroke
const MAX_RETRY_MS = 30000;

const COMMANDS = {
  bold: (c) => c.toggleBold(),
  italic: (c) => c.toggleItalic(),
  underline: (c) => c.toggleUnderline(),
  strike: (c) => c.toggleStrike(),
  bulletList: (c) => c.toggleBulletList(),
  orderedList: (c) => c.toggleOrderedList(),
  blockquote: (c) => c.toggleBlockquote(),
};

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function textAsHtml(text) {
  return text
    .replace(/\r\n/g, "\n")
    .split("\n\n")
    .map((block) => `<p>${escapeHtml(block).replace(/\n/g, "<br>")}</p>`)
    .join("");
}

// Pasted HTML is parsed by ProseMirror in a document of its own, where an <img onerror> could still be
// tried (the CSP blocks it, and the server cleans the HTML again): drop what the editor cannot hold
// and every event handler first, in a <template> (its content is inert: nothing loads or runs).
const UNWANTED = "script, style, iframe, object, embed, img, svg, math, form, input, button, link, meta, base, template";

function harmlessPaste(html) {
  const inert = document.createElement("template");
  inert.innerHTML = html;
  for (const el of inert.content.querySelectorAll(UNWANTED)) el.remove();
  for (const el of inert.content.querySelectorAll("*")) {
    for (const attribute of Array.from(el.attributes)) {
      if (!["href", "dir", "start"].includes(attribute.name)) el.removeAttribute(attribute.name);
    }
  }
  return inert.innerHTML;
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

function setUp(form) {
  const textArea = form.querySelector("#f-text");
  const htmlField = form.querySelector("[data-html-source]");
  const format = form.querySelector("[data-format]");
  const mount = form.querySelector("[data-editor]");
  const toolbar = form.querySelector("[data-editor-toolbar]");
  const switcher = form.querySelector("[data-compose-format]");
  const draftId = form.querySelector("[data-draft-id]");
  const status = form.querySelector("[data-draft-status]");
  let editor = null;

  /* ---- rich text ---- */

  function copyOut() {
    if (editor && format.value === "html") {
      htmlField.value = editor.getHTML();
      textArea.value = editor.getText({ blockSeparator: "\n\n" });
    }
  }

  function refreshToolbar() {
    for (const button of toolbar.querySelectorAll("[data-command]")) {
      const name = button.getAttribute("data-command");
      button.setAttribute("aria-pressed", String(Boolean(editor && editor.isActive(name))));
    }
  }

  function startEditor(html) {
    editor = new Editor({
      element: mount,
      extensions: [StarterKit.configure({ link: { openOnClick: false, autolink: true } })],
      content: html,
      // TipTap's own option: the editor and every node in it (paragraph, heading, list, list item, quote, code,
      // even a line break) carry dir="auto", on screen and in the HTML it gives, so an Arabic paragraph reads
      // from the right beside an English one, here and where the mail is read. A dir pasted in or saved in a
      // draft (ltr, rtl, auto) is kept.
      textDirection: "auto",
      injectCSS: false,
      editorProps: {
        transformPastedHTML: harmlessPaste,
        // Ctrl/⌘+Enter sends, as from the other fields (the editor would take it as a line break).
        handleKeyDown: (_view, event) => {
          if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return false;
          form.requestSubmit(form.querySelector("[data-send]") || undefined);
          return true;
        },
        attributes: {
          role: "textbox",
          "aria-multiline": "true",
          "aria-label": mount.getAttribute("data-label") || "",
          "data-testid": "rich-editor-content",
        },
      },
      onUpdate: () => {
        copyOut();
        changed();
      },
      onSelectionUpdate: refreshToolbar,
      onTransaction: refreshToolbar,
    });
  }

  function useFormat(which) {
    if (which === "html") {
      const html = format.value === "text" ? textAsHtml(textArea.value) : htmlField.value;
      if (editor) editor.commands.setContent(html, { emitUpdate: false });
      else startEditor(html);
      format.value = "html";
      copyOut();
    } else {
      copyOut();
      format.value = "text";
    }
    const rich = which === "html";
    mount.hidden = !rich;
    toolbar.hidden = !rich;
    textArea.hidden = rich;
    for (const button of switcher.querySelectorAll("[data-format-choice]")) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-format-choice") === which));
    }
  }

  // A toolbar button must not take the focus from the text: what is typed next belongs in the editor.
  toolbar.addEventListener("mousedown", (event) => {
    if (event.target.closest("[data-command]")) event.preventDefault();
  });
  toolbar.addEventListener("click", (event) => {
    const button = event.target.closest("[data-command]");
    if (!button || !editor) return;
    const name = button.getAttribute("data-command");
    if (name === "link") {
      const previous = editor.getAttributes("link").href || "https://";
      const href = window.prompt(button.getAttribute("data-prompt") || "", previous);
      if (href === null) return;
      const chain = editor.chain().focus().extendMarkRange("link");
      (href.trim() ? chain.setLink({ href: href.trim() }) : chain.unsetLink()).run();
      return;
    }
    COMMANDS[name](editor.chain().focus()).run();
  });

  switcher.addEventListener("click", (event) => {
    const button = event.target.closest("[data-format-choice]");
    if (button) {
      useFormat(button.getAttribute("data-format-choice"));
      changed();
    }
  });

  switcher.hidden = false;
  // A draft keeps the format it was saved in (its HTML is in the hidden field); anything new starts as rich text.
  const savedRich = format.getAttribute("data-initial") === "html";
  if (savedRich) format.value = "html";
  useFormat(draftId.value && !savedRich ? "text" : "html");

  /* ---- drafts ---- */

  let timer = null;
  let saving = false;
  let dirty = false;
  let failures = 0;
  let submitted = false;

  function say(text, warning = false) {
    status.textContent = text;
    status.classList.toggle("is-warning", warning);
  }

  function later(ms) {
    clearTimeout(timer);
    timer = setTimeout(save, ms);
  }

  function changed() {
    if (submitted) return;
    dirty = true;
    later(QUIET_MS);
  }

  function worthSaving() {
    const typed = ["to", "cc", "bcc", "subject"].some((name) => (form.elements[name].value || "").trim());
    return typed || textArea.value.trim() !== "" || Boolean(draftId.value);
  }

  async function save() {
    if (submitted || !dirty) return;
    if (saving) return later(500); // one at a time: this text goes when the last one is done
    if (!worthSaving()) return;
    copyOut();
    dirty = false;
    saving = true;
    say(status.getAttribute("data-saving"));
    const body = new FormData(form);
    body.delete("attachments");
    try {
      const answer = await fetch("/drafts", {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { accept: "application/json", "x-csrftoken": csrfToken() },
      });
      if (answer.status === 404) {
        submitted = true; // sent or discarded in another tab: saving again would bring it back
        say(status.getAttribute("data-gone"), true);
        return;
      }
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      const saved = await answer.json();
      draftId.value = saved.id;
      if (window.location.pathname + window.location.search !== saved.url) {
        window.history.replaceState(null, "", saved.url);
      }
      failures = 0;
      say(saved.status, !saved.on_server);
      form.dataset.savedVersion = String(saved.version);
    } catch {
      dirty = true; // the text is still here; try again, less often each time
      failures += 1;
      say(status.getAttribute("data-failed"), true);
      later(Math.min(MAX_RETRY_MS, 2000 * 2 ** failures));
    } finally {
      saving = false;
    }
  }

  form.addEventListener("input", (event) => {
    if (event.target.name !== "attachments" && event.target !== htmlField) changed();
  });
  form.addEventListener("change", (event) => {
    if (event.target.name === "account_id") changed();
  });

  form.addEventListener("submit", (event) => {
    copyOut();
    const submitter = event.submitter;
    if (submitter && submitter.hasAttribute("data-save-draft")) {
      event.preventDefault(); // "Save draft": now, without leaving the page
      dirty = true;
      clearTimeout(timer);
      save();
    }
  });
  // On window, after every other submit listener (a data-confirm question may still cancel it):
  // the form is really leaving for Send or Discard, so no more saves and no "leave the page?" question.
  window.addEventListener("submit", (event) => {
    if (event.target === form && !event.defaultPrevented) {
      submitted = true;
      clearTimeout(timer);
    }
  });

  window.addEventListener("beforeunload", (event) => {
    if (!submitted && (dirty || saving) && worthSaving()) event.preventDefault();
  });
}

const MOST_SUGGESTIONS = 20;

function setUpAddressSuggestions(form) {
  for (const input of form.querySelectorAll('input[list="contact-addresses"]')) {
    const source = document.getElementById("contact-addresses");
    if (!source) return;
    const known = Array.from(source.options, (option) => option.value);
    const own = document.createElement("datalist");
    own.id = `contact-addresses-${input.name}`;
    input.after(own);
    input.setAttribute("list", own.id);
    const suggest = () => {
      const value = input.value;
      const cut = value.lastIndexOf(",");
      const before = cut < 0 ? "" : `${value.slice(0, cut + 1).trimEnd()} `;
      const typed = value.slice(cut + 1).trim().toLowerCase();
      const chosen = new Set(value.slice(0, cut + 1).split(",").map((a) => a.trim().toLowerCase()));
      const matches = known
        .filter((address) => !chosen.has(address.toLowerCase()) && address.toLowerCase().includes(typed))
        .slice(0, MOST_SUGGESTIONS);
      own.replaceChildren(
        ...matches.map((address) => {
          const option = document.createElement("option");
          option.value = before + address;
          option.label = address;
          return option;
        }),
      );
    };
    input.addEventListener("input", suggest);
    input.addEventListener("focus", suggest);
    suggest();
  }
}

function setUpAll() {
  for (const form of document.querySelectorAll("form[data-compose]")) {
    if (!form.dataset.composeReady) {
      form.dataset.composeReady = "1";
      setUp(form);
      setUpAddressSuggestions(form);
    }
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", setUpAll);
} else {
  setUpAll();
}
