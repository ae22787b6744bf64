// The task list: filters (state, tags any/all, name prefix), newest or oldest first, keyset
// pages, refreshed every 2 s in place.

import { api, ApiError } from "./api.js";
import { ACTIVE, dateCell, h, progressBar, replace, stateBadge, tagList } from "./dom.js";

const STATE_GROUPS = [
  ["active", "Running", ACTIVE],
  ["Success", "Success", ["Success"]],
  ["Failure", "Failure", ["Failure"]],
  ["Cancelled", "Cancelled", ["Cancelled"]],
];
const SIZES = [10, 20, 50, 100];
const POLL_MS = 2000;

// whether the server sorts newest first (orderType Desc); learnt from its answers
let orderSupported = true;

function escapeRegex(text) {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
}

// the filter tree of the API (contract §11.1) for the chosen filters, or null
export function buildFilter({ states, tags, mode, name }) {
  const leaves = [];
  const values = STATE_GROUPS.filter(([key]) => states.includes(key)).flatMap(([, , v]) => v);
  if (values.length) leaves.push({ field: "State", operator: "In", values });
  if (tags.length === 1) leaves.push({ field: "Tags", operator: "Equal", value: tags[0] });
  else if (tags.length && mode === "all") {
    for (const tag of tags) leaves.push({ field: "Tags", operator: "Equal", value: tag });
  } else if (tags.length) leaves.push({ field: "Tags", operator: "In", values: tags });
  if (name) leaves.push({ field: "Name", operator: "Like", value: `/^${escapeRegex(name)}/` });
  if (!leaves.length) return null;
  return leaves.length === 1 ? leaves[0] : { operator: "And", filters: leaves };
}

function readFilters(query) {
  const size = Number(query.get("size"));
  return {
    states: (query.get("state") || "").split(",").filter(Boolean),
    tags: (query.get("tags") || "")
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean),
    mode: query.get("mode") === "all" ? "all" : "any",
    name: query.get("name") || "",
    order: query.get("order") === "asc" ? "asc" : "desc",
    size: SIZES.includes(size) ? size : 20,
  };
}

function writeFilters(f) {
  const q = new URLSearchParams();
  if (f.states.length) q.set("state", f.states.join(","));
  if (f.tags.length) q.set("tags", f.tags.join(","));
  if (f.mode === "all") q.set("mode", "all");
  if (f.name) q.set("name", f.name);
  if (f.order === "asc") q.set("order", "asc");
  if (f.size !== 20) q.set("size", String(f.size));
  return q;
}

async function fetchPage(filters, token) {
  const body = { maximumResults: filters.size, filter: buildFilter(filters), token };
  const wantDesc = filters.order === "desc" && orderSupported;
  if (wantDesc) Object.assign(body, { orderBy: "CreationDate", orderType: "Desc" });
  let page;
  try {
    page = await api("tasks/paginate", { method: "POST", body });
  } catch (error) {
    // a server without ordering may refuse the fields: ask again without them
    if (wantDesc && error instanceof ApiError && error.status === 400 && /order/i.test(error.message)) {
      orderSupported = false;
      return fetchPage(filters, token);
    }
    throw error;
  }
  if (wantDesc && !token) {
    const dates = page.data.map((t) => t.creationDate);
    if (dates.some((d, i) => i > 0 && dates[i - 1] < d)) orderSupported = false; // ignored
  }
  return page;
}

function instancesText(task) {
  const running = task.runningInstanceCount || 0;
  const total = task.instanceCount ?? "?";
  return running ? `${running} running / ${total}` : String(total);
}

function row(task, onTag) {
  return h(
    "tr",
    { dataset: { uuid: task.uuid } },
    h("td", { class: "name" }, h("a", { href: `#/tasks/${task.uuid}`, class: "task-link" }, task.name || task.uuid)),
    h("td", { class: "col-state" }, stateBadge(task.state)),
    h("td", { class: "col-progress" }, progressBar(task.progress, task.state)),
    h("td", { class: "col-instances num" }, instancesText(task)),
    h("td", {}, dateCell(task.creationDate)),
    h("td", { class: "num" }, task.wallTime || "—"),
    h("td", {}, dateCell(task.endDate)),
    h("td", {}, tagList(task.tags, onTag)),
  );
}

// what a row shows; a row is rebuilt only when this changes
function signature(task) {
  return JSON.stringify([
    task.name,
    task.state,
    Math.round(task.progress || 0),
    task.runningInstanceCount,
    task.instanceCount,
    task.wallTime,
    task.endDate,
    task.tags,
  ]);
}

export function tasksView(ctx) {
  const filters = readFilters(ctx.query);
  let tokens = [null]; // the token of each page seen so far: keyset paging backwards
  let lastPage = null;

  const stateBoxes = STATE_GROUPS.map(([key, label]) =>
    h(
      "label",
      { class: "chip" },
      h("input", { type: "checkbox", value: key, checked: filters.states.includes(key), "data-state-filter": key, onchange: apply }),
      ` ${label}`,
    ),
  );
  const tagsInput = h("input", { id: "f-tags", type: "search", placeholder: "tags, comma-separated", value: filters.tags.join(", "), oninput: debounce(apply) });
  const modeSelect = h(
    "select",
    { id: "f-tagmode", onchange: apply, "aria-label": "tag match" },
    h("option", { value: "any", selected: filters.mode === "any" }, "any of them"),
    h("option", { value: "all", selected: filters.mode === "all" }, "all of them"),
  );
  const nameInput = h("input", { id: "f-name", type: "search", placeholder: "name starts with…", value: filters.name, oninput: debounce(apply) });
  const orderSelect = h(
    "select",
    { id: "f-order", onchange: apply, "aria-label": "order" },
    h("option", { value: "desc", selected: filters.order === "desc" }, "newest first"),
    h("option", { value: "asc", selected: filters.order === "asc" }, "oldest first"),
  );
  const sizeSelect = h(
    "select",
    { id: "f-size", onchange: apply, "aria-label": "page size" },
    SIZES.map((n) => h("option", { value: String(n), selected: filters.size === n }, `${n} per page`)),
  );
  const orderNote = h("span", { class: "note", id: "order-note" });
  const tbody = h("tbody", { id: "task-rows" });
  const empty = h("p", { class: "empty", hidden: true });
  const pager = h("div", { class: "pager" });
  const prev = h("button", { type: "button", id: "page-prev", onclick: () => go(-1) }, "← Previous");
  const next = h("button", { type: "button", id: "page-next", onclick: () => go(1) }, "Next →");
  const pageLabel = h("span", { id: "page-label" });
  replace(pager, prev, pageLabel, next);

  replace(
    ctx.root,
    h("h1", {}, "Tasks"),
    h(
      "form",
      { class: "filters", onsubmit: (e) => e.preventDefault() },
      h("fieldset", {}, h("legend", {}, "State"), stateBoxes),
      h("fieldset", {}, h("legend", {}, "Tags"), tagsInput, modeSelect),
      h("fieldset", {}, h("legend", {}, "Name"), nameInput),
      h("fieldset", {}, h("legend", {}, "Sort"), orderSelect, sizeSelect, orderNote),
    ),
    h(
      "table",
      { class: "list", id: "tasks" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "State", "Progress", "Instances", "Created", "Wall time", "Ended", "Tags"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      tbody,
    ),
    empty,
    pager,
  );

  function addTag(tag) {
    if (!filters.tags.includes(tag)) {
      tagsInput.value = [...filters.tags, tag].join(", ");
      apply();
    }
  }

  function apply() {
    filters.states = stateBoxes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    filters.tags = tagsInput.value
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    filters.mode = modeSelect.value;
    filters.name = nameInput.value.trim();
    filters.order = orderSelect.value;
    filters.size = Number(sizeSelect.value);
    ctx.setQuery(writeFilters(filters));
    tokens = [null];
    refresh().catch(ctx.report);
  }

  function go(step) {
    if (step > 0 && lastPage?.nextToken) tokens.push(lastPage.nextToken);
    else if (step < 0 && tokens.length > 1) tokens.pop();
    else return;
    refresh().catch(ctx.report);
  }

  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const page = await fetchPage(filters, tokens[tokens.length - 1]);
    if (mine !== seq || !ctx.alive()) return; // a newer request (filters changed) answers
    lastPage = page;
    draw(page);
  }

  function draw(page) {
    const existing = new Map([...tbody.children].map((tr) => [tr.dataset.uuid, tr]));
    const rows = page.data.map((task) => {
      const sig = signature(task);
      const old = existing.get(task.uuid);
      if (old && old.dataset.sig === sig) return old;
      const tr = row(task, addTag);
      tr.dataset.sig = sig;
      return tr;
    });
    // keep unchanged rows in place (no flicker, links keep focus)
    rows.forEach((tr, i) => {
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    while (tbody.children.length > rows.length) tbody.lastElementChild.remove();

    const filtered = buildFilter(filters) !== null;
    empty.hidden = page.data.length > 0;
    replace(
      empty,
      filtered
        ? "No task matches these filters."
        : ["No tasks yet. Submit one with curl, the Python SDK or ", h("code", {}, "calor"), " — it shows up here."],
    );
    pageLabel.textContent = `Page ${tokens.length}`;
    prev.disabled = tokens.length <= 1;
    next.disabled = !page.nextToken;
    orderNote.textContent = orderSupported ? "" : "(this server lists oldest first only)";
    orderSelect.disabled = !orderSupported;
  }

  ctx.every(refresh, POLL_MS);
}

function debounce(fn, ms = 300) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}
