// People and their journeys: a person found by id or email, and a journey drawn on its canvas.
import { api, ApiError, pathPart } from "./api.js";
import { h, when } from "./dom.js";
import { drawGraph } from "./graph.js";
import { config, describe, every, say } from "./shell.js";

export function personForm(value = "") {
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

export async function personPage(show, profileId) {
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
    h("h2", {}, "Tags, consent and connections"),
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

export async function journeyPage(show, journeyId) {
  let journey = await api(`/v1/journeys/${pathPart(journeyId)}`);
  const graph = await api(`/v1/flows/${pathPart(journey.flow_id)}/graph?version=${journey.version}`);
  const drawn = drawGraph(graph, { title: `Path of journey ${journeyId} on flow ${journey.flow_id}, version ${journey.version}` });
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
  const state = h("span", {});
  const ended = h("span", {});
  const waiting = h("p", { id: "waiting" });
  const rows = h("tbody");
  const variables = h("pre", { class: "json", id: "variables" });
  // Drawn again from each answer: a running journey moves on while one looks at it.
  const fill = () => {
    const running = journey.status === "running";
    drawn.showPath(journey.path, running ? journey.current_step : null);
    drawn.showLines((id) => visitLines(journey, id));
    state.className = `state ${journey.status}`;
    state.textContent = journey.status;
    ended.textContent = journey.ended_at ? ` · ended ${when(journey.ended_at)} (${journey.exit_reason ?? ""})` : "";
    waiting.hidden = !running;
    waiting.textContent = `Now at ${journey.current_step ?? "—"}${journey.waiting_for ? `, waiting for ${journey.waiting_for}` : ""}`;
    stop.hidden = !running;
    rows.replaceChildren(...journey.path.map((p) => h("tr", { class: p.error ? "failed" : "" },
      h("td", { class: "num" }, p.seq), h("td", {}, p.step), h("td", {}, p.type), h("td", {}, when(p.entered_at)),
      h("td", {}, when(p.left_at)), h("td", {}, p.branch ?? (p.left_at ? "—" : "here now")), h("td", {}, p.error ?? ""))));
    variables.textContent = JSON.stringify(journey.variables, null, 2);
  };
  fill();
  show(
    `Journey ${journeyId}`,
    h("p", { class: "meta" },
      state, " · ",
      h("a", { href: `#/people/${pathPart(journey.profile_id)}` }, `person ${journey.profile_id}`), " · ",
      h("a", { href: `#/flows/${pathPart(journey.flow_id)}?version=${journey.version}` }, `flow ${journey.flow_id} v${journey.version}`),
      ` · started ${when(journey.started_at)}`, ended),
    waiting,
    h("p", { class: "actions" }, temporalLink(journeyId), stop),
    h("div", { class: "canvas-wrap" }, drawn.element),
    h("h2", {}, "Path"),
    h("table", { class: "list", id: "path" },
      h("thead", {}, h("tr", {}, ["#", "Step", "Type", "Entered", "Left", "Branch", "Error"].map((c) => h("th", { scope: "col" }, c)))),
      rows),
    h("h2", {}, "Variables"), variables,
  );
  if (journey.status !== "running") return;
  every(async () => {
    journey = await api(`/v1/journeys/${pathPart(journeyId)}`);
    fill();
  });
}
