// Analytics over a date range: the summary, per-bucket charts, the duration
// and energy distributions, per-charger (and per-site) figures, and CSV
// downloads. Numbers come from /api/v1/analytics (SQL over sessions, meter
// readings and billing's CDRs: revenue per currency, never summed across
// currencies); availability comes from monitoring's /api/v1/availability (and
// /api/v1/chargers/{id}/availability for one selected charger's downtime) when
// the CSMS has it (those parts are left out when the endpoint is 404).
import { api, ApiError, download, query } from "../api.js";
import { bucketChart, histogramChart } from "../charts.js";
import { errorBox, h, itemsOf, num, table, time } from "../ui.js";

const day = (d) => d.toISOString().slice(0, 10);
const today = new Date();
const form = {
  from: day(new Date(today.getTime() - 6 * 86400000)),
  to: day(today),
  tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
  bucket: "day",
  chargers: "",
  site: "",
};

function params() {
  const ids = form.chargers.split(/[\s,]+/).filter(Boolean);
  return { from: form.from, to: form.to, tz: form.tz, charge_point_id: ids, site_id: form.site };
}

function card(label, value, testid) {
  return h("div", { class: "count" }, h("div", { class: "value", "data-testid": testid }, value), h("div", { class: "label" }, label));
}

/** The range as monitoring reports it: [start, min(end, now)); null if it is all in the future. */
function window(fleet) {
  const start = fleet.buckets[0].start;
  const end = new Date(Math.min(Date.now(), new Date(fleet.buckets[fleet.buckets.length - 1].end).getTime())).toISOString();
  return new Date(end) <= new Date(start) ? null : { from: start, to: end };
}

const pct = (part, whole) => (whole > 0 ? (100 * part) / whole : null);

/** A charger's connectors' usable time as a % of their observed time (time-weighted). */
function usable(report) {
  const observed = report.connectors.reduce((a, c) => a + c.observed_seconds, 0);
  return pct(report.connectors.reduce((a, c) => a + c.usable_seconds, 0), observed);
}

/**
 * Monitoring's availability over the range for the chargers shown: online % of
 * the selection (time-weighted, so a charger known for half the range counts
 * half) and per charger online and usable %; null when the CSMS has no monitoring.
 */
async function availability(fleet, chargerIds) {
  const span = window(fleet);
  if (!span) return null;
  let report;
  try {
    report = await api(`/availability${query(span)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
  const shown = new Set(chargerIds);
  const mine = report.chargers.filter((c) => shown.has(c.charge_point_id));
  const sum = (key) => mine.reduce((a, c) => a + c[key], 0);
  return {
    online: pct(sum("online_seconds"), sum("observed_seconds")),
    byCharger: new Map(mine.map((c) => [c.charge_point_id, { online: c.online_percent, usable: usable(c) }])),
  };
}

/** One charger's downtime over the range (monitoring's per-charger report), or null. */
async function downtime(fleet, chargerId) {
  const span = window(fleet);
  if (!span) return null;
  try {
    return await api(`/chargers/${encodeURIComponent(chargerId)}/availability${query(span)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** Revenue entries ({currency, total, ...}) as "5.95 EUR · 6.81 CHF". */
const money = (entries) => (entries && entries.length ? entries.map((e) => `${e.total} ${e.currency}`).join(" · ") : "–");

function downtimeSection(report) {
  const rows = report.downtime.map((d) => [time(d.from), d.to ? time(d.to) : "ongoing"]);
  return h("div", { "data-testid": "analytics-downtime" },
    h("h2", {}, `Availability of ${report.charge_point_id}: ${num(report.online_percent)} % online`),
    rows.length ? table(["Offline from", "to"], rows) : h("p", { class: "muted" }, "No downtime in the range."),
    table(["EVSE", "Connector", "Usable %"], report.connectors.map((c) => [c.evse_id, c.connector_id, num(c.usable_percent)])));
}

export async function render(main, _params, ctx) {
  const field = (name, label, type = "text") =>
    h("label", {}, label, " ", h("input", { name, type, value: form[name], "data-testid": `analytics-${name}` }));
  const controls = h("form", { class: "filters", id: "analytics-form" },
    field("from", "From", "date"), field("to", "To", "date"), field("tz", "Time zone"),
    h("select", { name: "bucket" }, ["day", "hour"].map((b) => h("option", { value: b, selected: form.bucket === b }, `per ${b}`))),
    field("chargers", "Chargers (ids, blank = all)"),
    ctx.features.sites ? h("select", { name: "site", "data-testid": "analytics-site" }, h("option", { value: "" }, "All sites"),
      itemsOf(await api("/sites").catch(() => [])).map((site) => h("option", { value: site.site_id, selected: form.site === site.site_id }, site.name || site.site_id))) : null,
    h("button", { type: "submit", class: "primary" }, "Show"),
    h("button", { type: "button", onclick: () => download(`/analytics/fleet${query({ ...params(), bucket: form.bucket, format: "csv" })}`, `analytics-${form.from}-${form.to}.csv`) }, "CSV per bucket"),
    h("button", { type: "button", onclick: () => download(`/analytics/chargers${query({ ...params(), format: "csv" })}`, `analytics-chargers-${form.from}-${form.to}.csv`) }, "CSV per charger"),
    ctx.features.sites ? h("button", { type: "button", onclick: () => download(`/analytics/sites${query({ from: form.from, to: form.to, tz: form.tz, format: "csv" })}`, `analytics-sites-${form.from}-${form.to}.csv`) }, "CSV per site") : null);
  const out = h("div", { id: "analytics-out" });
  main.append(h("h1", {}, "Analytics"), controls, out);

  let latest = 0; // only the latest request may draw (an earlier, slower one is dropped)
  async function show() {
    const mine = ++latest;
    out.replaceChildren(h("p", { class: "muted" }, "Computing…"));
    const [fleet, chargers, sites] = await Promise.all([
      api(`/analytics/fleet${query({ ...params(), bucket: form.bucket })}`),
      api(`/analytics/chargers${query(params())}`),
      ctx.features.sites && !form.site ? api(`/analytics/sites${query({ from: form.from, to: form.to, tz: form.tz })}`) : null,
    ]);
    const ids = chargers.items.map((row) => row.charge_point_id);
    const [avail, single] = await Promise.all([
      availability(fleet, ids),
      ids.length === 1 ? downtime(fleet, ids[0]) : null,
    ]);
    if (mine !== latest) return;
    const s = fleet.summary;
    const x = fleet.buckets.map((b) => new Date(b.start).getTime() / 1000);
    const series = (key) => fleet.buckets.map((b) => b[key]);
    const charts = h("div", { class: "charts", "data-columns": "2" });
    const histos = h("div", { class: "charts", "data-columns": "2" });
    out.replaceChildren(...[
      h("div", { class: "counts", id: "analytics-summary" },
        card("energy (kWh)", num(s.energy_kwh, 2), "a-energy"),
        card("sessions", s.sessions, "a-sessions"),
        card("occupied %", num(s.occupied_pct), "a-occupied"),
        card("charging %", num(s.charging_pct), "a-charging"),
        card("peak demand (kW)", num(s.peak_kw, 2), "a-peak"),
        card("failed sessions %", num(s.failed_rate_pct), "a-failed"),
        card("avg duration (min)", num(s.avg_duration_min), "a-duration"),
        card("avg idle after full (min)", num(s.avg_idle_after_full_min), "a-idle"),
        avail ? card("chargers online %", num(avail.online), "a-online") : null,
        ...s.revenue.map((r) => card(`revenue ${r.currency} (net ${r.net} + tax ${r.tax}; ${r.sessions} priced)`, r.total, `a-revenue-${r.currency}`))),
      single ? downtimeSection(single) : null,
      charts, h("h2", {}, "Distributions (ended sessions)"), histos,
      sites ? h("h2", {}, "Per site") : null,
      sites ? groupTable("Site", sites.items.map((row) => ({ ...row, name: row.site_id ?? "(no site)" })), null, "analytics-per-site") : null,
      h("h2", {}, "Per charger"),
      groupTable("Charger", chargers.items.map((row) => ({ ...row, name: row.charge_point_id })), avail, "analytics-per-charger"),
    ].filter(Boolean));
    bucketChart(charts, `Energy per ${form.bucket} (kWh)`, x, [{ label: "kWh", values: series("energy_kwh") }], { unit: "kWh" });
    bucketChart(charts, `Sessions per ${form.bucket}`, x, [{ label: "sessions", values: series("sessions") }, { label: "failed", values: series("failed_sessions") }]);
    bucketChart(charts, "Utilisation (%)", x, [{ label: "occupied %", values: series("occupied_pct") }, { label: "charging %", values: series("charging_pct") }], { bars: false, unit: "%" });
    bucketChart(charts, "Peak demand (kW)", x, [{ label: "kW", values: series("peak_kw") }], { unit: "kW" });
    // One chart per currency: amounts in different currencies share no axis.
    for (const currency of s.revenue.map((r) => r.currency)) {
      const totals = fleet.buckets.map((b) => Number((b.revenue.find((r) => r.currency === currency) || { total: 0 }).total));
      bucketChart(charts, `Revenue per ${form.bucket} (${currency}, incl. tax)`, x, [{ label: currency, values: totals }], { unit: currency });
    }
    histogramChart(histos, "Duration (minutes)", fleet.distributions.duration_min, "sessions");
    histogramChart(histos, "Energy (kWh)", fleet.distributions.energy_kwh, "sessions");
  }

  controls.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const el of controls.elements) if (el.name) form[el.name] = el.value;
    try {
      await show();
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  });
  try {
    await show();
  } catch (err) {
    out.replaceChildren(errorBox(err));
  }
  return null; // figures over past days: refreshed on demand, not live
}

/** Figures per charger or site; with availability, "online %" and "usable %" columns. */
function groupTable(what, rows, avail, testid) {
  const headers = [what, "Points", "Energy kWh", "Sessions", "Occupied %", "Charging %", "Peak kW", "Failed %", "Avg idle min", "Revenue"];
  if (avail) headers.push("Online %", "Usable %");
  return table(headers, rows.map((c) => {
    const cells = [c.name, c.charging_points, num(c.energy_kwh, 2), c.sessions, num(c.occupied_pct), num(c.charging_pct),
      num(c.peak_kw, 2), num(c.failed_rate_pct), num(c.avg_idle_after_full_min), money(c.revenue)];
    if (avail) {
      const a = avail.byCharger.get(c.charge_point_id);
      cells.push(num(a && a.online), num(a && a.usable));
    }
    return cells;
  }), { "data-testid": testid });
}
