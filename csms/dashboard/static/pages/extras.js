// Pages for parts of the CSMS that other services add: sites (smart charging,
// /api/v1/sites) and alerts (monitoring, /api/v1/alerts). app.js shows them
// only when their endpoint answers; they show what the API returns, nothing
// made up.
import { api, query } from "../api.js";
import { loadChart } from "../charts.js";
import { confirmAction } from "../commands.js";
import { watch } from "../live.js";
import { ago, errorBox, h, itemsOf, num, objectTable, section, table, time } from "../ui.js";

// -- sites --------------------------------------------------------------------

export async function renderSites(main) {
  const box = h("div", { "data-testid": "site-list" });
  main.append(h("h1", {}, "Sites"), box);
  const refresh = async () => {
    const sites = itemsOf(await api("/sites"));
    box.replaceChildren(sites.length
      ? table(["Site", "Name", "Limit per line (A)", "Power limit (kW)", "Demand response"], sites.map((s) => [
          h("a", { href: `#/sites/${encodeURIComponent(s.site_id)}` }, s.site_id), s.name || "–", num(s.phase_limit_a),
          num(s.power_limit_kw), s.demand_response ? `cut to ${s.demand_response.limit_a} A until ${s.demand_response.until ? time(s.demand_response.until) : "lifted"}` : "–"]))
      : h("p", { class: "muted" }, "No site configured."));
  };
  await refresh();
  return watch(() => refresh().catch(() => {}));
}

const HISTORY_MS = 10_000;
const maxOf = (values) => (values && values.length ? Math.max(...values) : null);

export async function renderSite(main, [siteId], ctx) {
  const facts = h("dl", { class: "facts" });
  const chartBox = h("div", { class: "chart-box", "data-testid": "site-load-chart" });
  const sessions = h("div", {});
  const profilesBox = h("div", {});
  const control = h("div", { class: "actions" });
  main.append(...[h("p", {}, h("a", { href: "#/sites" }, "‹ Sites")), h("h1", {}, `Site ${siteId}`), facts,
    ctx.me.can_command ? section("Demand response", control) : null,
    section("Load against the limit, last 24 h (A per line, from the stored plans)", chartBox),
    section("Sessions: allocation and measured draw", sessions),
    section("Profiles sent, last 24 h", profilesBox)].filter(Boolean));
  let chart = null;
  let historyAt = 0;
  const chartWindow = { from: 0, to: 0 }; // read by the chart's x scale at every redraw
  const id = encodeURIComponent(siteId);

  // The load over the last 24 h comes from the stored plans (any node, any restart);
  // it is re-read every HISTORY_MS, the facts and sessions at every refresh.
  async function loadHistory() {
    const past = await api(`/dashboard/sites/${id}/history?hours=24`);
    const history = { t: [], limit: [], a1: [], a2: [], a3: [], m1: [], m2: [], m3: [] };
    for (const p of past.points) {
      history.t.push(Date.parse(p.t) / 1000);
      history.limit.push(p.limit_a);
      ["a1", "a2", "a3"].forEach((k, i) => history[k].push(p.allocated_a[i]));
      ["m1", "m2", "m3"].forEach((k, i) => history[k].push(p.measured_a[i]));
    }
    chartWindow.from = Date.parse(past.from) / 1000;
    chartWindow.to = Date.parse(past.to) / 1000;
    if (chart) chart.update(history);
    else chart = loadChart(chartBox, history, chartWindow);
    chartBox.dataset.points = String(history.t.length);
    chartBox.dataset.since = past.points.length ? past.points[0].t : "";
    const shown = past.profiles.length < past.profiles_total ? ` (newest ${past.profiles.length} of ${past.profiles_total})` : "";
    profilesBox.replaceChildren(
      h("p", { class: "muted" }, `${past.profiles_total} profiles sent${shown}.`),
      table(["Sent", "Charger", "EVSE", "Purpose", "Limit (A)", "Was (A)", "Answer", "Why"],
        past.profiles.map((p) => [time(p.at), p.charge_point_id, p.evse_id, p.purpose, num(p.limit_a),
          num(p.previous_limit_a), p.status, p.reason]), { "data-testid": "site-profiles" }));
  }

  async function refresh() {
    const [site, load] = await Promise.all([api(`/sites/${id}`), api(`/sites/${id}/load`)]);
    facts.replaceChildren(...[
      ["Name", site.name || "–"], ["Limit per line", `${num(site.phase_limit_a)} A`], ["Power limit", `${num(site.power_limit_kw)} kW`],
      ["Limit in force", `${num(load.limit_a)} A`], ["Allocated (max line)", `${num(maxOf(load.allocated_a))} A`],
      ["Measured (max line)", `${num(maxOf(load.measured_a))} A`], ["Planned", `${ago(load.planned_at)} (${load.reason})`],
      ["Demand response", site.demand_response ? `cut to ${site.demand_response.limit_a} A until ${site.demand_response.until ? time(site.demand_response.until) : "lifted"}` : "none"],
    ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)]));
    if (Date.now() - historyAt > HISTORY_MS) {
      historyAt = Date.now();
      await loadHistory();
    }
    sessions.replaceChildren(objectTable(load.sessions || [], { "data-testid": "site-sessions" }));
    if (ctx.me.can_command && !control.childElementCount) {
      control.append(
        h("button", { "data-testid": "dr-cut", onclick: () => cut() }, "Cut the site's limit…"),
        h("button", { "data-testid": "dr-lift", onclick: () => lift() }, "Lift the cut…"));
    }
  }

  const cut = () => confirmAction({
    name: "demand-response", title: `Demand-response cut at ${siteId}`,
    text: "Every line of the site is held at this current until the cut ends or is lifted; sessions are re-planned at once.",
    fields: [{ name: "limit_a", label: "Limit per line (A)", type: "number", value: "" },
      { name: "minutes", label: "For minutes (blank = until lifted)", type: "number", value: "", required: false }],
    send: async (v) => {
      const body = { limit_a: Number(v.limit_a) };
      if (v.minutes) body.duration_s = Number(v.minutes) * 60;
      const site = await api(`/sites/${id}/demand-response`, { method: "POST", body });
      return { text: `Cut in force: ${JSON.stringify(site.demand_response)}` };
    },
  }).then(() => refresh().catch(() => {}));

  const lift = () => confirmAction({
    name: "demand-response-lift", title: `Lift the cut at ${siteId}?`, text: "The site's own limits apply again.",
    send: async () => {
      await api(`/sites/${id}/demand-response`, { method: "DELETE" });
      return { text: "Cut lifted." };
    },
  }).then(() => refresh().catch(() => {}));

  await refresh();
  return watch(() => refresh().catch((err) => facts.replaceChildren(errorBox(err))));
}

// -- alerts -------------------------------------------------------------------

/** A table of alerts with acknowledge / resolve buttons for operators; after() refreshes. */
export function alertTable(alerts, canCommand, after) {
  if (!alerts.length) return h("p", { class: "muted" }, "No alert.");
  const act = (alert, verb) => confirmAction({
    name: `alert-${verb}`, title: `${verb === "acknowledge" ? "Acknowledge" : "Resolve"} alert ${alert.id}?`,
    text: verb === "acknowledge" ? "It stays open until the fault clears, marked as seen by you." : "It is closed now; if the fault is still there, a new alert opens.",
    send: async () => {
      const row = await api(`/alerts/${alert.id}/${verb}`, { method: "POST" });
      return { text: `Alert ${row.id} is ${row.status}.` };
    },
  }).then(after);
  const headers = ["Severity", "Charger", "Rule", "Message", "First seen", "Last seen", "Count", "Status"];
  if (canCommand) headers.push("");
  return table(headers, alerts.map((a) => {
    const cells = [
      h("span", { class: `badge sev-${a.severity}` }, a.severity),
      a.charge_point_id ? h("a", { href: `#/chargers/${encodeURIComponent(a.charge_point_id)}` }, a.charge_point_id) : "–",
      a.rule, a.message, time(a.first_seen), ago(a.last_seen), a.count, a.status,
    ];
    if (canCommand) {
      cells.push(h("span", { class: "actions" },
        a.status === "open" ? h("button", { onclick: () => act(a, "acknowledge") }, "Acknowledge…") : null,
        a.status !== "resolved" ? h("button", { onclick: () => act(a, "resolve") }, "Resolve…") : null));
    }
    return h("tr", { "data-alert": a.id }, cells.map((c) => h("td", {}, c)));
  }), { "data-testid": "alert-table" });
}

export async function renderAlerts(main, _params, ctx) {
  const statusSelect = h("select", { name: "status", "data-testid": "alert-status" },
    [["unresolved", "Unresolved"], ["open", "Open"], ["acknowledged", "Acknowledged"], ["resolved", "Resolved"], ["", "All"]]
      .map(([v, t]) => h("option", { value: v }, t)));
  const box = h("div", { "data-testid": "alert-list" });
  main.append(h("h1", {}, "Alerts"), h("div", { class: "filters" }, statusSelect), box);
  const refresh = async () => {
    try {
      const alerts = itemsOf(await api(`/alerts${query({ status: statusSelect.value, limit: 200 })}`));
      box.replaceChildren(alertTable(alerts, ctx.me.can_command, refresh));
    } catch (err) {
      box.replaceChildren(errorBox(err));
    }
  };
  statusSelect.addEventListener("change", refresh);
  await refresh();
  return watch(() => refresh());
}
