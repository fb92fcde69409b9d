// Operator commands from the page: a confirmation dialog (with the command's
// inputs), then the POST, then the charger's answer shown in the same dialog.
import { api } from "./api.js";
import { byId, h } from "./ui.js";

/**
 * Ask, send, show. fields: [{name, label, value, type}] read into the body by
 * build(values). Resolves to the API's answer (or null when cancelled).
 */
export function confirmCommand({ chargerId, command, title, text, fields = [], build = () => ({}) }) {
  const dialog = byId("confirm");
  const ok = byId("confirm-ok");
  const cancel = byId("confirm-cancel");
  const answer = byId("confirm-answer");
  byId("confirm-title").textContent = title;
  const inputs = fields.map((f) => {
    const input = f.options
      ? h("select", { name: f.name }, f.options.map((o) => h("option", { value: o, selected: o === f.value }, o)))
      : h("input", { name: f.name, value: f.value ?? "", type: f.type || "text", required: true });
    return [f.name, input, h("label", {}, f.label, " ", input)];
  });
  byId("confirm-body").replaceChildren(h("p", {}, text), ...inputs.map(([, , label]) => label));
  answer.hidden = true;
  answer.textContent = "";
  answer.className = "";
  ok.hidden = false;
  ok.disabled = false;
  cancel.textContent = "Cancel";
  dialog.dataset.command = command;
  dialog.showModal();

  return new Promise((resolve) => {
    const send = async (e) => {
      e.preventDefault();
      const values = Object.fromEntries(inputs.map(([name, input]) => [name, input.value]));
      ok.disabled = true;
      answer.hidden = false;
      answer.textContent = "Waiting for the charger…";
      let result = null;
      try {
        result = await api(`/chargers/${encodeURIComponent(chargerId)}/commands/${command}`, { method: "POST", body: build(values) });
        answer.className = "ok";
        answer.textContent = `${chargerId} answered: ${JSON.stringify(result.response)}`;
      } catch (err) {
        result = err.body;
        answer.className = "error";
        answer.textContent = `Failed: ${err.message}`;
      }
      ok.hidden = true;
      cancel.textContent = "Close";
      resolve(result);
    };
    ok.onclick = send;
    dialog.onclose = () => resolve(null);
  });
}
