// Sessions: search by charger, token and start time (newest first, paged by
// id), and one session's detail with its energy curve and, once billing is
// present, its priced record (CDR).
import { api, query } from "../api.js";
import { energyPowerChart } from "../charts.js";
import { watch } from "../live.js";
import { errorBox, h, itemsOf, kwh, minutes, section, table, time } from "../ui.js";

const PAGE = 50;
const filter = { charge_point_id: "", id_token: "", since: "", until: "", status: "" };

const iso = (local) => (local ? new Date(local).toISOString() : "");

export async function render(main) {
  const input = (name, label, type = "text") =>
    h("label", {}, label, " ", h("input", { name, type, value: filter[name], "data-testid": `sessions-${name}` }));
  const form = h("form", { class: "filters", id: "session-filters" },
    input("charge_point_id", "Charger"), input("id_token", "Token"),
    input("since", "Started from", "datetime-local"), input("until", "to", "datetime-local"),
    h("select", { name: "status", "data-testid": "sessions-status" }, [["", "Any status"], ["active", "Active"], ["ended", "Ended"]]
      .map(([v, t]) => h("option", { value: v, selected: filter.status === v }, t))),
    h("button", { type: "submit", class: "primary" }, "Search"));
  const list = h("div", { id: "session-list" });
  const more = h("div", { class: "pager" });
  main.append(h("h1", {}, "Sessions"), form, list, more);

  let pages = [null]; // before_id of each page shown
  async function load(beforeId, append) {
    const params = { ...filter, since: iso(filter.since), until: iso(filter.until), limit: PAGE, before_id: beforeId };
    const data = await api(`/sessions${query(params)}`);
    const rows = data.items.map((s) => h("tr", { "data-session": s.id }, [
      h("a", { href: `#/sessions/${s.id}` }, s.transaction_id),
      h("a", { href: `#/chargers/${encodeURIComponent(s.charge_point_id)}` }, s.charge_point_id),
      s.evse_id ?? "–", s.id_token || "–", s.status, time(s.started_at), minutes(s.started_at, s.ended_at), kwh(s.energy_wh), s.stop_reason || "–",
    ].map((c) => h("td", {}, c))));
    const existing = list.querySelector("tbody");
    if (append && existing) existing.append(...rows);
    else list.replaceChildren(rows.length
      ? table(["Transaction", "Charger", "EVSE", "Token", "Status", "Started", "Duration", "Energy", "Stop reason"], rows, { "data-testid": "session-table" })
      : h("p", { class: "muted" }, "No session matches."));
    more.replaceChildren(data.next_before_id ? h("button", { onclick: () => load(data.next_before_id, true) }, "More") : "");
    return data;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const el of form.elements) if (el.name) filter[el.name] = el.value;
    pages = [null];
    try {
      await load(null, false);
    } catch (err) {
      list.replaceChildren(errorBox(err));
    }
  });
  await load(null, false);
  // Live: the first page refreshes (new sessions appear); pages added with "More" stay.
  return watch(() => {
    if (!list.querySelector("tbody") || list.querySelectorAll("tbody tr").length <= PAGE) load(pages[0], false).catch(() => {});
  });
}

export async function renderDetail(main, [id], ctx) {
  const facts = h("dl", { class: "facts" });
  const chartBox = h("div", { class: "chart-box", "data-testid": "session-curve" });
  const cdr = h("div", { id: "session-cdr" });
  main.append(...[h("p", {}, h("a", { href: "#/sessions" }, "‹ Sessions")), h("h1", {}, `Session ${id}`), facts,
    section("Energy and power", chartBox), ctx.features.cdrs ? section("Priced record (CDR)", cdr) : null].filter(Boolean));
  let chart = null;
  async function refresh() {
    const [s, curve] = await Promise.all([api(`/sessions/${id}`), api(`/dashboard/sessions/${id}/curve`)]);
    facts.replaceChildren(...[
      ["Charger", h("a", { href: `#/chargers/${encodeURIComponent(s.charge_point_id)}` }, s.charge_point_id)],
      ["Transaction", s.transaction_id], ["Protocol", s.protocol], ["EVSE / connector", `${s.evse_id ?? "–"} / ${s.connector_id ?? "–"}`],
      ["Token", `${s.id_token || "–"} (${s.auth_status || "–"})`], ["Status", s.status], ["Started", time(s.started_at)],
      ["Ended", time(s.ended_at)], ["Duration", minutes(s.started_at, s.ended_at)], ["Energy", kwh(s.energy_wh)],
      ["Meter start / stop", `${s.meter_start_wh ?? "–"} / ${s.meter_stop_wh ?? s.meter_last_wh ?? "–"} Wh`], ["Stop reason", s.stop_reason || "–"],
    ].map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)]).flat());
    chartBox.dataset.points = curve.t.length;
    if (chart) chart.update(curve);
    else if (curve.t.length) chart = energyPowerChart(chartBox, curve);
    else chartBox.replaceChildren(h("p", { class: "muted" }, "No meter readings for this session."));
    if (ctx.features.cdrs) {
      try {
        const records = itemsOf(await api(`/cdrs${query({ session_id: id })}`)).filter((r) => r.session_id === undefined || String(r.session_id) === String(id));
        if (records.length) cdr.replaceChildren(...records.map(record));
        else if (s.status === "active") {
          // Billing prices a running session on demand; its CDR comes when it ends.
          const cost = await api(`/sessions/${id}/cost`);
          cdr.replaceChildren(h("p", { class: "muted", "data-testid": "cost-so-far" },
            `Cost so far, as of ${time(cost.as_of)}; the record is made when the session ends.`), record(cost));
        } else cdr.replaceChildren(h("p", { class: "muted" }, "Not priced yet."));
      } catch (err) {
        cdr.replaceChildren(errorBox(err));
      }
    }
    return s;
  }
  const s = await refresh();
  if (s.status !== "active") return null;
  return watch(() => refresh().catch(() => {}));
}

const FLAG_TEXT = {
  no_tariff: "no tariff applied: recorded at zero",
  no_meter_data: "fewer than two meter readings: no energy billed",
  meter_backwards: "the meter went backwards (left out)",
  meter_reset: "the meter was reset (left out)",
  meter_jump: "a meter jump beyond the charger's power (left out)",
};

const qty = (text) => String(Number(text)); // "10.000" -> "10": billing keeps exact decimals
const mins = (seconds) => `${(Number(seconds) / 60).toFixed(1)} min`;

/**
 * One priced record (CDR, or billing's running cost of an active session) as an itemised bill: what was measured (energy, charging
 * and idle time), each priced line (fee, energy per period, time), net, tax and
 * total in the record's currency, and billing's flags. Amounts are shown as
 * billing stored them (decimal strings), never recomputed here.
 */
function record(cdr) {
  const lines = cdr.items.filter((item) => item.kind !== "tax");
  const taxes = cdr.items.filter((item) => item.kind === "tax");
  const energyKwh = `${qty(Number(cdr.total_energy_wh) / 1000)} kWh`;
  const periods = Object.entries(cdr.energy_by_period || {});
  const fact = (name, value) => [h("dt", {}, name), h("dd", { "data-fact": name }, value)];
  const facts = h("dl", { class: "facts" },
    fact("Energy", energyKwh),
    periods.length > 1 ? fact("By period", periods.map(([p, wh]) => `${p} ${qty(Number(wh) / 1000)} kWh`).join(" · ")) : null,
    fact("Charging", mins(cdr.charging_seconds)),
    fact("Idle (parked, not charging)", mins(cdr.parking_seconds)),
    cdr.start_at ? fact("Period", `${time(cdr.start_at)} – ${time(cdr.end_at)}`) : null,
    fact("Tariff", cdr.tariff_id ? `#${cdr.tariff_id}${cdr.tariff_scope ? ` (${cdr.tariff_scope})` : ""}` : "none"),
    fact("Currency", cdr.currency),
    fact("Flags", cdr.flags.length ? h("ul", {}, cdr.flags.map((f) => h("li", { class: "flag" }, FLAG_TEXT[f] || f))) : "none"));
  const row = (attrs, cells) => h("tr", attrs, cells.map((c, i) => h(i ? "td" : "th", i > 0 ? { class: "num" } : {}, c)));
  const bill = h("table", { class: "bill" },
    h("thead", {}, h("tr", {}, ["Item", "Quantity", "Unit price", `Amount (${cdr.currency})`].map((x) => h("th", {}, x)))),
    h("tbody", {}, lines.length ? lines.map((item) => row({ "data-item": item.kind }, [
      item.description, `${qty(item.quantity)} ${item.unit}`, `${item.unit_price} / ${item.unit}`, item.amount,
    ])) : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Nothing charged."))),
    h("tfoot", {},
      row({}, ["Net", "", "", h("span", { "data-total": "net" }, cdr.total_net)]),
      row({}, [taxes.map((t) => t.description).join(", ") || "Tax", "", "", h("span", { "data-total": "tax" }, cdr.total_tax)]),
      row({ class: "total" }, ["Total", "", "", h("strong", { "data-total": "total" }, `${cdr.total_cost} ${cdr.currency}`)])));
  return h("div", { "data-testid": "cdr", "data-cdr": cdr.id ?? "running" }, facts, bill);
}
