// Fleet overview: counts at the top, a filter, one page of chargers at a time
// (the server filters and pages: 5,000 chargers cost the same as 50).
import { api, query } from "../api.js";
import { watch } from "../live.js";
import { ago, connectedDot, errorBox, h, itemsOf, statusBadge, table } from "../ui.js";

const PAGE = 50;
const STATUSES = ["Available", "Occupied", "Reserved", "Unavailable", "Faulted"];
// The filter survives navigating to a charger and back.
const state = { q: "", connected: "", protocol: "", connector_status: "", offset: 0 };

function count(label, value, testid, cls = "") {
  return h("div", { class: `count ${cls}` }, h("div", { class: "value", "data-testid": testid }, value ?? 0), h("div", { class: "label" }, label));
}

function select(name, label, options) {
  const el = h("select", { name, "aria-label": label, "data-testid": `filter-${name}` },
    h("option", { value: "" }, label), options.map(([v, text]) => h("option", { value: v, selected: state[name] === v }, text)));
  return el;
}

export async function render(main, _params, ctx) {
  const counts = h("div", { class: "counts", id: "counts" });
  const search = h("input", { type: "search", name: "q", placeholder: "Search id, vendor, model", value: state.q, "data-testid": "filter-q" });
  const filters = h("form", { class: "filters", id: "filters" },
    search,
    select("connected", "Any connection", [["true", "Online"], ["false", "Offline"]]),
    select("protocol", "Any protocol", [["ocpp1.6", "OCPP 1.6J"], ["ocpp2.0.1", "OCPP 2.0.1"]]),
    select("connector_status", "Any connector status", STATUSES.map((s) => [s, s])));
  const list = h("div", { id: "charger-list" });
  const pager = h("div", { class: "pager", id: "pager" });
  main.append(h("h1", {}, "Chargers"), counts, filters, list, pager);

  let busy = false;
  let again = false;
  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const started = performance.now();
      const data = await api(`/dashboard/overview${query({ ...state, limit: PAGE })}`);
      const alerts = ctx.features.alerts ? await openAlertsByCharger() : null;
      draw(data, alerts);
      main.dataset.loadedMs = Math.round(performance.now() - started);
    } catch (err) {
      list.replaceChildren(errorBox(err));
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  function draw(data, alerts) {
    const c = data.counts;
    counts.replaceChildren(
      count("chargers", c.chargers, "count-chargers"),
      count("online", c.connected, "count-connected", "good"),
      count("offline", c.disconnected, "count-disconnected", c.disconnected ? "bad" : ""),
      count("active sessions", c.active_sessions, "count-active-sessions"),
      ...STATUSES.map((s) => count(`connectors ${s.toLowerCase()}`, c.connectors[s] || 0, `count-${s}`, `s-${s}`)));
    const headers = ["Charger", "Connection", "Protocol", "Vendor / model", "Connectors", "Sessions", "Last seen"];
    if (alerts) headers.push("Alerts");
    const rows = data.items.map((ch) => {
      const cells = [
        h("a", { href: `#/chargers/${encodeURIComponent(ch.charge_point_id)}` }, ch.charge_point_id),
        connectedDot(ch.connected),
        ch.protocol || "–",
        [ch.vendor, ch.model].filter(Boolean).join(" ") || "–",
        h("span", { class: "connectors" }, ch.connectors.map((k) =>
          statusBadge(k.status, k.detail, { "data-testid": `connector-${ch.charge_point_id}-${k.evse_id}-${k.connector_id}` }))),
        ch.active_sessions,
        h("span", { title: ch.last_seen_at || "" }, ago(ch.last_seen_at)),
      ];
      if (alerts) cells.push(alerts.get(ch.charge_point_id) || 0);
      return h("tr", { "data-charger": ch.charge_point_id }, cells.map((x) => h("td", {}, x)));
    });
    list.replaceChildren(rows.length ? table(headers, rows, { "data-testid": "charger-table" }) : h("p", { class: "muted" }, "No charger matches."));
    const last = Math.min(data.offset + data.items.length, data.total);
    pager.replaceChildren(
      h("button", { disabled: data.offset === 0, onclick: () => move(-PAGE) }, "‹ Previous"),
      h("span", { "data-testid": "pager-text" }, data.total ? `${data.offset + 1}–${last} of ${data.total}` : "0 of 0"),
      h("button", { disabled: last >= data.total, onclick: () => move(PAGE) }, "Next ›"));
  }

  function move(delta) {
    state.offset = Math.max(0, state.offset + delta);
    refresh();
  }

  let typing = null;
  filters.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      for (const el of filters.elements) state[el.name] = el.value;
      state.offset = 0;
      refresh();
    }, 250);
  });
  filters.addEventListener("submit", (e) => e.preventDefault());

  await refresh();
  return watch(() => refresh());
}

// When the monitoring service is present: unresolved alerts per charger (this page's rows).
async function openAlertsByCharger() {
  const byCharger = new Map();
  try {
    for (const alert of itemsOf(await api("/alerts?status=unresolved&limit=1000"))) {
      if (alert.charge_point_id) byCharger.set(alert.charge_point_id, (byCharger.get(alert.charge_point_id) || 0) + 1);
    }
  } catch {
    return null;
  }
  return byCharger;
}
