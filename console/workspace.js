// The workspace: segments with their members, and its settings (secrets as the API masks them).
import { api, pathPart } from "./api.js";
import { h } from "./dom.js";
import { describe } from "./shell.js";

const PAGE = 50;

export async function segmentsPage(show) {
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

export async function segmentPage(show, segmentId, offset) {
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

export async function settingsPage(show) {
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
