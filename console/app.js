// The console: sign-in and the hash routes (#/flows, #/flows/{id}, #/people/{id},
// #/journeys/{id}, #/segments, #/settings) over the /v1 API.
import { api, ApiError, session } from "./api.js";
import { h } from "./dom.js";
import { flowPage, flowsPage } from "./flows.js";
import { journeyPage, personForm, personPage } from "./people.js";
import { config, say, stopRefresh } from "./shell.js";
import { segmentPage, segmentsPage, settingsPage } from "./workspace.js";

const main = document.getElementById("main");

function page(title, ...content) {
  document.title = `${title} · Flowline console`;
  main.replaceChildren(h("h1", {}, title), ...content);
}

// Routes overlap (a click while a page still loads): each page draws through its route's ``show``,
// which refuses once a newer route started, so a slow page never draws over the one asked after it.
let generation = 0;
class Stale extends Error {}

function failure(error) {
  if (error instanceof ApiError && error.status === 401) {
    session.signOut();
    return signIn("The API key was not accepted: sign in again.");
  }
  page("Something went wrong", h("p", { role: "alert", class: "error" }, error.message));
}

// ---- sign-in ------------------------------------------------------------------------------

function signIn(message = "") {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  const input = h("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "off", required: true });
  const problem = h("p", { id: "sign-in-error", role: "alert", class: "error" }, message);
  const form = h(
    "form",
    { class: "sign-in", "aria-describedby": "sign-in-help" },
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { id: "sign-in-help", class: "hint" }, "A workspace's key (python cli.py create-key). It is kept in this tab only."),
    h("button", { type: "submit" }, "Sign in"),
    problem,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    try {
      await api("/v1/flows", { key });
    } catch (error) {
      problem.textContent =
        error instanceof ApiError && error.status === 401
          ? "This API key was not accepted. Check it and try again."
          : `Could not sign in: ${error.message}`;
      input.focus();
      return;
    }
    session.signIn(key);
    if (location.hash === "" || location.hash === "#/sign-in") location.hash = "#/flows";
    else route();
  });
  page("Sign in", form);
  input.focus();
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  location.hash = "#/sign-in";
  signIn("Signed out.");
});

// ---- routing ------------------------------------------------------------------------------

async function route() {
  stopRefresh();
  say("");
  const mine = ++generation;
  const show = (...args) => {
    if (mine !== generation) throw new Stale();
    page(...args);
  };
  show.stale = () => mine !== generation;
  if (!session.key()) return signIn();
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query ?? "");
  try {
    if (parts[0] === "flows" && parts[1]) await flowPage(show, parts[1], params.get("version"));
    else if (parts[0] === "people" && parts[1]) await personPage(show, parts[1]);
    else if (parts[0] === "people") show("People", personForm());
    else if (parts[0] === "journeys" && parts[1]) await journeyPage(show, parts[1]);
    else if (parts[0] === "segments" && parts[1]) await segmentPage(show, parts[1], Math.max(0, Number(params.get("offset")) || 0));
    else if (parts[0] === "segments") await segmentsPage(show);
    else if (parts[0] === "settings") await settingsPage(show);
    else await flowsPage(show);
    main.focus({ preventScroll: true });
  } catch (error) {
    if (error instanceof Stale || mine !== generation) return;
    failure(error);
  }
}

window.addEventListener("hashchange", route);
fetch(new URL("config.json", document.baseURI))
  .then((r) => (r.ok ? r.json() : config))
  .then((c) => Object.assign(config, c))
  .catch(() => {})
  .finally(route);
