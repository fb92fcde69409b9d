// Actions from the page: a confirmation dialog (with the action's inputs), then
// the request, then the answer shown in the same dialog. Charger commands are
// the common case (confirmCommand); sites and alerts use confirmAction.
import { api } from "./api.js";
import { byId, h } from "./ui.js";

/**
 * Ask, send, show. fields: [{name, label, value, type, options}] are read into
 * `values`; send(values) does the request and returns what to show
 * ({text} or throws). Resolves to send's result, or null when cancelled/failed.
 */
export function confirmAction({ title, text, fields = [], send, name = "" }) {
  const dialog = byId("confirm");
  const ok = byId("confirm-ok");
  const cancel = byId("confirm-cancel");
  const answer = byId("confirm-answer");
  byId("confirm-title").textContent = title;
  const inputs = fields.map((f) => {
    const input = f.options
      ? h("select", { name: f.name }, f.options.map((o) => h("option", { value: o, selected: o === f.value }, o)))
      : h("input", { name: f.name, value: f.value ?? "", type: f.type || "text", required: f.required !== false, step: "any" });
    return [f.name, input, h("label", {}, f.label, " ", input)];
  });
  byId("confirm-body").replaceChildren(h("p", {}, text), ...inputs.map(([, , label]) => label));
  answer.hidden = true;
  answer.textContent = "";
  answer.className = "";
  ok.hidden = false;
  ok.disabled = false;
  cancel.textContent = "Cancel";
  dialog.dataset.action = name;
  dialog.showModal();

  return new Promise((resolve) => {
    ok.onclick = async (e) => {
      e.preventDefault();
      const values = Object.fromEntries(inputs.map(([key, input]) => [key, input.value]));
      ok.disabled = true;
      answer.hidden = false;
      answer.textContent = "Waiting for the answer…";
      let result = null;
      try {
        result = await send(values);
        answer.className = "ok";
        answer.textContent = result.text;
      } catch (err) {
        answer.className = "error";
        answer.textContent = `Failed: ${err.message}`;
        result = null;
      }
      ok.hidden = true;
      cancel.textContent = "Close";
      resolve(result);
    };
    dialog.onclose = () => resolve(null);
  });
}

/** A charger command: POST /chargers/{id}/commands/{command}; shows the charger's answer. */
export async function confirmCommand({ chargerId, command, title, text, fields = [], build = () => ({}) }) {
  const result = await confirmAction({
    title, text, fields, name: command,
    send: async (values) => {
      const data = await api(`/chargers/${encodeURIComponent(chargerId)}/commands/${command}`, { method: "POST", body: build(values) });
      return { data, text: `${chargerId} answered: ${JSON.stringify(data.response)}` };
    },
  });
  return result && result.data;
}
