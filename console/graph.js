// A flow version's steps drawn as an SVG graph. Layout: longest-path layering from the first
// step (an edge back to a step listed earlier is a loop and does not push layers down), steps of
// a layer in their listed order. The edges come from GET /v1/flows/{id}/graph, which knows the
// branch rules; this file only places and draws them.
import { percent, svg } from "./dom.js";

const WIDTH = 230;
const GAP_X = 50;
const GAP_Y = 70;
const LINE = 16;

// The lines of numbers a step shows, from its entry in GET /v1/flows/{id}/stats.
export function statLines(step) {
  if (!step) return ["no journeys yet"];
  const lines = [`at step ${step.at_step} · entered ${step.entered}`];
  if (step.errors) lines.push(`errors ${step.errors}`);
  if (step.sends) {
    const s = step.sends;
    lines.push(`sent ${s.sends} · delivered ${s.deliveries}`);
    lines.push(`opened ${s.opens} · clicked ${s.clicks} · failed ${s.failed}`);
  }
  if (step.exports) {
    const e = step.exports;
    lines.push(`exported ${e.exported} · delivered ${e.delivered}`);
    lines.push(`failed ${e.rejected + e.given_up} · pending ${e.pending}`);
  }
  if (step.split) {
    for (const v of step.split.variants) {
      const lift = v.lift === null ? "" : ` · lift ${percent(v.lift)}`;
      const beat = v.probability_to_beat === null ? "" : ` · P ${percent(v.probability_to_beat)}`;
      lines.push(`${v.name}: ${v.people} people · ${v.conversions} conv${lift}${beat}`);
    }
  }
  return lines;
}

function extraLines(step) {
  // Room kept for the numbers a step of this type can show (stable while they refresh).
  if (["send", "webhook"].includes(step.type)) return 2;
  if (step.type === "export") return 2;
  if (step.type === "split") return (step.variants?.length ?? 0) + (step.control ? 1 : 0);
  return 0;
}

export function layout(steps, edges) {
  const index = new Map(steps.map((s, i) => [s.id, i]));
  const layer = new Map(steps.map((s) => [s.id, 0]));
  for (const step of steps) {
    for (const edge of edges) {
      if (edge.source !== step.id || edge.target === null) continue;
      if (index.get(edge.target) <= index.get(step.id)) continue; // a loop back
      layer.set(edge.target, Math.max(layer.get(edge.target), layer.get(step.id) + 1));
    }
  }
  const layers = [];
  for (const step of steps) (layers[layer.get(step.id)] ??= []).push(step);
  const height = (step) => 58 + LINE * (1 + (step.errors ? 1 : 0) + extraLines(step));
  const widest = Math.max(...layers.map((l) => l.length));
  const place = new Map();
  let y = 20;
  for (const row of layers) {
    if (!row) continue;
    const offset = ((widest - row.length) * (WIDTH + GAP_X)) / 2;
    const rowHeight = Math.max(...row.map(height));
    row.forEach((step, i) => {
      place.set(step.id, { x: 20 + offset + i * (WIDTH + GAP_X), y, w: WIDTH, h: height(step) });
    });
    y += rowHeight + GAP_Y;
  }
  const end = { x: 20 + ((widest - 1) * (WIDTH + GAP_X)) / 2 + WIDTH / 2 - 40, y, w: 80, h: 32 };
  return { place, end, width: 40 + widest * (WIDTH + GAP_X) - GAP_X + 120, height: y + 60 };
}

function edgePath(from, to, back, side) {
  if (back) {
    // Out of the right side, round the outside, into the right side of the earlier step.
    const x1 = from.x + from.w, y1 = from.y + from.h / 2, x2 = to.x + to.w, y2 = to.y + to.h / 2;
    const out = Math.max(x1, x2) + 50 + side * 14;
    return { d: `M${x1},${y1} C${out},${y1} ${out},${y2} ${x2 + 6},${y2}`, lx: out - 10, ly: (y1 + y2) / 2 };
  }
  const x1 = from.x + from.w / 2 + side * 14, y1 = from.y + from.h;
  const x2 = to.x + to.w / 2, y2 = to.y - 6;
  const bend = Math.max(30, (y2 - y1) / 2);
  return {
    d: `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`,
    lx: (x1 + x2) / 2,
    ly: y1 + (y2 - y1) * (0.35 + 0.15 * (side % 3)),
  };
}

// Draws the graph; returns the SVG and a function that puts fresh numbers on the nodes.
export function drawGraph(graph, { title, onSelect } = {}) {
  const steps = graph.document.steps;
  const { place, end, width, height } = layout(steps, graph.edges);
  const root = svg("svg", {
    class: "canvas",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "group",
    "aria-label": title ?? `Steps of flow ${graph.flow_id}`,
  });
  root.append(
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
  );
  const edgeLayer = svg("g", { class: "edges" });
  const nodeLayer = svg("g", { class: "nodes" });
  root.append(edgeLayer, nodeLayer);
  const fanout = new Map();
  const edgeElements = [];
  let endUsed = false;
  for (const edge of graph.edges) {
    const from = place.get(edge.source);
    const to = edge.target === null ? end : place.get(edge.target);
    if (edge.target === null) endUsed = true;
    const back = edge.target !== null && to.y <= from.y;
    const side = fanout.get(edge.source) ?? 0;
    fanout.set(edge.source, side + 1);
    const { d, lx, ly } = edgePath(from, to, back, side);
    const label = edge.implicit ? `${edge.branches.join(", ")} (listed next)` : edge.branches.join(", ");
    const group = svg(
      "g",
      { class: `edge${edge.implicit ? " implicit" : ""}`, "data-source": edge.source, "data-target": edge.target ?? "end" },
      svg("title", {}, `${edge.source} → ${edge.target ?? "end"}: ${label}`),
      svg("path", { d, "marker-end": "url(#arrow)" }),
      svg("text", { x: lx + 4, y: ly, class: "edge-label" }, label),
    );
    edgeLayer.append(group);
    edgeElements.push(group);
  }
  if (endUsed) {
    nodeLayer.append(
      svg("g", { class: "end", role: "img", "aria-label": "End of the journey" },
        svg("rect", { x: end.x, y: end.y, width: end.w, height: end.h, rx: 16 }),
        svg("text", { x: end.x + end.w / 2, y: end.y + 21, "text-anchor": "middle" }, "end")),
    );
  }
  const nodes = new Map();
  for (const step of steps) {
    const box = place.get(step.id);
    const numbers = svg("text", { class: "numbers", x: box.x + 12, y: box.y + 58 });
    const node = svg(
      "g",
      { class: "node step", role: "img", tabindex: 0, "data-step": step.id, "data-type": step.type },
      svg("rect", { x: box.x, y: box.y, width: box.w, height: box.h, rx: 8 }),
      svg("text", { class: "step-id", x: box.x + 12, y: box.y + 22 }, step.id),
      svg("text", { class: "step-type", x: box.x + 12, y: box.y + 40 }, step.type),
      numbers,
    );
    if (onSelect) {
      node.addEventListener("click", () => onSelect(step));
      node.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          onSelect(step);
        }
      });
    }
    nodes.set(step.id, { node, numbers, step, box });
    nodeLayer.append(node);
  }

  function showNumbers(stepStats) {
    const byId = new Map((stepStats ?? []).map((s) => [s.id, s]));
    for (const [id, { node, numbers, step, box }] of nodes) {
      const lines = statLines(byId.get(id));
      numbers.replaceChildren(...lines.map((line, i) => svg("tspan", { x: box.x + 12, dy: i ? LINE : 0 }, line)));
      node.setAttribute("aria-label", `Step ${id}, ${step.type}: ${lines.join("; ")}${node.dataset.mark ?? ""}`);
    }
  }
  showNumbers([]);

  // A journey's path on the graph: steps it visited, the edges it took, where it is now.
  function showPath(path, current) {
    const visited = new Set(path.map((p) => p.step));
    for (const [id, { node }] of nodes) {
      node.classList.toggle("visited", visited.has(id));
      node.classList.toggle("current", id === current);
      node.dataset.mark = id === current ? " (the journey is here)" : visited.has(id) ? " (visited)" : "";
    }
    const taken = new Set(path.slice(1).map((p, i) => `${path[i].step}>${p.step}`));
    for (const group of edgeElements) {
      group.classList.toggle("taken", taken.has(`${group.dataset.source}>${group.dataset.target}`));
    }
  }
  return { element: root, showNumbers, showPath, nodes };
}
