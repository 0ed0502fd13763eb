// Flow documents as YAML for the editor. Only JSON values are written (what the API answers):
// strings that could read as something else are double-quoted, which YAML reads as JSON strings.
const PLAIN = /^[A-Za-z_][\w./-]*( [\w./-]+)*$/;
const RESERVED = /^(y|n|yes|no|true|false|on|off|null|~)$/i;

function scalar(value) {
  if (value === null) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
}

const nested = (v) => v !== null && typeof v === "object" && Object.keys(v).length > 0;
const inline = (v) => (Array.isArray(v) ? "[]" : v !== null && typeof v === "object" ? "{}" : scalar(v));

function emit(value, indent) {
  const lines = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      if (!nested(item)) {
        lines.push(`${indent}- ${inline(item)}`);
        continue;
      }
      const inner = emit(item, `${indent}  `);
      inner[0] = `${indent}- ${inner[0].slice(indent.length + 2)}`;
      lines.push(...inner);
    }
    return lines;
  }
  for (const [key, item] of Object.entries(value)) {
    if (nested(item)) lines.push(`${indent}${scalar(key)}:`, ...emit(item, `${indent}  `));
    else lines.push(`${indent}${scalar(key)}: ${inline(item)}`);
  }
  return lines;
}

export const toYaml = (document) => `${emit(document, "").join("\n")}\n`;

// The line (0-based) of a fault's document path ("$.steps[2].next.timeout") in YAML written in
// block style, found by indentation; the nearest enclosing line when the exact one is not found.
export function lineOf(text, path) {
  const lines = text.split("\n");
  const indentOf = (line) => line.length - line.trimStart().length;
  const tokens = [...path.matchAll(/\.([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[1] !== undefined ? m[1] : Number(m[2])));
  let from = 0, to = lines.length, parent = -1, found = 0;
  const blockEnd = (start, col) => {
    for (let j = start + 1; j < lines.length; j++) {
      const line = lines[j];
      if (!line.trim() || line.trimStart().startsWith("#")) continue;
      const at = indentOf(line);
      if (at < col || (at === col && !line.trimStart().startsWith("- "))) return j;
      if (at === col && lines[start].trimStart().startsWith("- ") && indentOf(lines[start]) === col) return j;
    }
    return lines.length;
  };
  for (const token of tokens) {
    let hit = -1, col = 0;
    if (typeof token === "number") {
      const items = [];
      let shallowest = Infinity;
      for (let i = from; i < to; i++) {
        const match = /^(\s*(?:- )*)- /.exec(lines[i]);
        if (!match || match[1].length <= parent) continue;
        if (match[1].length < shallowest) {
          shallowest = match[1].length;
          items.length = 0;
        }
        if (match[1].length === shallowest) items.push(i);
      }
      if (token >= items.length) break;
      hit = items[token];
      col = shallowest;
      [from, to, parent] = [hit, blockEnd(hit, col), col];
    } else {
      const escaped = token.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const key = new RegExp(`^(\\s*(?:- )*)(["']?)${escaped}\\2\\s*:`);
      for (let i = from; i < to; i++) {
        const match = key.exec(lines[i]);
        if (match && match[1].length > parent) {
          hit = i;
          col = match[1].length;
          break;
        }
      }
      if (hit < 0) break;
      [from, to, parent] = [hit + 1, blockEnd(hit, col), col - 1];
    }
    found = hit;
  }
  return found;
}
