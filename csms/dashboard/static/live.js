// Live updates. Pages register a refresh function with watch(); this module
// calls it when something may have changed. The switch: if the CSMS answers
// GET /api/v1/stream with a server-sent-event stream, each event (coalesced)
// triggers a refresh; otherwise (404, no stream yet) it polls every POLL_MS.
// fetch() reads the stream, not EventSource, because EventSource cannot send
// the Authorization header.
import { authHeaders } from "./api.js";

export const POLL_MS = 2000;
const COALESCE_MS = 500; // a burst of events (meter values) -> one refresh
const RETRY_STREAM_MS = 60000;

const listeners = new Set();
let mode = "off";
let pollTimer = null;
let pending = null;
let onMode = () => {};

export const liveMode = () => mode;

/** Call fn(event | null) on every update until the returned function is called. */
export function watch(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify(event) {
  for (const fn of [...listeners]) {
    try {
      fn(event);
    } catch (err) {
      console.error(err);
    }
  }
}

function notifySoon(event) {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    notify(event);
  }, COALESCE_MS);
}

function setMode(next) {
  mode = next;
  onMode(mode);
}

function startPolling() {
  if (pollTimer) return;
  setMode("poll");
  pollTimer = setInterval(() => notify(null), POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

/** SSE frames ("data: ...\n\n") from a fetch body; calls onEvent per complete event. */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data) continue; // comments / keep-alives
      let event = data;
      try {
        event = JSON.parse(data);
      } catch {
        /* a plain-text event is still a reason to refresh */
      }
      onEvent(event);
    }
  }
}

async function tryStream() {
  let res;
  try {
    res = await fetch("/api/v1/stream", { headers: authHeaders({ Accept: "text/event-stream" }) });
  } catch {
    return false;
  }
  const type = res.headers.get("content-type") || "";
  if (!res.ok || !type.includes("text/event-stream") || !res.body) {
    res.body?.cancel();
    return false;
  }
  stopPolling();
  setMode("stream");
  readEvents(res.body, notifySoon)
    .catch(() => {})
    .finally(() => {
      // The stream ended (CSMS restart, network): poll, and try the stream again later.
      startPolling();
      setTimeout(connect, RETRY_STREAM_MS);
    });
  return true;
}

async function connect() {
  if (!(await tryStream())) {
    startPolling();
    if (mode === "poll") setTimeout(connect, RETRY_STREAM_MS);
  }
}

/** Start live updates once per page load; report the mode ("stream"/"poll") to show it. */
export function startLive(reportMode) {
  onMode = reportMode;
  if (mode === "off") connect();
}
