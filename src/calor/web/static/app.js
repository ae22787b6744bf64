// The dashboard's shell: sign-in, hash routes, the header's counts, polling that stops when the
// page changes. Each view lives in its own module and gets a `ctx` (see makeContext).

import { api, ApiError, onUnauthorized, session } from "./api.js";
import { h, replace } from "./dom.js";
import { bucketsView, bucketView } from "./buckets.js";
import { jobsView, jobView, poolsView, poolView } from "./resources.js";
import { taskView } from "./task.js";
import { tasksView } from "./tasks.js";

const view = document.getElementById("view");
const top = document.getElementById("top");
const problem = document.getElementById("problem");
const flashBox = document.getElementById("flash");

let generation = 0;
let pendingFlash = null;

export function flash(message, kind = "info") {
  pendingFlash = { message, kind };
  showFlash();
}

function showFlash() {
  if (!pendingFlash) return;
  const { message, kind } = pendingFlash;
  replace(flashBox, h("div", { class: `flash flash-${kind}` }, message));
  const shown = pendingFlash;
  setTimeout(() => {
    if (pendingFlash === shown) {
      pendingFlash = null;
      flashBox.replaceChildren();
    }
  }, 8000);
}

function setProblem(error) {
  if (!error) {
    problem.hidden = true;
    problem.replaceChildren();
    return;
  }
  problem.hidden = false;
  replace(problem, error.status === 0 ? "The server cannot be reached; retrying…" : error.message);
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/tasks";
  const cut = raw.indexOf("?");
  const path = cut >= 0 ? raw.slice(0, cut) : raw;
  const query = new URLSearchParams(cut >= 0 ? raw.slice(cut + 1) : "");
  const parts = path
    .split("/")
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  return { parts, query };
}

export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function makeContext(query, parts) {
  const gen = ++generation;
  const alive = () => gen === generation;
  return {
    parts,
    query,
    alive,
    flash,
    navigate,
    // Runs `fn` now and every `ms` after each run ends, while this page is shown; skipped
    // while the tab is hidden; stops when `fn` returns false. Errors show in the problem bar.
    every(fn, ms) {
      const tick = async () => {
        if (!alive()) return;
        let again = true;
        if (!document.hidden) {
          try {
            again = (await fn()) !== false;
            if (alive()) setProblem(null);
          } catch (error) {
            if (!alive()) return;
            if (error instanceof ApiError && error.status === 401) return;
            setProblem(error);
          }
        }
        if (again && alive()) setTimeout(tick, ms);
      };
      return tick();
    },
    // reports an error of a user action in the problem bar (cleared by the next good poll)
    report(error) {
      if (alive() && !(error instanceof ApiError && error.status === 401)) setProblem(error);
    },
    // reports an error of a user action where it happened
    fail(error, where) {
      const message = error instanceof ApiError ? error.message : String(error);
      replace(where, h("div", { class: "error", role: "alert" }, message));
    },
    // keeps the view's query in the address bar without a new render
    setQuery(params) {
      const text = params.toString();
      const base = `#/${parts.map(encodeURIComponent).join("/")}`;
      history.replaceState(null, "", text ? `${base}?${text}` : base);
    },
  };
}

const ROUTES = {
  tasks: (ctx) => (ctx.parts[1] ? taskView(ctx, ctx.parts[1]) : tasksView(ctx)),
  pools: (ctx) => (ctx.parts[1] ? poolView(ctx, ctx.parts[1]) : poolsView(ctx)),
  jobs: (ctx) => (ctx.parts[1] ? jobView(ctx, ctx.parts[1]) : jobsView(ctx)),
  buckets: (ctx) => (ctx.parts[1] ? bucketView(ctx, ctx.parts[1]) : bucketsView(ctx)),
};

function render() {
  setProblem(null);
  if (!session.token) {
    generation += 1;
    top.hidden = true;
    loginView();
    return;
  }
  top.hidden = false;
  const { parts, query } = parseHash();
  const route = ROUTES[parts[0]] ? parts[0] : "tasks";
  for (const link of top.querySelectorAll("[data-nav]")) {
    link.classList.toggle("current", link.dataset.nav === route);
  }
  const ctx = makeContext(query, parts.length && ROUTES[parts[0]] ? parts : ["tasks"]);
  const page = h("div", { class: "page" });
  replace(view, page);
  ctx.root = page;
  ROUTES[route](ctx);
  refreshStats();
}

function loginView(message) {
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "API token",
    "aria-label": "API token",
    required: true,
  });
  const error = h("div", { id: "login-error", class: "error", role: "alert", hidden: !message }, message || "");
  const button = h("button", { type: "submit", id: "login" }, "Sign in");
  const form = h(
    "form",
    {
      class: "login",
      // the input has no name: even without this script nothing would go into a URL
      onsubmit: async (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        button.disabled = true;
        error.hidden = true;
        try {
          const info = await api("info", { token });
          session.set(token);
          input.value = "";
          document.getElementById("email").textContent = info.email || "";
          render();
        } catch (e) {
          error.hidden = false;
          error.textContent =
            e.status === 401 || e.status === 403
              ? "This token was not accepted. Check it and try again."
              : `Cannot sign in: ${e.message}`;
          input.select();
        } finally {
          button.disabled = false;
        }
      },
    },
    h("h1", {}, "calor"),
    h("p", {}, "Sign in with your API token to follow your tasks, pools, jobs and buckets."),
    input,
    button,
    error,
    h(
      "p",
      { class: "hint" },
      "The token stays in this browser tab only (it is forgotten when the tab closes). ",
      "An administrator creates one with ",
      h("code", {}, "calor admin user create --email you@example.com"),
      ".",
    ),
  );
  replace(view, form);
  input.focus();
}

let statsTimer = null;

async function refreshStats() {
  clearTimeout(statsTimer);
  if (!session.token) return;
  try {
    const info = await api("info");
    document.getElementById("email").textContent = info.email || "";
    replace(
      document.getElementById("stats"),
      stat("tasks", info.taskCount),
      stat("running", info.runningTaskCount, "stat-running"),
      stat("cores busy", `${info.runningCoreCount}/${info.maxFlexCores}`),
      stat("pools open", info.runningPoolCount),
      stat("buckets", info.bucketCount),
    );
  } catch {
    // the views report problems; the counts just wait for the next round
  }
  statsTimer = setTimeout(refreshStats, 5000);
}

function stat(label, value, cls) {
  return h("span", { class: `stat ${cls || ""}` }, h("b", {}, String(value ?? "—")), ` ${label}`);
}

onUnauthorized(() => {
  session.clear();
  generation += 1;
  top.hidden = true;
  loginView("Your token is no longer accepted; sign in again.");
});

document.getElementById("logout").addEventListener("click", () => {
  session.clear();
  clearTimeout(statsTimer);
  render();
});

window.addEventListener("hashchange", render);
render();
