// The flow's document as YAML beside its canvas: validated as one types (POST
// /v1/flows/{id}/validate), each fault listed with its line, marked in the gutter and on its
// step's node; saved as the draft (PUT /v1/flows/{id}).
import { api, ApiError, pathPart } from "./api.js";
import { h } from "./dom.js";
import { lineOf, toYaml } from "./yaml.js";

const PAUSE_MS = 350; // validate once typing pauses

const sendYaml = (path, method, text) => api(path, { method, yaml: text });

// The id of the step a fault path points into ("$.steps[2]..."), read from the text itself.
function stepOf(text, path) {
  const match = /^\$\.steps\[(\d+)\]/.exec(path);
  if (!match) return null;
  const line = text.split("\n")[lineOf(text, `$.steps[${match[1]}].id`)] ?? "";
  return /\bid:\s*["']?([\w.-]+)/.exec(line)?.[1] ?? null;
}

export function editor({ flowId, draft, onValid, onFaults }) {
  const area = h("textarea", { id: "flow-yaml", spellcheck: "false", "aria-describedby": "editor-state", wrap: "off" });
  area.value = toYaml(draft);
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const state = h("p", { id: "editor-state", class: "editor-state", "aria-live": "polite" });
  const faults = h("ul", { id: "faults", class: "faults", "aria-label": "Faults" });
  let faultLines = new Map();
  let asked = 0;
  let valid = true;

  const drawGutter = () => {
    const count = area.value.split("\n").length;
    gutter.replaceChildren(
      ...Array.from({ length: count }, (_, i) =>
        h("div", { class: faultLines.has(i) ? "fault" : "", title: faultLines.get(i) ?? "" }, i + 1),
      ),
    );
    gutter.scrollTop = area.scrollTop;
  };
  area.addEventListener("scroll", () => (gutter.scrollTop = area.scrollTop));

  const goTo = (line) => {
    const lines = area.value.split("\n");
    const start = lines.slice(0, line).reduce((n, l) => n + l.length + 1, 0);
    area.focus();
    area.setSelectionRange(start, start + lines[line].length);
  };

  async function validate() {
    const ask = ++asked;
    const text = area.value;
    try {
      const answer = await sendYaml(`/v1/flows/${pathPart(flowId)}/validate`, "POST", text);
      if (ask !== asked) return; // a newer text is being checked
      valid = true;
      faultLines = new Map();
      faults.replaceChildren();
      state.textContent = `Valid: ${answer.flow.steps.length} steps.`;
      state.className = "editor-state ok";
      onValid(answer);
    } catch (error) {
      if (ask !== asked) return;
      if (!(error instanceof ApiError) || error.status !== 422) {
        state.textContent = `Could not validate: ${error.message}`;
        return;
      }
      valid = false;
      const found = (error.body.faults ?? [{ path: "$", message: error.body.message }]).map((f) => ({
        ...f,
        line: lineOf(text, f.path),
        step: stepOf(text, f.path),
      }));
      faultLines = new Map(found.map((f) => [f.line, f.message]));
      faults.replaceChildren(
        ...found.map((f) => {
          const jump = h("button", { type: "button", class: "link" }, `line ${f.line + 1}`);
          jump.addEventListener("click", () => goTo(f.line));
          return h("li", {}, jump, ` ${f.path}: ${f.message}`);
        }),
      );
      state.textContent = `${found.length} fault${found.length === 1 ? "" : "s"}.`;
      state.className = "editor-state bad";
      onFaults(found);
    }
    drawGutter();
  }

  let timer = 0;
  area.addEventListener("input", () => {
    drawGutter();
    clearTimeout(timer);
    timer = setTimeout(validate, PAUSE_MS);
  });
  area.addEventListener("keydown", (e) => {
    // Tab indents (two spaces) instead of leaving; Escape then Tab leaves the editor.
    if (e.key === "Tab" && !e.shiftKey && !area.dataset.leaving) {
      e.preventDefault();
      area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end");
      area.dispatchEvent(new Event("input"));
    }
    area.dataset.leaving = e.key === "Escape" ? "1" : "";
  });

  const save = async () => {
    await sendYaml(`/v1/flows/${pathPart(flowId)}`, "PUT", area.value);
    state.textContent = "Draft saved.";
    state.className = "editor-state ok";
  };
  drawGutter();
  const element = h(
    "section",
    { class: "editor", "aria-label": "Flow document" },
    h("label", { for: "flow-yaml" }, "Flow document (YAML)"),
    h("p", { class: "hint" }, "Tab indents; Escape then Tab leaves the editor."),
    h("div", { class: "code" }, gutter, area),
    state,
    faults,
  );
  return { element, save, validate, text: () => area.value, isValid: () => valid };
}
