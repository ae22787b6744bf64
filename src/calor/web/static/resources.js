// Pools and jobs: lists, and one pool or job with its tasks and its close / terminate button.

import { api, ApiError, enc } from "./api.js";
import { dateCell, fieldList, h, progressBar, rawJson, replace, stateBadge, table, tagList } from "./dom.js";

const POLL_MS = 3000;
const POOL_FINAL = new Set(["Closed", "Failure"]);
const JOB_FINAL = new Set(["Completed", "Deleting"]);

function notFound(ctx, what, back) {
  replace(ctx.root, h("h1", {}, `${what} not found`), h("p", { class: "empty" }, "It does not exist or was deleted. ", h("a", { href: back }, "Back to the list")));
}

function taskRows(tasks) {
  return tasks.map((t) =>
    h(
      "tr",
      { dataset: { uuid: t.uuid } },
      h("td", {}, h("a", { href: `#/tasks/${t.uuid}`, class: "task-link" }, t.name || t.uuid)),
      h("td", {}, stateBadge(t.state)),
      h("td", {}, progressBar(t.progress, t.state)),
      h("td", { class: "num" }, String(t.instanceCount ?? "")),
      h("td", {}, dateCell(t.creationDate)),
    ),
  );
}

function tasksTable(tasks, id) {
  if (!tasks.length) return h("p", { class: "empty" }, "No task.");
  return table(["Task", "State", "Progress", "Instances", "Created"], taskRows(tasks), { class: "list", id });
}

// ---- pools -------------------------------------------------------------------------------

export function poolsView(ctx) {
  const holder = h("div");
  replace(ctx.root, h("h1", {}, "Pools"), holder);
  ctx.every(async () => {
    const pools = await api("pools");
    if (!ctx.alive()) return;
    if (!pools.length) {
      replace(holder, h("p", { class: "empty" }, "No pools. A pool keeps slots warm for many short tasks (see the README)."));
      return;
    }
    const rows = pools.map((p) =>
      h(
        "tr",
        { dataset: { uuid: p.uuid } },
        h("td", {}, h("a", { href: `#/pools/${p.uuid}`, class: "pool-link" }, p.name || p.uuid)),
        h("td", {}, stateBadge(p.state)),
        h("td", { class: "num" }, `${p.totalSlotCapacity ?? "?"} / ${p.instanceCount ?? "?"}`),
        h("td", { class: "num" }, String(p.runningInstanceCount ?? 0)),
        h("td", { class: "num" }, String(p.queuedOrRunningTaskInstancesCount ?? 0)),
        h("td", {}, p.profile || ""),
        h("td", {}, dateCell(p.creationDate)),
        h("td", {}, tagList(p.tags)),
      ),
    );
    replace(holder, table(["Name", "State", "Slots", "Running", "Task instances", "Profile", "Created", "Tags"], rows, { class: "list", id: "pools" }));
  }, POLL_MS);
}

export function poolView(ctx, key) {
  const head = h("div");
  const result = h("div", { class: "action-result" });
  const close = h("button", { type: "button", id: "close-pool", class: "danger", onclick: onClose }, "Close pool");
  const body = h("div");
  const tasks = h("div");
  const output = h("pre", { class: "log", id: "pool-log" });
  let pool = null;
  replace(
    ctx.root,
    h("p", { class: "crumbs" }, h("a", { href: "#/pools" }, "Pools"), " / ", key),
    head,
    h("div", { class: "actions" }, close),
    result,
    body,
    h("h2", {}, "Tasks on this pool"),
    tasks,
    h("h2", {}, "Preparation output"),
    output,
  );

  async function onClose() {
    if (!confirm(`Close pool "${pool.name}"? Its queued and running tasks are cancelled.`)) return;
    try {
      await api(`pools/${enc(pool.uuid)}/close`, { method: "POST" });
      ctx.flash(`Pool "${pool.name}" is closing.`);
      await load();
    } catch (error) {
      ctx.fail(error, result);
    }
  }

  async function load() {
    try {
      pool = await api(`pools/${enc(key)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        notFound(ctx, "Pool", "#/pools");
        return false;
      }
      throw error;
    }
    const [page, stdout] = await Promise.all([
      api("tasks/paginate", { method: "POST", body: { maximumResults: 100, filter: { field: "PoolUuid", operator: "Equal", value: pool.uuid } } }),
      api(`pools/${enc(pool.uuid)}/stdout`, { as: "text" }),
    ]);
    if (!ctx.alive()) return false;
    replace(head, h("h1", {}, pool.name, " ", stateBadge(pool.state)));
    close.disabled = POOL_FINAL.has(pool.state) || pool.state === "Closing";
    const open = body.querySelector("details.raw")?.open;
    const raw = rawJson(pool);
    raw.open = Boolean(open);
    replace(
      body,
      pool.errors?.length ? h("ul", { class: "errors" }, pool.errors.map((e) => h("li", {}, e.message))) : null,
      fieldList([
        ["UUID", h("code", {}, pool.uuid)],
        ["Profile", pool.profile],
        ["Slots", `${pool.totalSlotCapacity ?? "?"} now, ${pool.instanceCount} asked${pool.elasticProperty?.isElastic ? " (elastic)" : ""}`],
        ["Running", `${pool.runningInstanceCount ?? 0} slots, ${pool.runningCoreCount ?? 0} cores`],
        ["Task instances queued or running", String(pool.queuedOrRunningTaskInstancesCount ?? 0)],
        ["Preparation", pool.preparationTask?.commandLine ? h("code", {}, pool.preparationTask.commandLine) : null],
        ["Created", dateCell(pool.creationDate)],
        ["Ended", dateCell(pool.endDate)],
        ["Tags", pool.tags?.length ? tagList(pool.tags) : null],
      ]),
      raw,
    );
    replace(tasks, tasksTable(page.data, "pool-tasks"));
    output.textContent = stdout || "(no output)";
    return !POOL_FINAL.has(pool.state);
  }

  ctx.every(load, POLL_MS);
}

// ---- jobs --------------------------------------------------------------------------------

export function jobsView(ctx) {
  const holder = h("div");
  replace(ctx.root, h("h1", {}, "Jobs"), holder);
  ctx.every(async () => {
    const jobs = await api("jobs");
    if (!ctx.alive()) return;
    if (!jobs.length) {
      replace(holder, h("p", { class: "empty" }, "No jobs. A job groups tasks, which may depend on each other."));
      return;
    }
    const rows = jobs.map((j) =>
      h(
        "tr",
        { dataset: { uuid: j.uuid } },
        h("td", {}, h("a", { href: `#/jobs/${j.uuid}`, class: "job-link" }, j.name || j.uuid)),
        h("td", {}, stateBadge(j.state)),
        h("td", {}, j.useDependencies ? "yes" : "no"),
        h("td", {}, j.poolUuid ? h("a", { href: `#/pools/${j.poolUuid}` }, j.poolUuid.slice(0, 8)) : "—"),
        h("td", {}, dateCell(j.creationDate)),
        h("td", {}, dateCell(j.endDate)),
        h("td", {}, tagList(j.tags)),
      ),
    );
    replace(holder, table(["Name", "State", "Dependencies", "Pool", "Created", "Ended", "Tags"], rows, { class: "list", id: "jobs" }));
  }, POLL_MS);
}

export function jobView(ctx, key) {
  const head = h("div");
  const result = h("div", { class: "action-result" });
  const terminate = h("button", { type: "button", id: "terminate-job", class: "danger", onclick: onTerminate }, "Terminate");
  const body = h("div");
  const tasks = h("div");
  let job = null;
  replace(
    ctx.root,
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", key),
    head,
    h("div", { class: "actions" }, terminate),
    result,
    body,
    h("h2", {}, "Tasks of this job"),
    tasks,
  );

  async function onTerminate() {
    if (!confirm(`Terminate job "${job.name}"? Its tasks that have not ended are cancelled.`)) return;
    try {
      await api(`jobs/${enc(job.uuid)}/terminate`, { method: "POST" });
      ctx.flash(`Job "${job.name}" is terminating.`);
      await load();
    } catch (error) {
      ctx.fail(error, result);
    }
  }

  async function load() {
    let list;
    try {
      [job, list] = await Promise.all([api(`jobs/${enc(key)}`), api(`jobs/${enc(key)}/tasks`)]);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        notFound(ctx, "Job", "#/jobs");
        return false;
      }
      throw error;
    }
    if (!ctx.alive()) return false;
    replace(head, h("h1", {}, job.name, " ", stateBadge(job.state)));
    terminate.disabled = job.state !== "Active";
    replace(
      body,
      fieldList([
        ["UUID", h("code", {}, job.uuid)],
        ["Short name", job.shortname],
        ["Pool", job.poolUuid ? h("a", { href: `#/pools/${job.poolUuid}` }, job.poolUuid) : null],
        ["Dependencies between tasks", job.useDependencies ? "yes" : "no"],
        ["Maximum wall time", job.maxWallTime],
        ["Created", dateCell(job.creationDate)],
        ["Ended", dateCell(job.endDate)],
        ["Tags", job.tags?.length ? tagList(job.tags) : null],
      ]),
    );
    replace(tasks, tasksTable(list, "job-tasks"));
    return !JOB_FINAL.has(job.state);
  }

  ctx.every(load, POLL_MS);
}
