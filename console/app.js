// The console: hash routes (#/flows, #/flows/{id}, #/people/{id}, #/journeys/{id}) over the /v1 API.
import { api, ApiError, pathPart, session } from "./api.js";
import { h, percent, when } from "./dom.js";
import { editor } from "./editor.js";
import { drawGraph } from "./graph.js";

const REFRESH_MS = 3000;
const main = document.getElementById("main");
const status = document.getElementById("status");
let stopRefreshing = () => {};
let config = { temporal_ui_port: 8233, temporal_namespace: "default" };

const say = (text) => (status.textContent = text);

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

// ---- flows --------------------------------------------------------------------------------

async function flowsPage(show) {
  const { flows } = await api("/v1/flows");
  const search = h("input", { id: "flow-search", type: "search", placeholder: "id or name" });
  const body = h("tbody");
  const draw = () => {
    const words = search.value.trim().toLowerCase();
    const shown = flows.filter((f) => !words || `${f.id} ${f.name}`.toLowerCase().includes(words));
    body.replaceChildren(
      ...shown.map((f) =>
        h(
          "tr",
          { "data-flow": f.id },
          h("td", {}, h("a", { href: `#/flows/${pathPart(f.id)}` }, f.id)),
          h("td", {}, f.name),
          h("td", {}, h("span", { class: `state ${f.status}` }, f.status)),
          h("td", { class: "num" }, f.current_version ?? "—"),
          h("td", { class: "num" }, f.in_flight),
          h("td", { class: "num" }, f.entered_last_day),
          h("td", { class: "num" }, f.entered_last_week),
          h("td", { class: "num" }, percent(f.conversion_rate)),
          h("td", {}, when(f.last_published_at)),
        ),
      ),
    );
    if (!shown.length) body.append(h("tr", {}, h("td", { colspan: 9 }, flows.length ? "No flow matches." : "No flows in this workspace yet.")));
  };
  search.addEventListener("input", draw);
  const head = ["Id", "Name", "State", "Version", "In flight", "Entered (day)", "Entered (week)", "Conversion", "Last published"];
  show(
    "Flows",
    h("p", { class: "search" }, h("label", { for: "flow-search" }, "Search flows "), search),
    h("table", { class: "list", id: "flows" }, h("caption", { class: "sr-only" }, "Flows of this workspace"),
      h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))), body),
  );
  draw();
}

function describe(object) {
  // A trigger's or the settings' fields as a definition list, values as compact JSON.
  const entries = Object.entries(object ?? {}).filter(([, v]) => v !== null && !(Array.isArray(v) && !v.length));
  return h("dl", { class: "facts" }, entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]));
}

function stepDetails(target, step, stats) {
  const numbers = stats?.find((s) => s.id === step.id);
  target.replaceChildren(
    h("h2", {}, `Step ${step.id}`),
    h("pre", { class: "json" }, JSON.stringify(step, null, 2)),
    numbers ? h("pre", { class: "json" }, JSON.stringify(numbers, null, 2)) : h("p", {}, "No numbers yet."),
  );
}

async function loadStats(flowId, version) {
  const stats = await api(`/v1/flows/${pathPart(flowId)}/stats`);
  return stats.versions.find((v) => v.version === version) ?? null;
}

// A modal question before an action that changes journeys; resolves to the form's values, or
// null when cancelled.
function confirmAction({ title, text, action, option }) {
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

async function flowPage(show, flowId, version) {
  const query = version ? `?version=${version}` : "";
  const [flow, graph, versions] = await Promise.all([
    api(`/v1/flows/${pathPart(flowId)}`),
    api(`/v1/flows/${pathPart(flowId)}/graph${query}`),
    api(`/v1/flows/${pathPart(flowId)}/versions`),
  ]);
  const switcher = h("select", { id: "version" },
    versions.versions.map((v) => h("option", { value: v.version, selected: v.version === graph.version }, `version ${v.version}${v.current ? " (current)" : ""}`)),
    graph.version === null ? h("option", { value: "", selected: true }, "draft (not published)") : null);
  switcher.addEventListener("change", () => (location.hash = `#/flows/${pathPart(flowId)}${switcher.value ? `?version=${switcher.value}` : ""}`));
  const details = h("aside", { class: "details", "aria-live": "polite" }, h("p", {}, "Choose a step to see its settings and numbers."));
  let latest = null;
  let drawn = null;
  const holder = h("div", { class: "canvas-wrap" });
  const header = h("section", { class: "header", "aria-label": "Trigger and settings" });
  const draw = (shown, title) => {
    drawn = drawGraph(shown, { title, onSelect: (step) => stepDetails(details, step, latest?.steps) });
    holder.replaceChildren(drawn.element);
    header.replaceChildren(
      h("div", {}, h("h2", {}, "Trigger"), describe(shown.document.trigger)),
      h("div", {}, h("h2", {}, "Settings"), describe(shown.document.settings)));
    drawn.showNumbers(latest?.steps);
  };
  draw(graph, `Steps of flow ${flowId}, ${graph.version === null ? "draft" : `version ${graph.version}`}`);
  const totals = h("p", { class: "totals", id: "totals" });
  const flowState = h("span", { class: `state ${flow.status}` }, flow.status);
  const inFlight = h("span", { id: "in-flight" }, `in flight ${flow.in_flight}`);
  const view = h("div", { class: "split-view" }, holder, details);

  // Editing: the draft as YAML beside a canvas drawn from what is typed.
  const edit = h("button", { type: "button", "aria-pressed": "false", id: "edit" }, "Edit as YAML");
  const save = h("button", { type: "button", hidden: true }, "Save draft");
  const publish = h("button", { type: "button", hidden: true }, "Publish…");
  const drain = h("button", { type: "button", class: "secondary", hidden: flow.status !== "running" }, "Drain…");
  const stop = h("button", { type: "button", class: "danger", hidden: !["running", "draining"].includes(flow.status) }, "Stop…");
  let code = null;
  edit.addEventListener("click", () => {
    if (code) return location.reload();
    code = editor({
      flowId,
      draft: flow.draft,
      onValid: (answer) => draw({ flow_id: flowId, version: null, document: answer.flow, edges: answer.edges }, `Steps of flow ${flowId} as edited`),
      onFaults: (found) => {
        for (const { node } of drawn.nodes.values()) node.classList.remove("faulty");
        for (const f of found) {
          const node = f.step && drawn.nodes.get(f.step)?.node;
          if (!node) continue;
          node.classList.add("faulty");
          node.setAttribute("aria-label", `${node.getAttribute("aria-label")} — fault: ${f.message}`);
        }
      },
    });
    edit.setAttribute("aria-pressed", "true");
    edit.textContent = "Close the editor";
    save.hidden = publish.hidden = false;
    view.classList.add("editing");
    details.replaceWith(code.element);
    code.validate();
  });
  const act = async (work, done) => {
    try {
      await work();
      say(done);
    } catch (error) {
      say(`Could not: ${error.message}`);
      if (error instanceof ApiError && error.status === 422 && code) await code.validate();
      throw error;
    }
  };
  save.addEventListener("click", () => act(() => code.save(), "Draft saved.").catch(() => {}));
  publish.addEventListener("click", async () => {
    if (!code.isValid()) return say("Fix the faults before publishing.");
    const next = versions.versions.length + 1;
    const answer = await confirmAction({
      title: `Publish version ${next}?`,
      text: `The editor's text is saved as the draft and becomes version ${next}: new entries use it. ` +
        `The ${versions.in_flight} journeys in flight keep their version unless you move them.`,
      option: "Move journeys that wait at a step version " + next + " also has to that step of it",
      action: `Publish version ${next}`,
    });
    if (!answer) return;
    const published = await act(async () => {
      await code.save();
      await api(`/v1/flows/${pathPart(flowId)}/publish`, { method: "POST", body: { move_journeys: answer.option } });
    }, `Version ${next} published.`).then(() => true, () => false);
    if (published) location.hash = `#/flows/${pathPart(flowId)}?version=${next}`;
  });
  drain.addEventListener("click", async () => {
    const ok = await confirmAction({
      title: `Drain ${flowId}?`,
      text: `The flow takes no new entries; the ${versions.in_flight} journeys in flight go on to their end. Publishing runs it again.`,
      action: "Drain",
    });
    if (ok) await act(() => api(`/v1/flows/${pathPart(flowId)}/drain`, { method: "POST" }), "The flow is draining.").then(route, () => {});
  });
  stop.addEventListener("click", async () => {
    const ok = await confirmAction({
      title: `Stop ${flowId}?`,
      text: `The flow takes no new entries and its ${versions.in_flight} journeys in flight are stopped now (they end as stopped). Publishing runs it again.`,
      action: "Stop the flow",
    });
    if (ok) await act(() => api(`/v1/flows/${pathPart(flowId)}/stop`, { method: "POST" }), "The flow is stopped.").then(route, () => {});
  });

  show(
    flow.name,
    h("p", { class: "meta" }, flowState, ` · ${flowId} · `, inFlight, " · ", h("label", { for: "version" }, "Version "), switcher),
    h("p", { class: "actions" }, edit, save, publish, drain, stop),
    header,
    totals,
    view,
  );
  if (graph.version === null) return;
  const refresh = async () => {
    const now = await api(`/v1/flows/${pathPart(flowId)}`);
    flowState.className = `state ${now.status}`;
    flowState.textContent = now.status;
    inFlight.textContent = `in flight ${now.in_flight}`;
    latest = await loadStats(flowId, graph.version);
    drawn.showNumbers(latest?.steps);
    totals.textContent = latest
      ? `Version ${latest.version}: entered ${latest.entered} · running ${latest.running} · converted ${latest.conversions} (${percent(latest.conversion_rate)})`
      : "";
  };
  await refresh();
  if (!show.stale()) stopRefreshing = every(refresh);
}

function every(refresh) {
  // Live numbers without a reload; one refresh at a time, stopped when the page changes.
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      await refresh();
      say("");
    } catch (error) {
      say(`Could not refresh: ${error.message}`);
    } finally {
      busy = false;
    }
  }, REFRESH_MS);
  return () => clearInterval(timer);
}

// ---- people and journeys ------------------------------------------------------------------

function personForm(value = "") {
  const input = h("input", { id: "person-id", type: "search", value, required: true, "aria-describedby": "person-hint" });
  const problem = h("p", { role: "alert", class: "error" });
  const form = h("form", { class: "find", role: "search" },
    h("label", { for: "person-id" }, "Person id or email "), input, h("button", { type: "submit" }, "Find"),
    h("span", { id: "person-hint", class: "hint" }, "an email finds the person whose email attribute it is"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const wanted = input.value.trim();
    if (!wanted.includes("@")) return (location.hash = `#/people/${pathPart(wanted)}`);
    try {
      const { profiles } = await api(`/v1/profiles?email=${encodeURIComponent(wanted)}`);
      if (profiles.length) location.hash = `#/people/${pathPart(profiles[0].id)}`;
      else problem.textContent = `No person with the email ${wanted} in this workspace.`;
    } catch (error) {
      problem.textContent = error.message;
    }
  });
  return h("div", {}, form, problem);
}

async function personPage(show, profileId) {
  let person;
  try {
    person = await api(`/v1/profiles/${pathPart(profileId)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      return show("People", personForm(profileId), h("p", { role: "alert", class: "error" }, `No person with the id ${profileId} in this workspace.`));
    }
    throw error;
  }
  const journeys = h("table", { class: "list", id: "journeys" },
    h("thead", {}, h("tr", {}, ["Journey", "Flow", "Version", "Status", "Now at", "Started", "Ended"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, person.journeys.map((j) => h("tr", {},
      h("td", {}, h("a", { href: `#/journeys/${pathPart(j.id)}` }, j.id)),
      h("td", {}, h("a", { href: `#/flows/${pathPart(j.flow_id)}` }, j.flow_id)),
      h("td", { class: "num" }, j.version), h("td", {}, j.status), h("td", {}, j.current_step ?? "—"),
      h("td", {}, when(j.started_at)), h("td", {}, when(j.ended_at))))));
  const { messages } = await api(`/v1/profiles/${pathPart(profileId)}/inbox?limit=20`);
  const personLink = (id) => h("a", { href: `#/people/${pathPart(id)}` }, id);
  const consent = person.do_not_contact.map((d) => `${d.channel === "all" ? "every channel" : d.channel}${d.sender ? ` from ${d.sender}` : ""}`);
  show(
    `Person ${person.id}`,
    personForm(profileId),
    h("h2", {}, "Attributes"), describe(person.attributes),
    h("dl", { class: "facts" },
      h("dt", {}, "tags"), h("dd", { id: "tags" }, person.tags.join(", ") || "—"),
      h("dt", {}, "do not contact"), h("dd", { id: "do-not-contact" }, consent.join("; ") || "—"),
      h("dt", {}, "segments"), h("dd", { id: "segments" }, person.segments?.length ? person.segments.map((id, i) => [i ? ", " : "", h("a", { href: `#/segments/${pathPart(id)}` }, id)]) : "—"),
      h("dt", {}, "referred by"), h("dd", {}, person.referrer_id ? personLink(person.referrer_id) : "—"),
      h("dt", {}, "friends"), h("dd", {}, person.friends.length ? person.friends.map((id, i) => [i ? ", " : "", personLink(id)]) : "—"),
      h("dt", {}, "push tokens"), h("dd", {}, person.push_tokens.map((t) => t.platform).join(", ") || "—")),
    h("h2", {}, "Journeys"), person.journeys.length ? journeys : h("p", {}, "No journeys."),
    h("h2", {}, "Inbox"),
    messages.length
      ? h("table", { class: "list", id: "inbox" },
          h("thead", {}, h("tr", {}, ["Title", "Body", "Sent", "Read"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, messages.map((m) => h("tr", {}, h("td", {}, m.title || "—"), h("td", {}, m.body), h("td", {}, when(m.created_at)), h("td", {}, m.read ? when(m.read_at) : "no")))))
      : h("p", {}, "No in-app messages."),
  );
}

function temporalLink(journeyId) {
  const url = `${location.protocol}//${location.hostname}:${config.temporal_ui_port}/namespaces/${pathPart(config.temporal_namespace)}/workflows/${pathPart(journeyId)}`;
  return h("a", { href: url, target: "_blank", rel: "noopener" }, "Open the workflow in the Temporal UI");
}

function visitLines(journey, stepId) {
  // What this journey did at a step: its visits, the branch it last left by, errors.
  const visits = journey.path.filter((p) => p.step === stepId);
  if (!visits.length) return ["not visited"];
  const last = visits[visits.length - 1];
  const lines = [`visited ${visits.length}× · last ${when(last.entered_at)}`];
  if (last.branch) lines.push(`left by ${last.branch}`);
  else if (journey.status === "running" && journey.current_step === stepId) lines.push("here now");
  const failed = visits.filter((p) => p.error);
  if (failed.length) lines.push(`error: ${failed[failed.length - 1].error}`.slice(0, 34));
  return lines;
}

async function journeyPage(show, journeyId) {
  const journey = await api(`/v1/journeys/${pathPart(journeyId)}`);
  const graph = await api(`/v1/flows/${pathPart(journey.flow_id)}/graph?version=${journey.version}`);
  const drawn = drawGraph(graph, { title: `Path of journey ${journeyId} on flow ${journey.flow_id}, version ${journey.version}` });
  const running = journey.status === "running";
  drawn.showPath(journey.path, running ? journey.current_step : null);
  drawn.showLines((id) => visitLines(journey, id));
  const stop = h("button", { type: "button", class: "danger", id: "stop-journey" }, "Stop this journey");
  stop.addEventListener("click", async () => {
    if (!confirm(`Stop journey ${journeyId}? It leaves the flow at once and ends as stopped.`)) return;
    try {
      await api(`/v1/journeys/${pathPart(journeyId)}/stop`, { method: "POST", body: { reason: "stopped in the console" } });
      say("The journey is stopping.");
      stop.disabled = true;
    } catch (error) {
      say(`Could not stop it: ${error.message}`);
    }
  });
  const rows = journey.path.map((p) => h("tr", { class: p.error ? "failed" : "" },
    h("td", { class: "num" }, p.seq), h("td", {}, p.step), h("td", {}, p.type), h("td", {}, when(p.entered_at)),
    h("td", {}, when(p.left_at)), h("td", {}, p.branch ?? (p.left_at ? "—" : "here now")), h("td", {}, p.error ?? "")));
  show(
    `Journey ${journeyId}`,
    h("p", { class: "meta" },
      h("span", { class: `state ${journey.status}` }, journey.status), " · ",
      h("a", { href: `#/people/${pathPart(journey.profile_id)}` }, `person ${journey.profile_id}`), " · ",
      h("a", { href: `#/flows/${pathPart(journey.flow_id)}?version=${journey.version}` }, `flow ${journey.flow_id} v${journey.version}`),
      ` · started ${when(journey.started_at)}`, journey.ended_at ? ` · ended ${when(journey.ended_at)} (${journey.exit_reason ?? ""})` : ""),
    running ? h("p", { id: "waiting" }, `Now at ${journey.current_step ?? "—"}${journey.waiting_for ? `, waiting for ${journey.waiting_for}` : ""}`) : null,
    h("p", { class: "actions" }, temporalLink(journeyId), running ? stop : null),
    h("div", { class: "canvas-wrap" }, drawn.element),
    h("h2", {}, "Path"),
    h("table", { class: "list", id: "path" },
      h("thead", {}, h("tr", {}, ["#", "Step", "Type", "Entered", "Left", "Branch", "Error"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)),
    h("h2", {}, "Variables"), h("pre", { class: "json" }, JSON.stringify(journey.variables, null, 2)),
  );
}

// ---- segments and settings -----------------------------------------------------------------

const PAGE = 50;

async function segmentsPage(show) {
  const { segments, unreadable } = await api("/v1/segments");
  // Each count is the segment's rule evaluated now (GET /v1/segments/{id}/members).
  const counts = await Promise.all(
    segments.map((seg) => api(`/v1/segments/${pathPart(seg.id)}/members?limit=1`).then((m) => m.count, () => null)),
  );
  show(
    "Segments",
    segments.length
      ? h("table", { class: "list", id: "segments" },
          h("thead", {}, h("tr", {}, ["Id", "Name", "Members", "Rule"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, segments.map((seg, i) => h("tr", {},
            h("td", {}, h("a", { href: `#/segments/${pathPart(seg.id)}` }, seg.id)), h("td", {}, seg.name),
            h("td", { class: "num" }, counts[i] ?? "—"), h("td", { class: "rule" }, JSON.stringify(seg.rule))))))
      : h("p", {}, "No segments in this workspace."),
    unreadable.length ? h("p", { class: "error" }, `Not evaluated until saved again: ${unreadable.map((u) => `${u.id} (${u.message})`).join("; ")}`) : null,
  );
}

async function segmentPage(show, segmentId, offset) {
  const members = await api(`/v1/segments/${pathPart(segmentId)}/members?limit=${PAGE}&offset=${offset}`);
  const to = (at) => `#/segments/${pathPart(segmentId)}?offset=${at}`;
  show(
    `Segment ${segmentId}`,
    h("p", { class: "meta", id: "member-count" }, `${members.count} members now; ${members.count ? `${offset + 1}–${offset + members.members.length}` : "none"} shown.`),
    h("ul", { class: "members", id: "members" }, members.members.map((id) => h("li", {}, h("a", { href: `#/people/${pathPart(id)}` }, id)))),
    h("nav", { class: "actions", "aria-label": "Pages of members" },
      offset > 0 ? h("a", { href: to(Math.max(0, offset - PAGE)) }, "Previous page") : null,
      offset + PAGE < members.count ? h("a", { href: to(offset + PAGE) }, "Next page") : null),
  );
}

async function settingsPage(show) {
  const [workspace, channels, { destinations }] = await Promise.all([
    api("/v1/workspace"),
    api("/v1/workspace/channels"),
    api("/v1/destinations"),
  ]);
  // The API masks secrets in these answers; the console shows what it is given.
  show(
    "Settings",
    h("h2", {}, "Workspace"), describe(workspace),
    h("h2", {}, "Channels"),
    h("div", { id: "channels" }, Object.entries(channels).map(([channel, settings]) =>
      h("section", { "aria-label": `Channel ${channel}` }, h("h3", {}, channel), settings ? describe(settings) : h("p", {}, "not set up")))),
    h("h2", {}, "Destinations"),
    destinations.length
      ? h("div", { id: "destinations" }, destinations.map((d) => h("section", { "aria-label": `Destination ${d.id}` }, h("h3", {}, d.id), describe(d))))
      : h("p", {}, "No destinations."),
  );
}

// ---- routing ------------------------------------------------------------------------------

async function route() {
  stopRefreshing();
  stopRefreshing = () => {};
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
  .then((c) => (config = c))
  .catch(() => {})
  .finally(route);
