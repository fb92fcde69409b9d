// The operator API from the page: the key lives in sessionStorage (gone when the
// tab closes) and goes out as a Bearer token on every request.
const KEY = "csms.apiKey";

export const apiKey = () => sessionStorage.getItem(KEY);
export const setApiKey = (key) => sessionStorage.setItem(KEY, key);
export const clearApiKey = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${apiKey()}`, ...extra };
}

/** JSON from /api/v1{path}; throws ApiError with the server's message on 4xx/5xx. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders(body === undefined ? {} : { "Content-Type": "application/json" });
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  // A key revoked while the page is open: the app shows the login again.
  if (res.status === 401) window.dispatchEvent(new CustomEvent("csms:unauthorized"));
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** Whether an optional part of the API exists (anything but 404 counts as present). */
export async function exists(path) {
  try {
    const res = await fetch(`/api/v1${path}`, { headers: authHeaders() });
    return res.status !== 404;
  } catch {
    return false;
  }
}

/** Download /api/v1{path} as a file (CSV): a plain link could not send the key. */
export async function download(path, filename) {
  const res = await fetch(`/api/v1${path}`, { headers: authHeaders() });
  if (!res.ok) throw new ApiError(res.status, null);
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((item) => q.append(k, item));
    else if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
