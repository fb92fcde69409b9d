// One charger: its connectors, current sessions with a live energy/power chart,
// commands (each confirmed, the charger's answer shown), recent messages and
// commands, and (when monitoring is present) its alerts.
import { api, query } from "../api.js";
import { energyPowerChart } from "../charts.js";
import { confirmCommand } from "../commands.js";
import { watch } from "../live.js";
import { ago, connectedDot, errorBox, h, itemsOf, kwh, minutes, section, statusBadge, table, time } from "../ui.js";
import { ocppSections } from "./charger_ocpp.js";
import { alertTable } from "./extras.js";

export async function render(main, [chargerId], ctx) {
  const canCommand = ctx.me.can_command;
  const head = h("div", { id: "charger-head" });
  const actions = h("div", { class: "actions", id: "charger-actions" });
  const connectors = h("div", { id: "connectors" });
  const sessions = h("div", { id: "active-sessions" });
  const config = h("div", { id: "configuration" });
  const alerts = h("div", { id: "charger-alerts" });
  const commands = h("div", { id: "recent-commands" });
  const events = h("div", { id: "recent-events" });
  const ocpp = ocppSections(chargerId, canCommand, () => v201());
  let ocppLoaded = false;
  main.append(...[
    h("p", {}, h("a", { href: "#/" }, "‹ All chargers")),
    head,
    canCommand ? actions : null,
    section("Connectors", connectors),
    section("Current sessions", sessions),
    canCommand ? section("Configuration", config) : null,
    ...ocpp.sections,
    ctx.features.alerts ? section("Unresolved alerts", alerts) : null,
    section("Recent commands", commands),
    section("Recent messages", events)].filter(Boolean));

  const charts = new Map(); // session id -> chart, updated in place
  let charger = null;

  async function run(spec) {
    await confirmCommand({ chargerId, ...spec });
    refresh();
  }

  const v201 = () => charger && charger.protocol === "ocpp2.0.1";

  function chargerActions() {
    const reset = v201()
      ? { fields: [{ name: "when", label: "When", options: ["immediate", "on_idle"], value: "on_idle" }], build: (v) => ({ when: v.when }) }
      : { fields: [{ name: "type", label: "Type", options: ["soft", "hard"], value: "soft" }], build: (v) => ({ type: v.type }) };
    actions.replaceChildren(
      h("button", { "data-testid": "cmd-reset", onclick: () => run({ command: "reset", title: `Reset ${chargerId}?`, text: "The charger restarts; sessions in progress may stop.", ...reset }) }, "Reset…"),
      h("button", { "data-testid": "cmd-unavailable", onclick: () => run({ command: "change_availability", title: `Take ${chargerId} out of service?`, text: "The whole charger becomes Unavailable: no new sessions.", build: () => ({ operative: false, connector_id: 0 }) }) }, "Make unavailable…"),
      h("button", { "data-testid": "cmd-available", onclick: () => run({ command: "change_availability", title: `Put ${chargerId} back in service?`, text: "The whole charger becomes Available.", build: () => ({ operative: true, connector_id: 0 }) }) }, "Make available…"));
  }

  function connectorRow(k) {
    const key = `${k.evse_id}-${k.connector_id}`;
    const cells = [
      k.evse_id, k.connector_id,
      statusBadge(k.status, k.detail, { "data-testid": `connector-status-${key}` }),
      k.detail || "–", k.error_code || "–", h("span", { title: time(k.status_at) }, ago(k.status_at)),
    ];
    if (canCommand) {
      const evse = k.evse_id;
      cells.push(h("span", { class: "actions" },
        h("button", { "data-testid": `cmd-start-${key}`, onclick: () => run({
          command: "remote_start", title: `Start a session on ${chargerId} #${evse}?`, text: "The charger is asked to start charging for this id token.",
          fields: [{ name: "id_token", label: "Id token", value: "" }],
          build: (v) => ({ id_token: v.id_token, connector_id: evse }) }) }, "Start…"),
        h("button", { "data-testid": `cmd-unlock-${key}`, onclick: () => run({
          command: "unlock_connector", title: `Unlock connector ${key}?`, text: "The cable is released; a session on it stops.",
          build: () => (v201() ? { connector_id: evse, evse_connector_id: k.connector_id } : { connector_id: evse }) }) }, "Unlock…"),
        k.status === "Unavailable"
          ? h("button", { onclick: () => run({ command: "change_availability", title: `Make #${evse} available?`, text: "The connector accepts sessions again.", build: () => ({ operative: true, connector_id: evse }) }) }, "Make available…")
          : h("button", { onclick: () => run({ command: "change_availability", title: `Make #${evse} unavailable?`, text: "The connector accepts no new session.", build: () => ({ operative: false, connector_id: evse }) }) }, "Make unavailable…")));
    }
    return h("tr", { "data-connector": key }, cells.map((c) => h("td", {}, c)));
  }

  async function drawSessions(active) {
    const seen = new Set();
    for (const s of active) {
      seen.add(s.id);
      let entry = charts.get(s.id);
      if (!entry) {
        const chartBox = h("div", { class: "chart-box", "data-testid": `session-chart-${s.id}` });
        const facts = h("div", { class: "facts" });
        const stop = canCommand
          ? h("button", { "data-testid": `cmd-stop-${s.id}`, onclick: () => run({
              command: "remote_stop", title: `Stop session ${s.transaction_id}?`, text: "The charger is asked to end this transaction.",
              build: () => ({ transaction_id: s.transaction_id }) }) }, "Stop…")
          : null;
        const card = h("div", { class: "session-card", "data-session": s.id },
          h("h3", {}, h("a", { href: `#/sessions/${s.id}` }, `Session ${s.transaction_id}`), " on #", s.evse_id, " ", stop), facts, chartBox);
        sessions.append(card);
        entry = { card, facts, chartBox, chart: null };
        charts.set(s.id, entry);
      }
      entry.facts.replaceChildren(h("span", {}, `token ${s.id_token || "–"}`), h("span", {}, `started ${time(s.started_at)}`),
        h("span", {}, minutes(s.started_at)), h("span", { "data-testid": `session-energy-${s.id}` }, kwh(s.energy_wh)), h("span", {}, s.charging_state || ""));
      const curve = await api(`/dashboard/sessions/${s.id}/curve`);
      entry.chartBox.dataset.points = curve.t.length;
      if (entry.chart) entry.chart.update(curve);
      else entry.chart = energyPowerChart(entry.chartBox, curve);
    }
    for (const [id, entry] of charts) {
      if (!seen.has(id)) {
        entry.card.remove();
        charts.delete(id);
      }
    }
    const empty = sessions.querySelector(".empty");
    if (!active.length && !empty) sessions.append(h("p", { class: "muted empty" }, "No session in progress."));
    if (active.length && empty) empty.remove();
  }

  function drawHead() {
    const c = charger;
    head.replaceChildren(
      h("h1", {}, c.charge_point_id, " ", connectedDot(c.connected)),
      h("dl", { class: "facts" },
        ...[["Protocol", c.protocol], ["Vendor", c.vendor], ["Model", c.model], ["Serial", c.serial_number],
          ["Firmware", c.firmware_version], ["Registration", c.registration], ["Security profile", c.security_profile],
          ["Last seen", ago(c.last_seen_at)], [c.connected ? "Connected" : "Disconnected", time(c.connected ? c.connected_at : c.disconnected_at)],
          ["Last boot", `${time(c.last_boot_at)} ${c.last_boot_reason || ""}`],
          ["Schedule units", c.charging_rate_units ? c.charging_rate_units.units.join(", ") : null],
          ...unsupportedFact(c.unsupported_actions || [])]
          .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")])));
  }

  // What the charger does not take (it answered NotImplemented/NotSupported, or its
  // device model lacks the feature): the CSMS stops sending what it can do without.
  function unsupportedFact(actions) {
    if (!actions.length) return [];
    const why = (a) => `${a.action}: ${a.source === "call_error" ? "answered" : "device model says"} ${a.detail} (${time(a.learned_at)})`;
    return [["Does not support", h("span", { "data-testid": "unsupported-actions", title: actions.map(why).join("\n") },
      actions.map((a) => a.action).join(", "))]];
  }

  function drawConfig() {
    if (config.childElementCount) return;
    if (v201()) {
      config.append(h("p", { class: "muted" }, "OCPP 2.0.1: the configuration is the device model, below."));
      return;
    }
    config.append(h("button", { "data-testid": "cmd-get-configuration", onclick: async () => {
      const result = await confirmCommand({ chargerId, command: "get_configuration", title: `Read ${chargerId}'s configuration?`, text: "The charger is asked for every configuration key." });
      const keys = result && result.response && result.response.configurationKey;
      if (keys) config.replaceChildren(table(["Key", "Value", "Read-only"], keys.map((k) => [k.key, k.value ?? "–", k.readonly ? "yes" : "no"])));
    } }, "Read configuration…"));
  }

  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const [data, activity] = await Promise.all([
        api(`/chargers/${encodeURIComponent(chargerId)}`),
        api(`/dashboard/chargers/${encodeURIComponent(chargerId)}/activity${query({ limit: 20 })}`),
      ]);
      charger = data;
      drawHead();
      if (!ocppLoaded) {
        ocppLoaded = true;
        ocpp.refresh();
      }
      if (canCommand) {
        chargerActions();
        drawConfig();
      }
      const rows = data.connectors.filter((k) => k.evse_id > 0).map(connectorRow);
      const headers = ["EVSE", "Connector", "Status", "Detail", "Error", "Since"];
      if (canCommand) headers.push("Commands");
      connectors.replaceChildren(rows.length ? table(headers, rows, { "data-testid": "connector-table" }) : h("p", { class: "muted" }, "No connector has reported yet."));
      await drawSessions(data.active_sessions);
      commands.replaceChildren(activity.commands.length
        ? table(["Time", "By", "Command", "Outcome", "Answer"], activity.commands.map((c) => [
            time(c.requested_at), c.actor, c.command, c.outcome, c.error || JSON.stringify(c.response)]), { "data-testid": "command-table" })
        : h("p", { class: "muted" }, "No command sent yet."));
      events.replaceChildren(activity.events.length
        ? table(["Time", "Event", "EVSE", "Details"], activity.events.map((e) => [
            time(e.occurred_at), e.type, e.evse_id ?? "–", h("code", {}, summary(e.payload))]), { "data-testid": "event-table" })
        : h("p", { class: "muted" }, "Nothing recorded yet."));
      if (ctx.features.alerts) {
        try {
          const found = itemsOf(await api(`/alerts${query({ charge_point_id: chargerId, status: "unresolved" })}`));
          alerts.replaceChildren(alertTable(found.filter((a) => a.charge_point_id === chargerId), canCommand, refresh));
        } catch (err) {
          alerts.replaceChildren(errorBox(err));
        }
      }
    } catch (err) {
      head.replaceChildren(errorBox(err));
    } finally {
      busy = false;
    }
  }

  await refresh();
  return watch(() => refresh());
}

/** A short line for an event's payload (samples are counted, not listed). */
function summary(payload) {
  const parts = [];
  for (const [k, v] of Object.entries(payload || {})) {
    if (v === null || v === undefined || k === "session") continue;
    if (Array.isArray(v)) parts.push(`${k}: ${v.length}`);
    else if (typeof v === "object") continue;
    else parts.push(`${k}=${v}`);
  }
  return parts.join(" ").slice(0, 160);
}
