// One task: its fields, its instances, the tail of its output (all instances or one), and the
// abort / clone / delete buttons. Refreshed every 2 s until the task has ended.

import { api, ApiError, enc } from "./api.js";
import {
  FINAL,
  dateCell,
  fieldList,
  fmtSeconds,
  h,
  parseRanges,
  progressBar,
  rawJson,
  replace,
  stateBadge,
  table,
  tagList,
} from "./dom.js";

const POLL_MS = 2000;
const MAX_ROWS = 500;
const TAIL_CHARS = 200_000;

function bucketLink(name, prefix) {
  const q = prefix ? `?prefix=${enc(prefix)}` : "";
  return h("a", { href: `#/buckets/${enc(name)}${q}`, class: "bucket-link" }, prefix ? `${name}/${prefix}` : name);
}

function resourceLinks(task) {
  const links = [];
  for (const name of task.resourceBuckets || []) links.push(bucketLink(name));
  for (const b of task.advancedResourceBuckets || []) {
    if (b?.bucketName) links.push(bucketLink(b.bucketName, b.filtering?.prefixFiltering?.prefix));
  }
  return links.length ? h("span", { class: "links" }, links) : null;
}

function exitText(inst) {
  if (inst.state === "Success") return "exit 0";
  const err = inst.error;
  if (!err) return "";
  const code = /exit code: (-?\d+)/.exec(err.debug || "");
  const message = (err.message || "").replace(/^instance \d+: /, "");
  return code ? `exit ${code[1]} — ${message}` : message;
}

// one row per instance: ended ones (completedInstances), running ones (perRunningInstanceInfo)
// and the rest, which wait in the queue
export function instanceRows(task) {
  const rows = new Map();
  for (const c of task.completedInstances || []) {
    rows.set(c.instanceId, {
      id: c.instanceId,
      state: c.state,
      attempts: c.executionAttemptCount,
      cpu: fmtSeconds(c.execTimeSec),
      wall: fmtSeconds(c.wallTimeSec),
      memory: c.peakMemoryMB ? `${c.peakMemoryMB} MB peak` : "—",
      progress: null,
      exit: exitText(c),
    });
  }
  const running = task.status?.runningInstancesInfo?.perRunningInstanceInfo || [];
  for (const r of running) {
    rows.set(r.instanceId, {
      id: r.instanceId,
      state: `Running (${r.phase})`,
      attempts: r.executionAttemptCount,
      cpu: r.cpuUsage ? `${r.cpuUsage.toFixed(0)}% CPU` : "—",
      wall: fmtSeconds(r.executionTimeSec),
      memory: r.currentMemoryMB ? `${r.currentMemoryMB} MB` : "—",
      progress: r.progress,
      exit: "",
    });
  }
  const waiting = task.dependencies?.state === "waiting" ? "Waiting" : "Queued";
  const ids = task.advancedRanges
    ? parseRanges(task.advancedRanges, MAX_ROWS)
    : Array.from({ length: Math.min(task.instanceCount || 0, MAX_ROWS) }, (_, i) => i);
  if (!FINAL.has(task.state)) {
    for (const id of ids) {
      if (!rows.has(id)) rows.set(id, { id, state: waiting, attempts: 0, cpu: "—", wall: "—", memory: "—", progress: null, exit: "" });
    }
  }
  return [...rows.values()].sort((a, b) => a.id - b.id).slice(0, MAX_ROWS);
}

function instancesTable(task) {
  const rows = instanceRows(task).map((r) =>
    h(
      "tr",
      { dataset: { instance: r.id } },
      h("td", { class: "num" }, String(r.id)),
      h("td", {}, stateBadge(r.state.split(" ")[0]), r.state.includes(" ") ? ` ${r.state.split(" ").slice(1).join(" ")}` : ""),
      h("td", {}, r.progress === null ? "" : progressBar(r.progress)),
      h("td", { class: "num" }, String(r.attempts ?? 0)),
      h("td", { class: "num" }, r.cpu),
      h("td", { class: "num" }, r.wall),
      h("td", { class: "num" }, r.memory),
      h("td", { class: "exit" }, r.exit),
    ),
  );
  return table(["Instance", "State", "Progress", "Attempts", "CPU time", "Wall time", "Memory", "Exit / error"], rows, {
    class: "list",
    id: "instances",
  });
}

function overview(task) {
  return fieldList([
    ["UUID", h("code", {}, task.uuid)],
    ["Short name", task.shortname],
    ["Profile", task.profile],
    ["Pool", task.poolUuid ? h("a", { href: `#/pools/${task.poolUuid}`, id: "pool-link" }, task.poolUuid) : null],
    ["Job", task.jobUuid ? h("a", { href: `#/jobs/${task.jobUuid}`, id: "job-link" }, task.jobUuid) : null],
    ["Instances", task.advancedRanges ? `${task.advancedRanges}` : String(task.instanceCount)],
    ["Running", `${task.runningInstanceCount} instances, ${task.runningCoreCount} cores`],
    ["Created", dateCell(task.creationDate)],
    ["State since", dateCell(task.stateTransitionTime)],
    ["Previous state", task.previousState],
    ["Ended", dateCell(task.endDate)],
    ["Execution time", task.executionTime],
    ["Wall time", task.wallTime],
    ["Succeeded", task.status?.succeededRange],
    ["Failed", task.status?.failedRange],
    ["Resource buckets", resourceLinks(task)],
    ["Result bucket", task.resultBucket ? bucketLink(task.resultBucket) : null],
    ["Results", String(task.resultsCount ?? 0)],
    ["Tags", task.tags?.length ? tagList(task.tags) : null],
    ["Labels", Object.keys(task.labels || {}).length ? Object.entries(task.labels).map(([k, v]) => `${k}=${v}`).join(", ") : null],
    [
      "Retries",
      `${task.retrySettings?.maxPerInstanceRetries ?? 0} per instance, ${task.retrySettings?.maxTotalRetries ?? "no"} in total`,
    ],
    ["Dependencies", task.dependencies?.dependsOn?.length ? `${task.dependencies.dependsOn.join(", ")} (${task.dependencies.state})` : null],
  ]);
}

function constantsTable(task) {
  const rows = (task.constants || []).map((c) => h("tr", {}, h("td", {}, h("code", {}, c.key)), h("td", {}, h("code", {}, c.value))));
  return rows.length ? table(["Constant", "Value"], rows, { class: "list constants" }) : null;
}

function errorsList(task) {
  if (!task.errors?.length) return null;
  return h(
    "ul",
    { class: "errors", id: "task-errors" },
    task.errors.map((e) => h("li", {}, e.message, e.debug ? h("small", {}, ` (${e.debug})`) : "")),
  );
}

export function taskView(ctx, key) {
  let task = null;
  const head = h("div", { class: "task-head" });
  const actions = h("div", { class: "actions" });
  const actionResult = h("div", { class: "action-result" });
  const body = h("div", { class: "task-body" });
  const instances = h("section", { class: "instances" });
  const logs = logPanel(ctx, key);

  const abort = h("button", { type: "button", id: "abort", class: "danger", onclick: onAbort }, "Abort");
  const clone = h("button", { type: "button", id: "clone", onclick: onClone }, "Clone");
  const del = h("button", { type: "button", id: "delete", class: "danger", onclick: onDelete }, "Delete");
  replace(actions, abort, clone, del);

  replace(
    ctx.root,
    h("p", { class: "crumbs" }, h("a", { href: "#/tasks" }, "Tasks"), " / ", h("span", {}, key)),
    head,
    actions,
    actionResult,
    body,
    h("h2", {}, "Instances"),
    instances,
    h("h2", {}, "Output"),
    logs.element,
  );

  async function load() {
    try {
      task = await api(`tasks/${enc(key)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(ctx.root, h("h1", {}, "Task not found"), h("p", { class: "empty" }, "It does not exist or was deleted. ", h("a", { href: "#/tasks" }, "Back to the tasks")));
        return false;
      }
      throw error;
    }
    if (!ctx.alive()) return false;
    draw();
    await logs.refresh(task);
    return !FINAL.has(task.state);
  }

  function draw() {
    replace(
      head,
      h("h1", {}, task.name, " ", stateBadge(task.state)),
      h("div", { class: "task-progress", id: "task-progress" }, progressBar(task.progress, task.state)),
    );
    abort.disabled = FINAL.has(task.state);
    const open = body.querySelector("details.raw")?.open;
    const raw = rawJson(task);
    raw.open = Boolean(open);
    replace(body, errorsList(task), overview(task), constantsTable(task), raw);
    replace(instances, instancesTable(task));
    logs.setInstances(task);
  }

  async function onAbort() {
    if (!confirm(`Abort task "${task.name}"? Its running instances are stopped.`)) return;
    abort.disabled = true;
    try {
      await api(`tasks/${enc(task.uuid)}/abort`, { method: "POST" });
      ctx.flash(`Task "${task.name}" aborted.`);
      actionResult.replaceChildren();
      await load();
    } catch (error) {
      ctx.fail(error, actionResult);
      abort.disabled = false;
    }
  }

  async function onClone() {
    const name = prompt(`Clone task "${task.name}" as a new task named:`, `${task.name}-clone`);
    if (name === null) return;
    try {
      const made = await api(`tasks/${enc(task.uuid)}/clone`, { method: "POST", body: name ? { name } : {} });
      ctx.flash(`Task "${task.name}" cloned as "${name || task.name}".`);
      ctx.navigate(`#/tasks/${made.uuid}`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 405) && /endpoint|method/.test(error.message)) {
        error.message = "This server cannot clone tasks (no POST /tasks/{uuid}/clone).";
      }
      ctx.fail(error, actionResult);
    }
  }

  async function onDelete() {
    const running = !FINAL.has(task.state) ? " It is aborted first." : "";
    if (!confirm(`Delete task "${task.name}"?${running} This cannot be undone.`)) return;
    try {
      await api(`tasks/${enc(task.uuid)}`, { method: "DELETE" });
      ctx.flash(`Task "${task.name}" deleted.`);
      ctx.navigate("#/tasks");
    } catch (error) {
      ctx.fail(error, actionResult);
    }
  }

  ctx.every(load, POLL_MS);
}

// stdout or stderr of the whole task (lines prefixed "<instance>> ") or of one instance; the
// last TAIL_CHARS characters, kept scrolled to the end unless the reader scrolled up
function logPanel(ctx, key) {
  const instanceSelect = h("select", { id: "log-instance", "aria-label": "instance", onchange: () => refreshNow() }, h("option", { value: "" }, "all instances"));
  const streamSelect = h(
    "select",
    { id: "log-stream", "aria-label": "stream", onchange: () => refreshNow() },
    h("option", { value: "stdout" }, "stdout"),
    h("option", { value: "stderr" }, "stderr"),
  );
  const pre = h("pre", { class: "log", id: "log", tabindex: "0" });
  const note = h("span", { class: "note", id: "log-note" });
  const element = h("div", { class: "log-panel" }, h("div", { class: "log-controls" }, streamSelect, instanceSelect, note), pre);
  let known = "";
  let lastTask = null;
  let seq = 0;

  function setInstances(task) {
    const ids = instanceRows(task).map((r) => String(r.id));
    const sig = ids.join(",");
    if (sig === known) return;
    known = sig;
    const chosen = instanceSelect.value;
    replace(instanceSelect, h("option", { value: "" }, "all instances"), ids.map((id) => h("option", { value: id, selected: id === chosen }, `instance ${id}`)));
  }

  async function refresh(task) {
    lastTask = task;
    const mine = ++seq;
    const instance = instanceSelect.value;
    // the server cuts the tail: a long output is never sent whole every 2 s
    const path = `tasks/${enc(key)}/${streamSelect.value}${instance ? `/${enc(instance)}` : ""}?tail=${TAIL_CHARS + 1}`;
    let text;
    try {
      text = await api(path, { as: "text" });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) text = "";
      else throw error;
    }
    if (mine !== seq || !ctx.alive()) return;
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
    const cut = text.length > TAIL_CHARS;
    const shown = cut ? text.slice(text.length - TAIL_CHARS) : text;
    if (pre.textContent !== shown) {
      pre.textContent = shown;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    pre.dataset.instance = instance;
    pre.dataset.stream = streamSelect.value;
    const live = task && !FINAL.has(task.state) ? "live, every 2 s" : "complete";
    note.textContent = `${cut ? `last ${TAIL_CHARS / 1000} kB, ` : ""}${text ? live : "no output yet"}`;
  }

  function refreshNow() {
    refresh(lastTask).catch((error) => ctx.fail(error, note));
  }

  return { element, refresh, setInstances };
}
