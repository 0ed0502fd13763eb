// Flows: the list, and a flow's canvas with live numbers, its YAML editor and its lifecycle.
import { api, ApiError, pathPart } from "./api.js";
import { h, percent, when } from "./dom.js";
import { editor } from "./editor.js";
import { drawGraph } from "./graph.js";
import { confirmAction, describe, every, say } from "./shell.js";

// Draw the page on screen again (after drain or stop): the router listens for this.
const again = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

export async function flowsPage(show) {
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

export async function flowPage(show, flowId, version) {
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
    if (ok) await act(() => api(`/v1/flows/${pathPart(flowId)}/drain`, { method: "POST" }), "The flow is draining.").then(again, () => {});
  });
  stop.addEventListener("click", async () => {
    const ok = await confirmAction({
      title: `Stop ${flowId}?`,
      text: `The flow takes no new entries and its ${versions.in_flight} journeys in flight are stopped now (they end as stopped). Publishing runs it again.`,
      action: "Stop the flow",
    });
    if (ok) await act(() => api(`/v1/flows/${pathPart(flowId)}/stop`, { method: "POST" }), "The flow is stopped.").then(again, () => {});
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
  if (!show.stale()) every(refresh);
}
