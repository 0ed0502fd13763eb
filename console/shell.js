// What every page shares: the status line, facts as a definition list, confirmations, and the
// live refresh of the page on screen.
import { h } from "./dom.js";

const REFRESH_MS = 3000;
const status = document.getElementById("status");

// Where the Temporal UI is (GET /console/config.json), for links to a journey's workflow.
export const config = { temporal_ui_port: 8233, temporal_namespace: "default" };

export const say = (text) => (status.textContent = text);

export function describe(object) {
  // A trigger's or the settings' fields as a definition list, values as compact JSON.
  const entries = Object.entries(object ?? {}).filter(([, v]) => !(Array.isArray(v) && !v.length));
  if (!entries.length) return h("p", {}, "—");
  return h("dl", { class: "facts" }, entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v))]));
}

// A modal question before an action that changes journeys; resolves to the form's values, or
// null when cancelled.
export function confirmAction({ title, text, action, option }) {
  return new Promise((resolve) => {
    const box = option ? h("input", { type: "checkbox", id: "confirm-option" }) : null;
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "confirm-title" }, title),
        h("p", {}, text),
        option ? h("p", {}, box, " ", h("label", { for: "confirm-option" }, option)) : null,
        h("p", { class: "actions" },
          h("button", { value: "yes", class: "danger" }, action),
          h("button", { value: "no", type: "submit", class: "secondary", formnovalidate: true }, "Cancel"))),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "yes" ? { option: box?.checked ?? false } : null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

let stopRefreshing = () => {};

export function stopRefresh() {
  stopRefreshing();
  stopRefreshing = () => {};
}

export function every(refresh) {
  // Live numbers without a reload; one refresh at a time, stopped when the page changes.
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      await refresh();
      // A refresh that works again takes its own complaint away (and only that).
      if (status.textContent.startsWith("Could not refresh")) say("");
    } catch (error) {
      say(`Could not refresh: ${error.message}`);
    } finally {
      busy = false;
    }
  }, REFRESH_MS);
  stopRefreshing = () => clearInterval(timer);
}
