// Renders /admin/api/openapi.json: operations with their parameters, bodies
// and answers, then the schemas. Text only (textContent, never markup), so a
// description cannot inject anything; no inline script or style (the policy).
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

const schemaName = (ref) => ref.replace("#/components/schemas/", "");
const anchor = (name) => "schema-" + name;

// A schema as a short type: links for references, `a | b` for alternatives.
function typeOf(s) {
  if (!s || Object.keys(s).length === 0) return el("span", { class: "type" }, "any");
  if (s.$ref) {
    const name = schemaName(s.$ref);
    return el("a", { class: "type", href: "#" + anchor(name) }, name);
  }
  const alts = s.oneOf || s.anyOf;
  if (alts) return join(alts.map(typeOf), " | ");
  if (s.allOf) return join(s.allOf.map(typeOf), " & ");
  if (s.enum) return el("span", { class: "type" }, "one of " + s.enum.map((v) => JSON.stringify(v)).join(", "));
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  const parts = types.map((t) => {
    if (t === "array") return el("span", { class: "type" }, "array of ", typeOf(s.items));
    if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object") {
      return el("span", { class: "type" }, "map of ", typeOf(s.additionalProperties));
    }
    return el("span", { class: "type" }, s.format ? `${t} (${s.format})` : t);
  });
  return parts.length ? join(parts, " | ") : el("span", { class: "type" }, "any");
}

function join(nodes, sep) {
  const span = el("span");
  nodes.forEach((n, i) => {
    if (i) span.append(sep);
    span.append(n);
  });
  return span;
}

function content(c) {
  const list = el("span");
  for (const [type, media] of Object.entries(c || {})) {
    list.append(el("code", {}, type), " ", typeOf(media.schema), " ");
  }
  return list;
}

function operation(path, method, op) {
  const open = (op.security || []).some((r) => Object.keys(r).length === 0);
  const box = el("div", { class: "op", id: `${method}-${path}` },
    el("h3", {}, el("span", { class: `method m-${method}` }, method), path,
      open ? el("span", { class: "open" }, "no key needed") : null));
  if (op.summary) box.append(el("p", {}, op.summary));
  if (op.description && op.description !== op.summary) box.append(el("p", { class: "muted" }, op.description));
  if (op.parameters && op.parameters.length) {
    const rows = op.parameters.map((p) => el("tr", {},
      el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null),
      el("td", {}, p.in), el("td", {}, typeOf(p.schema)), el("td", {}, p.description || "")));
    box.append(el("h4", {}, "Parameters"),
      el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "")), ...rows));
  }
  if (op.requestBody) {
    box.append(el("h4", {}, "Body"), el("p", {}, op.requestBody.description || "", " ", content(op.requestBody.content),
      op.requestBody.required ? el("span", { class: "req" }, " required") : null));
  }
  const rows = Object.entries(op.responses || {}).map(([status, r]) => el("tr", {},
    el("td", {}, el("code", {}, status)), el("td", {}, r.description || ""), el("td", {}, content(r.content))));
  box.append(el("h4", {}, "Answers"),
    el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, ""), el("th", {}, "body")), ...rows));
  return box;
}

function schema(name, s) {
  const box = el("div", { class: "schema", id: anchor(name) }, el("h3", {}, name));
  if (s.description) box.append(el("p", {}, s.description));
  const parts = s.allOf || [s];
  for (const part of parts) {
    if (!part.properties) {
      box.append(el("p", {}, typeOf(part)));
      continue;
    }
    const required = new Set(part.required || []);
    const rows = Object.entries(part.properties).map(([prop, p]) => el("tr", {},
      el("td", {}, el("code", {}, prop), required.has(prop) ? el("span", { class: "req" }, " required") : null),
      el("td", {}, typeOf(p)), el("td", {}, p.description || "")));
    box.append(el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "")), ...rows));
  }
  return box;
}

async function main() {
  const status = document.getElementById("status");
  let doc;
  try {
    const response = await fetch("/admin/api/openapi.json");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    doc = await response.json();
  } catch (err) {
    status.textContent = "The document could not be loaded: " + err.message;
    return;
  }
  status.hidden = true;
  document.getElementById("title").textContent = doc.info.title;
  document.getElementById("version").textContent = `version ${doc.info.version} · OpenAPI ${doc.openapi}`;
  document.getElementById("description").textContent = doc.info.description || "";
  const toc = el("ul");
  const ops = document.getElementById("operations");
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      toc.append(el("li", {}, el("a", { href: `#${method}-${path}` }, el("span", { class: `method m-${method}` }, method), path)));
      ops.append(operation(path, method, item[method]));
    }
  }
  document.getElementById("toc").append(toc);
  const schemas = Object.entries((doc.components || {}).schemas || {});
  document.getElementById("schemas-title").hidden = schemas.length === 0;
  const box = document.getElementById("schemas");
  for (const [name, s] of schemas) box.append(schema(name, s));
}

main();
