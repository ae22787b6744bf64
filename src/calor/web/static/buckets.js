// Buckets: the list, and a browser of one bucket by "folders" (prefixes up to a "/") with
// downloads. Objects come through the token-authenticated /buckets endpoints, not S3.

import { api, ApiError, enc, session } from "./api.js";
import { dateCell, fmtBytes, h, replace, table } from "./dom.js";

const PAGE = 200;

export function bucketsView(ctx) {
  const holder = h("div");
  replace(ctx.root, h("h1", {}, "Buckets"), holder);
  ctx.every(async () => {
    const buckets = await api("buckets");
    if (!ctx.alive()) return;
    if (!buckets.length) {
      replace(holder, h("p", { class: "empty" }, "No buckets. Create them over S3 (the SDK, boto3, the AWS CLI), as the README shows."));
      return;
    }
    const rows = buckets.map((b) =>
      h(
        "tr",
        { dataset: { bucket: b.name } },
        h("td", {}, h("a", { href: `#/buckets/${enc(b.name)}`, class: "bucket-link" }, b.name)),
        h("td", { class: "num" }, String(b.objectCount)),
        h("td", { class: "num" }, fmtBytes(b.bytesUsed)),
        h("td", {}, dateCell(b.creationDate)),
      ),
    );
    replace(holder, table(["Name", "Objects", "Size", "Created"], rows, { class: "list", id: "buckets" }));
  }, 5000);
}

function crumbs(name, prefix) {
  const parts = prefix.split("/").filter(Boolean);
  const out = [h("a", { href: "#/buckets" }, "Buckets"), " / ", h("a", { href: `#/buckets/${enc(name)}` }, name)];
  let acc = "";
  for (const part of parts) {
    acc += `${part}/`;
    out.push(" / ", h("a", { href: `#/buckets/${enc(name)}?prefix=${enc(acc)}` }, part));
  }
  return h("p", { class: "crumbs" }, out);
}

async function download(name, key, where) {
  // the token goes in a header, so the bytes are fetched here and handed to the browser
  const blob = await api(`buckets/${enc(name)}/objects/${key.split("/").map(enc).join("/")}`, { as: "blob" });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: key.split("/").pop() || "download", hidden: true });
  where.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function bucketView(ctx, name) {
  const prefix = ctx.query.get("prefix") || "";
  const result = h("div", { class: "action-result" });
  const tbody = h("tbody", { id: "objects" });
  const more = h("button", { type: "button", id: "more-objects", hidden: true, onclick: () => load() }, "More…");
  const empty = h("p", { class: "empty", hidden: true }, "Nothing here.");
  let token = "";

  replace(
    ctx.root,
    crumbs(name, prefix),
    h("h1", {}, name, prefix ? h("small", {}, ` / ${prefix}`) : ""),
    result,
    h(
      "table",
      { class: "list", id: "bucket-listing" },
      h("thead", {}, h("tr", {}, ["Name", "Size", "Last modified", "ETag", ""].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    ),
    empty,
    more,
  );

  async function load() {
    const q = new URLSearchParams({ prefix, delimiter: "/", maximumResults: String(PAGE) });
    if (token) q.set("token", token);
    let listing;
    try {
      listing = await api(`buckets/${enc(name)}/objects?${q}`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
        replace(ctx.root, h("h1", {}, "Bucket not found"), h("p", { class: "empty" }, error.message, " ", h("a", { href: "#/buckets" }, "Back to the buckets")));
        return;
      }
      throw error;
    }
    if (!ctx.alive()) return;
    for (const p of listing.prefixes) {
      tbody.append(
        h(
          "tr",
          { class: "folder", dataset: { prefix: p } },
          h("td", {}, h("a", { href: `#/buckets/${enc(name)}?prefix=${enc(p)}` }, `${p.slice(prefix.length)}`)),
          h("td", {}, ""),
          h("td", {}, ""),
          h("td", {}, ""),
          h("td", {}, ""),
        ),
      );
    }
    for (const o of listing.objects) {
      const button = h("button", { type: "button", class: "download", "data-key": o.key }, "Download");
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await download(name, o.key, result);
        } catch (error) {
          ctx.fail(error, result);
        } finally {
          button.disabled = false;
        }
      });
      tbody.append(
        h(
          "tr",
          { dataset: { key: o.key } },
          h("td", {}, o.key.slice(prefix.length)),
          h("td", { class: "num" }, fmtBytes(o.size)),
          h("td", {}, dateCell(o.lastModified)),
          h("td", {}, h("code", { class: "etag" }, o.etag)),
          h("td", {}, button),
        ),
      );
    }
    token = listing.nextToken || "";
    more.hidden = !token;
    empty.hidden = tbody.children.length > 0;
  }

  if (session.token) load().catch((error) => ctx.fail(error, result));
}
