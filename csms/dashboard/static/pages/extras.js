// Pages for parts of the CSMS that other services add: sites (smart charging)
// and alerts (monitoring). The navigation shows them only when their endpoint
// answers (app.js probes /sites and /alerts); they show what the API returns,
// nothing made up.
import { api } from "../api.js";
import { watch } from "../live.js";
import { errorBox, h, itemsOf, objectTable } from "../ui.js";

function listPage(main, title, path, testid) {
  const box = h("div", { "data-testid": testid });
  main.append(h("h1", {}, title), box);
  const refresh = async () => {
    try {
      box.replaceChildren(objectTable(itemsOf(await api(path))));
    } catch (err) {
      box.replaceChildren(errorBox(err.status === 404 ? `${title}: not available in this CSMS yet` : err));
    }
  };
  return refresh().then(() => watch(() => refresh()));
}

export const renderSites = (main) => listPage(main, "Sites", "/sites", "site-list");
export const renderAlerts = (main) => listPage(main, "Alerts", "/alerts", "alert-list");
