// Small helpers: building elements (text only, never HTML from data) and formatting values.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "disabled" || key === "selected") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const FINAL = new Set(["Success", "Failure", "Cancelled"]);
export const ACTIVE = [
  "Submitted",
  "PartiallyDispatched",
  "FullyDispatched",
  "PartiallyExecuting",
  "FullyExecuting",
  "UploadingResults",
];
const NOT_ENDED = "0001-01-01";

export function stateBadge(state) {
  return h("span", { class: `state state-${state || "unknown"}`, "data-state": state }, state || "?");
}

export function progressBar(value, state) {
  const pct = Math.max(0, Math.min(100, Number(value) || 0));
  const fill = h("span", { class: "fill" });
  fill.style.width = `${pct}%`;
  return h(
    "span",
    { class: `progress${state ? ` progress-${state}` : ""}`, role: "progressbar", "aria-valuenow": pct.toFixed(0), "aria-valuemin": 0, "aria-valuemax": 100 },
    h("span", { class: "track" }, fill),
    h("span", { class: "pct" }, `${pct.toFixed(0)}%`),
  );
}

function pad(n) {
  return String(n).padStart(2, "0");
}

export function fmtDate(iso) {
  if (!iso || iso.startsWith(NOT_ENDED)) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function dateCell(iso) {
  return h("time", { datetime: iso, title: iso }, fmtDate(iso));
}

export function fmtBytes(n) {
  const value = Number(n) || 0;
  if (value < 1024) return `${value} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = value;
  let i = -1;
  do {
    v /= 1024;
    i += 1;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtSeconds(sec) {
  const s = Number(sec);
  if (!Number.isFinite(s)) return "—";
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const total = Math.round(s);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  return hours ? `${hours} h ${pad(minutes)} min` : `${minutes} min ${pad(total % 60)} s`;
}

export function tagList(tags, onTag) {
  return h(
    "span",
    { class: "tags" },
    (tags || []).map((tag) =>
      onTag
        ? h("button", { type: "button", class: "tag", title: `filter by ${tag}`, onclick: () => onTag(tag) }, tag)
        : h("span", { class: "tag" }, tag),
    ),
  );
}

export function table(columns, rows, attrs) {
  return h(
    "table",
    attrs || {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows),
  );
}

// "0-3,7" → [0, 1, 2, 3, 7] (at most `limit` ids)
export function parseRanges(text, limit) {
  const out = [];
  for (const part of String(text || "").split(",")) {
    const m = part.trim().match(/^(\d+)(?:-(\d+))?$/);
    if (!m) continue;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    for (let i = first; i <= last && out.length < limit; i += 1) out.push(i);
  }
  return out;
}

export function fieldList(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs
      .filter(([, value]) => value !== undefined)
      .map(([label, value]) => [h("dt", {}, label), h("dd", {}, value === null || value === "" ? "—" : value)]),
  );
}

export function rawJson(value) {
  return h("details", { class: "raw" }, h("summary", {}, "All fields (JSON)"), h("pre", {}, JSON.stringify(value, null, 2)));
}
