// The dashboard: a hash router over a few pages, a login with an operator API
// key, and live updates (live.js). Optional parts of the CSMS (sites, alerts,
// CDRs) are probed once after login; their pages and sections stay hidden
// while their endpoints answer 404.
import { api, apiKey, clearApiKey, exists, setApiKey } from "./api.js";
import { startLive, POLL_MS } from "./live.js";
import { byId, errorBox, h } from "./ui.js";
import * as overview from "./pages/overview.js";
import * as charger from "./pages/charger.js";
import * as sessions from "./pages/sessions.js";
import * as analytics from "./pages/analytics.js";
import * as extras from "./pages/extras.js";

const routes = [
  [/^\/$/, overview.render, "overview"],
  [/^\/chargers\/(.+)$/, charger.render, "overview"],
  [/^\/sessions\/(\d+)$/, sessions.renderDetail, "sessions"],
  [/^\/sessions$/, sessions.render, "sessions"],
  [/^\/analytics$/, analytics.render, "analytics"],
  [/^\/sites$/, extras.renderSites, "sites"],
  [/^\/sites\/(.+)$/, extras.renderSite, "sites"],
  [/^\/alerts$/, extras.renderAlerts, "alerts"],
];

// What every page may read: the caller (role) and which optional endpoints exist.
const ctx = { me: null, features: { sites: false, alerts: false, cdrs: false } };
let cleanup = null;

function loginPage(main, message) {
  const input = h("input", { type: "password", id: "api-key", name: "api-key", placeholder: "csms_…", autocomplete: "off", required: true, size: 50 });
  const form = h("form", { class: "card login", id: "login-form" },
    h("h2", {}, "Log in"),
    h("p", { class: "muted" }, "Paste an operator or read-only API key (csms api-key create). It is kept in this tab only."),
    input,
    h("button", { type: "submit", class: "primary" }, "Log in"),
    message ? errorBox(message) : null);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    setApiKey(input.value.trim());
    await boot();
  });
  main.replaceChildren(form);
  input.focus();
}

async function probeFeatures() {
  const [sites, alerts, cdrs] = await Promise.all([exists("/sites"), exists("/alerts"), exists("/cdrs")]);
  Object.assign(ctx.features, { sites, alerts, cdrs });
  for (const link of document.querySelectorAll("[data-feature]")) link.hidden = !ctx.features[link.dataset.feature];
}

async function boot() {
  const main = byId("main");
  if (!apiKey()) {
    byId("nav").hidden = true;
    byId("logout").hidden = true;
    byId("who").textContent = "";
    return loginPage(main);
  }
  try {
    ctx.me = await api("/dashboard/me");
  } catch (err) {
    clearApiKey();
    return loginPage(main, err.status === 401 ? "That key is unknown or revoked." : err);
  }
  byId("who").textContent = `${ctx.me.name} · ${ctx.me.role}`;
  byId("who").dataset.role = ctx.me.role;
  byId("nav").hidden = false;
  byId("logout").hidden = false;
  await probeFeatures();
  startLive((mode) => {
    byId("live").textContent = mode === "stream" ? "live: stream" : `live: polling every ${POLL_MS / 1000}s`;
    byId("live").dataset.mode = mode;
  });
  if (location.hash === "#/login" || !location.hash) location.hash = "#/";
  else route();
}

let generation = 0; // a page rendering when another route starts is dropped

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const mine = ++generation;
  const main = byId("main");
  if (!apiKey() || !ctx.me) return boot();
  const path = decodeURIComponent((location.hash || "#/").slice(1).split("?")[0]) || "/";
  for (const [pattern, render, nav] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === nav);
    // Each page draws into its own element: a render that is overtaken by the
    // next route keeps drawing into a detached element, never into the new page.
    const view = h("div", { class: "view" });
    main.replaceChildren(view);
    try {
      const stop = (await render(view, match.slice(1), ctx)) || null;
      if (mine === generation) cleanup = stop;
      else if (stop) stop();
    } catch (err) {
      view.append(errorBox(err));
    }
    return;
  }
  main.replaceChildren(errorBox(`No page ${path}`));
}

byId("logout").addEventListener("click", () => {
  clearApiKey();
  ctx.me = null;
  location.hash = "#/login";
  boot();
});
// One-click login (the URL `csms demo` prints): the key comes in the URL fragment, which a
// browser never sends to a server, so it reaches no log; it is kept for this tab only and
// removed from the address bar and the history before anything else runs.
const fragmentKey = location.hash.match(/^#key=([^&/]+)/);
if (fragmentKey) {
  setApiKey(decodeURIComponent(fragmentKey[1]));
  history.replaceState(null, "", `${location.pathname}${location.search}#/`);
}
window.addEventListener("hashchange", route);
window.addEventListener("csms:unauthorized", () => {
  if (!ctx.me) return; // the login itself reports a refused key
  clearApiKey();
  ctx.me = null;
  boot().then(() => loginPage(byId("main"), "The API key is no longer valid; log in again."));
});
boot();
