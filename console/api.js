// The /v1 API with the signed-in key. The key lives in sessionStorage: it is gone when the tab
// closes, and other sites cannot read it.
const KEY = "flowline.api-key";

export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (key) => sessionStorage.setItem(KEY, key),
  signOut: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `the API answered ${status}`);
    this.status = status;
    this.body = body;
  }
}

// Relative to the page (/console/), so a proxy prefix in front of the API is kept.
const base = new URL("../", document.baseURI);

// ``body`` is sent as JSON, ``yaml`` (a flow document's text) as YAML.
export async function api(path, { method = "GET", body, yaml, key = session.key() } = {}) {
  const headers = { Authorization: `Bearer ${key}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (yaml !== undefined) headers["Content-Type"] = "application/yaml";
  const response = await fetch(new URL(path.replace(/^\//, ""), base), {
    method,
    headers,
    body: yaml ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { message: text };
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export const pathPart = (value) => encodeURIComponent(value);
