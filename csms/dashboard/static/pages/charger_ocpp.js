// A charger's OCPP breadth (docs/ocpp-messages.md): its device model (editable
// through SetVariables / ChangeConfiguration), monitors, display messages,
// certificates, log uploads and security events. Loaded once with the page and
// again after each action here or with the section's Reload button (not on every
// live update: a device model can have thousands of rows).
import { api, download as save } from "../api.js";
import { confirmAction, confirmCommand } from "../commands.js";
import { errorBox, h, section, table, time } from "../ui.js";

const CONFIG_16 = "OCPP16Configuration";

export function ocppSections(chargerId, canCommand, isV201) {
  const id = encodeURIComponent(chargerId);
  const model = h("div", { id: "device-model" });
  const monitors = h("div", { id: "monitors" });
  const messages = h("div", { id: "display-messages" });
  const certificates = h("div", { id: "certificates" });
  const logs = h("div", { id: "log-uploads" });
  const security = h("div", { id: "security-events" });
  const empty = (text) => h("p", { class: "muted" }, text);

  function setButton(v) {
    if (!canCommand || v.mutability === "ReadOnly" || v.attribute_type !== "Actual") return "";
    const v16 = v.component === CONFIG_16;
    return h("button", { "data-testid": `set-${v.component}-${v.variable}`, onclick: async () => {
      await confirmCommand({
        chargerId,
        command: v16 ? "change_configuration" : "set_variables",
        title: `Set ${v.component}.${v.variable}?`,
        text: "The charger is asked to change this value; the device model keeps its answer.",
        fields: [{ name: "value", label: "Value", value: v.value ?? "" }],
        build: (x) => (v16 ? { key: v.variable, value: x.value } : { variables: [{
          component: v.component, variable: v.variable, value: x.value,
          ...(v.component_instance ? { instance: v.component_instance } : {}),
          ...(v.evse_id ? { evse_id: v.evse_id } : {}) }] }),
      });
      refresh();
    } }, "Set…");
  }

  function reportButton() {
    if (!canCommand) return null;
    const spec = isV201()
      ? { command: "get_base_report", title: `Ask ${chargerId} for its device model?`, text: "GetBaseReport (FullInventory): the charger reports every component and variable.", build: () => ({ report_base: "FullInventory" }) }
      : { command: "get_configuration", title: `Read ${chargerId}'s configuration?`, text: "GetConfiguration: every key, kept as the device model." };
    return h("button", { "data-testid": "cmd-device-model", onclick: async () => {
      await confirmCommand({ chargerId, ...spec });
      settle();
    } }, "Read from the charger…");
  }

  function drawModel(data) {
    const rows = data.variables.map((v) => h("tr", { "data-variable": `${v.component}.${v.variable}` },
      [v.component + (v.component_instance ? `/${v.component_instance}` : ""), v.evse_id || "–", v.variable,
        v.attribute_type, v.value ?? "–", v.mutability || "–", v.source, time(v.updated_at), setButton(v)]
        .map((c) => h("td", {}, c))));
    const report = data.reports[0];
    model.replaceChildren(
      h("p", { class: "actions" }, reportButton(), h("button", { onclick: refresh }, "Reload"),
        report ? h("span", { class: "muted", "data-testid": "report-progress" },
          ` report ${report.request_id}: ${report.items} items in ${report.parts} parts${report.complete ? "" : " (in progress)"}`) : null),
      rows.length ? h("div", { style: "overflow-x: auto" }, table(["Component", "EVSE", "Variable", "Attribute", "Value", "Mutability", "From", "Updated", ""], rows, { "data-testid": "device-model-table" }))
        : empty("Nothing known yet: read it from the charger."));
  }

  function drawCertificates(data) {
    const ask = canCommand ? h("button", { "data-testid": "cmd-sign-certificate", onclick: async () => {
      await confirmCommand({ chargerId, command: "trigger_message", title: `Ask ${chargerId} for a new certificate?`,
        text: "The charger sends a CSR; the CSMS CA signs it and sends the certificate.", build: () => ({ message: "SignChargingStationCertificate" }) });
      settle();
    } }, "Renew certificate…") : null;
    certificates.replaceChildren(h("p", { class: "actions" }, ask),
      data.certificates.length ? table(["Type", "Serial", "Subject", "Valid until", "Status", "Issued"],
        data.certificates.map((c) => [c.certificate_type, c.serial_number, c.subject, time(c.not_after), c.status, time(c.issued_at)]),
        { "data-testid": "certificate-table" }) : empty("No certificate issued by the CSMS CA."));
  }

  function drawLogs(data) {
    const ask = canCommand ? h("button", { "data-testid": "cmd-request-log", onclick: async () => {
      await confirmAction({ title: `Have ${chargerId} upload a log?`, name: "request_logs",
        text: "The charger uploads to the CSMS itself (GetLog / GetDiagnostics).",
        fields: [{ name: "log_type", label: "Log", options: ["DiagnosticsLog", "SecurityLog"], value: "DiagnosticsLog" }],
        send: async (v) => {
          const answer = await api(`/chargers/${id}/logs`, { method: "POST", body: { log_type: v.log_type } });
          return { text: `${chargerId} answered: ${JSON.stringify(answer.response)}` };
        } });
      settle();
    } }, "Request log…") : null;
    logs.replaceChildren(h("p", { class: "actions" }, ask),
      data.uploads.length ? table(["Requested", "By", "Log", "Status", "File"], data.uploads.map((u) => [
        time(u.requested_at), u.requested_by, u.log_type, u.status || "–",
        u.received_at ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); download(u); } }, `${u.file_name} (${u.size_bytes} B)`) : "–"]),
      { "data-testid": "log-table" }) : empty("No log requested."));
  }

  async function download(upload) {
    await save(`/chargers/${id}/logs/${upload.id}/file`, upload.file_name);
  }

  // What a charger sends after answering (reports, CSRs, uploads) follows the
  // answer: after an action, look again a few times.
  async function settle() {
    for (let i = 0; i < 4; i++) {
      await refresh();
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }

  async function refresh() {
    const load = (path) => api(`/chargers/${id}/${path}`);
    const parts = [
      [model, "device-model", drawModel],
      [monitors, "monitors", (d) => monitors.replaceChildren(d.monitors.length
        ? table(["Id", "Component", "Variable", "Type", "Value", "Severity", "Last event"], d.monitors.map((m) => [
            m.monitor_id, m.component, m.variable, m.type, m.value, m.severity,
            m.last_event_at ? `${m.last_event_value} at ${time(m.last_event_at)}` : "–"]), { "data-testid": "monitor-table" })
        : empty("No monitor known."))],
      [messages, "display-messages", (d) => messages.replaceChildren(d.display_messages.length
        ? table(["Id", "Priority", "State", "Content", "From"], d.display_messages.map((m) => [
            m.message_id, m.priority, m.state || "–", m.content, m.source]), { "data-testid": "display-message-table" })
        : empty("No display message known."))],
      [certificates, "certificates", drawCertificates],
      [logs, "logs", drawLogs],
      [security, "security-events", (d) => security.replaceChildren(d.security_events.length
        ? table(["Time", "Event", "Details"], d.security_events.slice(0, 20).map((e) => [time(e.occurred_at), e.event_type, e.tech_info || "–"]),
          { "data-testid": "security-event-table" })
        : empty("No security event."))],
    ];
    await Promise.all(parts.map(async ([box, path, draw]) => {
      try {
        draw(await load(path));
      } catch (err) {
        box.replaceChildren(errorBox(err));
      }
    }));
  }

  return {
    sections: [
      section("Device model", model), section("Monitors", monitors), section("Display messages", messages),
      section("Certificates", certificates), section("Logs", logs), section("Security events", security),
    ],
    refresh,
  };
}
