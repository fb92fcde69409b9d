// Small DOM and formatting helpers shared by the pages.

/** An element: h("a", {href: "#/"}, "text", child, ...); attrs starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const byId = (id) => document.getElementById(id);

export function ago(ts) {
  if (!ts) return "never";
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 0) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export const time = (ts) => (ts ? new Date(ts).toLocaleString() : "–");

export function num(value, digits = 1) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

export const kwh = (wh) => (wh === null || wh === undefined ? "–" : `${(wh / 1000).toFixed(2)} kWh`);

export function minutes(start, end) {
  if (!start) return "–";
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  // A charger whose clock runs ahead of ours (or a simulator's fast clock) starts "in the future".
  return ms < 0 ? "just started" : `${Math.round(ms / 60000)} min`;
}

/** A connector status as a coloured badge; the text is the status (tests read it). */
export function statusBadge(status, detail, extra = {}) {
  const title = detail && detail !== status ? `${status} (${detail})` : status;
  return h("span", { class: `badge s-${status}`, title, ...extra }, status);
}

export function connectedDot(connected) {
  return h("span", { class: connected ? "dot on" : "dot off", title: connected ? "connected" : "offline" },
    connected ? "online" : "offline");
}

/** A table with a header row; rows are arrays of cells (strings or nodes). */
export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((cells) => (cells instanceof Node ? cells : h("tr", {}, cells.map((c) => h("td", {}, c)))))));
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

/** A generic table of objects (for optional parts of the API whose shape we only read). */
export function objectTable(items, attrs = {}) {
  if (!items.length) return h("p", { class: "muted" }, "Nothing yet.");
  const keys = [...new Set(items.flatMap((item) => Object.keys(item)))].slice(0, 10);
  return table(keys, items.map((item) => keys.map((k) => {
    const v = item[k];
    return v !== null && typeof v === "object" ? JSON.stringify(v) : v ?? "–";
  })), attrs);
}

/** The items of a list answer, whether it is {items: [...]} or a bare array. */
export const itemsOf = (data) => (Array.isArray(data) ? data : (data && data.items) || []);
