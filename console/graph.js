// A flow version's steps drawn as an SVG graph. Layout: longest-path layering from the first
// step (an edge back to a step listed earlier is a loop and does not push layers down), steps of
// a layer in their listed order. The edges come from GET /v1/flows/{id}/graph, which knows the
// branch rules; this file only places and draws them.
import { svg } from "./dom.js";

const WIDTH = 250;
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
      // Short enough for a node; the full figures are in the step's details.
      const lift = v.lift === null ? "" : ` · ${v.lift >= 0 ? "+" : ""}${Math.round(v.lift * 100)} %`;
      const beat = v.probability_to_beat === null ? "" : ` · P ${Math.round(v.probability_to_beat * 100)} %`;
      lines.push(`${v.name}: ${v.people} ppl · ${v.conversions} conv${lift}${beat}`);
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

const label = (edge) => (edge.implicit ? `${edge.branches.join(", ")} (listed next)` : edge.branches.join(", "));

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
  const height = (step) => 58 + LINE * (2 + extraLines(step));
  const widest = Math.max(...layers.map((l) => l.length));
  // Room on the left for the edges that skip layers (drawn round the outside) and their labels.
  const skipping = edges.filter((e) => (e.target === null ? layers.length : layer.get(e.target)) > layer.get(e.source) + 1);
  const LEFT = skipping.length ? 60 + Math.max(...skipping.map((e) => label(e).length)) * 6.5 + skipping.length * 12 : 20;
  const place = new Map();
  let y = 20;
  for (const row of layers) {
    if (!row) continue;
    const offset = ((widest - row.length) * (WIDTH + GAP_X)) / 2;
    const rowHeight = Math.max(...row.map(height));
    row.forEach((step, i) => {
      place.set(step.id, { x: LEFT + offset + i * (WIDTH + GAP_X), y, w: WIDTH, h: height(step), layer: layer.get(step.id) });
    });
    y += rowHeight + GAP_Y;
  }
  const end = { x: LEFT + ((widest - 1) * (WIDTH + GAP_X)) / 2 + WIDTH / 2 - 40, y, w: 80, h: 32, layer: layers.length };
  const right = LEFT + widest * (WIDTH + GAP_X) - GAP_X;
  return { place, end, bounds: { left: LEFT, right }, width: right + 140, height: y + 60 };
}

// Across to x = out, along it, and back to (x2, y2), with rounded corners.
function around(x1, y1, out, x2, y2) {
  const r = 12;
  const dx1 = Math.sign(out - x1) * r, dx2 = Math.sign(x2 - out) * r, dy = Math.sign(y2 - y1) * r;
  return `M${x1},${y1} L${out - dx1},${y1} Q${out},${y1} ${out},${y1 + dy} L${out},${y2 - dy} Q${out},${y2} ${out + dx2},${y2} L${x2},${y2}`;
}

function edgePath(from, to, back, side, bounds, share) {
  if (!back && to.layer > from.layer + 1) {
    // Past the layers between: out of the left side, round the outside, into the left side.
    const x1 = from.x, y1 = from.y + from.h / 2, x2 = to.x, y2 = to.y + to.h / 2;
    const out = bounds.left - 24 - side * 12; // left of every node, so it crosses none
    return { d: around(x1, y1, out, x2 - 6, y2), lx: out - 6, ly: (y1 + y2) / 2, anchor: "end" };
  }
  if (back) {
    // Out of the right side, round the outside, into the right side of the earlier step.
    const x1 = from.x + from.w, y1 = from.y + from.h / 2, x2 = to.x + to.w, y2 = to.y + to.h / 2;
    const out = bounds.right + 40 + side * 14;
    return { d: around(x1, y1, out, x2 + 6, y2), lx: out, ly: (y1 + y2) / 2 };
  }
  // Edges down to the next layer leave spread along the bottom, in the order of their targets.
  const x1 = from.x + (from.w * (share.index + 1)) / (share.of + 1), y1 = from.y + from.h;
  const x2 = to.x + to.w / 2, y2 = to.y - 6;
  const bend = Math.max(30, (y2 - y1) / 2);
  return {
    d: `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`,
    lx: (x1 + x2) / 2,
    ly: y1 + (y2 - y1) * 0.4,
  };
}

// Draws the graph; returns the SVG and a function that puts fresh numbers on the nodes.
export function drawGraph(graph, { title, onSelect } = {}) {
  const steps = graph.document.steps;
  const { place, end, bounds, width, height } = layout(steps, graph.edges);
  const root = svg("svg", {
    class: "canvas",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "group",
    "aria-label": title ?? `Steps of flow ${graph.flow_id}`,
  });
  root.append(
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
  );
  const edgeLayer = svg("g", { class: "edges" });
  const nodeLayer = svg("g", { class: "nodes" });
  root.append(edgeLayer, nodeLayer);
  const fanout = new Map();
  const downward = new Map(); // per step: its edges to the next layer, left to right
  for (const edge of graph.edges) {
    const from = place.get(edge.source), to = edge.target === null ? end : place.get(edge.target);
    if (to.layer === from.layer + 1) (downward.get(edge.source) ?? downward.set(edge.source, []).get(edge.source)).push(edge);
  }
  for (const list of downward.values()) {
    list.sort((a, b) => (a.target === null ? end : place.get(a.target)).x - (b.target === null ? end : place.get(b.target)).x);
  }
  const edgeElements = [];
  let endUsed = false;
  for (const edge of graph.edges) {
    const from = place.get(edge.source);
    const to = edge.target === null ? end : place.get(edge.target);
    if (edge.target === null) endUsed = true;
    const back = edge.target !== null && to.y <= from.y;
    const side = fanout.get(edge.source) ?? 0;
    fanout.set(edge.source, side + 1);
    const down = downward.get(edge.source) ?? [];
    const share = { index: down.indexOf(edge), of: down.length };
    const { d, lx, ly, anchor } = edgePath(from, to, back, side, bounds, share);
    const text = label(edge);
    const group = svg(
      "g",
      { class: `edge${edge.implicit ? " implicit" : ""}`, "data-source": edge.source, "data-target": edge.target ?? "end" },
      svg("title", {}, `${edge.source} → ${edge.target ?? "end"}: ${text}`),
      svg("path", { d, "marker-end": "url(#arrow)" }),
      svg("text", { x: lx + 4, y: ly, class: "edge-label", "text-anchor": anchor ?? "start" }, text),
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

  // The lines under each step's name: ``linesOf(id)`` (live numbers, or a journey's visits).
  function showLines(linesOf) {
    for (const [id, { node, numbers, step, box }] of nodes) {
      const lines = linesOf(id);
      const room = Math.floor((box.h - 50) / LINE); // the full list is in the node's name
      numbers.replaceChildren(...lines.slice(0, room).map((line, i) => svg("tspan", { x: box.x + 12, dy: i ? LINE : 0 }, line)));
      node.setAttribute("aria-label", `Step ${id}, ${step.type}: ${lines.join("; ")}${node.dataset.mark ?? ""}`);
    }
  }
  function showNumbers(stepStats) {
    const byId = new Map((stepStats ?? []).map((s) => [s.id, s]));
    showLines((id) => statLines(byId.get(id)));
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
  return { element: root, showNumbers, showLines, showPath, nodes };
}
