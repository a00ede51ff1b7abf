/* threadline API reference: renders the server's own /openapi.json — operations grouped
 * by tag with their parameters, request bodies and responses, then every schema — with
 * no third-party code and no request to another origin. Every value reaches the page as
 * text (dom.js); schema references link to the schema's section of this page. */

import { h, errorBox } from "./dom.js";

const METHODS = ["get", "put", "post", "patch", "delete", "head", "options"];
const REF_PREFIX = "#/components/schemas/";
const MAX_INLINE_DEPTH = 3;

const root = document.getElementById("docs");

async function main() {
  let doc;
  try {
    const response = await fetch("/openapi.json", { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(`GET /openapi.json answered ${response.status} ${response.statusText}`);
    doc = await response.json();
  } catch (error) {
    root.replaceChildren(errorBox(error));
    return;
  }
  const groups = operationsByTag(doc);
  const content = h(
    "div.tld-content",
    {},
    intro(doc),
    [...groups].map(([tag, operations]) => tagSection(tag, operations)),
    schemasSection(doc),
  );
  root.replaceChildren(navigation(groups, doc, content), content);
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

/** ``Map(tag -> [{method, path, op}])`` in the document's order (untagged under "other"). */
function operationsByTag(doc) {
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      const parameters = [...(item.parameters || []), ...(op.parameters || [])];
      groups.get(tag).push({ method, path, op, parameters });
    }
  }
  return groups;
}

function anchor(method, path, op) {
  return "op-" + (op.operationId || `${method}-${path}`).replace(/[^A-Za-z0-9_-]/g, "-");
}

function schemaAnchor(name) {
  return "schema-" + name.replace(/[^A-Za-z0-9_-]/g, "-");
}

function intro(doc) {
  const info = doc.info || {};
  const schemes = Object.values((doc.components || {}).securitySchemes || {});
  const bearer = schemes.some((s) => s.type === "http" && String(s.scheme).toLowerCase() === "bearer");
  return h(
    "section.tld-intro",
    {},
    h("h1.tla-title", {}, `${info.title || "API"} ${info.version ? "v" + info.version : ""}`),
    info.description ? description(info.description) : null,
    bearer
      ? h(
          "p.tla-muted",
          {},
          "When the server has access tokens, every call under /api/ and /v1/ sends ",
          h("code", {}, "Authorization: Bearer <token>"),
          ".",
        )
      : null,
  );
}

function navigation(groups, doc, content) {
  const filter = h("input.tla-input.tld-filter", {
    type: "search",
    placeholder: "Filter operations",
    "aria-label": "Filter operations",
    oninput: () => applyFilter(content, filter.value),
  });
  const lists = [...groups].map(([tag, operations]) => [
    h("h2", {}, tag),
    h(
      "ul",
      {},
      operations.map(({ method, path, op }) =>
        h("li", { dataset: { filter: `${method} ${path} ${op.summary || ""}`.toLowerCase() } },
          h("a", { href: "#" + anchor(method, path, op), title: op.summary || "" }, `${method.toUpperCase()} ${path}`)),
      ),
    ),
  ]);
  const schemaCount = Object.keys((doc.components || {}).schemas || {}).length;
  return h(
    "nav.tld-nav",
    { "aria-label": "Operations" },
    filter,
    lists,
    schemaCount ? [h("h2", {}, "schemas"), h("ul", {}, h("li", {}, h("a", { href: "#schemas" }, `${schemaCount} schemas`)))] : null,
  );
}

/** Shows only the operations (and their nav entries) whose method, path or summary match. */
function applyFilter(content, text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  const matches = (value) => words.every((word) => value.includes(word));
  for (const node of document.querySelectorAll("[data-filter]")) node.hidden = !matches(node.dataset.filter);
  for (const section of content.querySelectorAll(".tld-ops")) {
    section.hidden = !section.querySelector(".tld-op:not([hidden])");
  }
}

function tagSection(tag, operations) {
  return h("section.tld-tag.tld-ops", {}, h("h2", {}, tag), operations.map(operation));
}

function operation({ method, path, op, parameters }) {
  const body = op.requestBody;
  return h(
    "section.tld-op",
    { id: anchor(method, path, op), dataset: { filter: `${method} ${path} ${op.summary || ""}`.toLowerCase() } },
    h(
      "h3",
      {},
      h("span.tld-method.tld-" + method, {}, method.toUpperCase()),
      h("span.tld-path", {}, path),
      op.summary ? h("span.tld-summary", {}, op.summary) : null,
    ),
    op.description ? description(op.description) : null,
    parameters.length ? [h("h4", {}, "Parameters"), parametersTable(parameters)] : null,
    body ? [h("h4", {}, "Request body" + (body.required ? "" : " (optional)")), content(body.content)] : null,
    h("h4", {}, "Responses"),
    responsesTable(op.responses || {}),
  );
}

function parametersTable(parameters) {
  return h(
    "table.tld-table",
    {},
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "In"), h("th", {}, "Type"), h("th", {}, "Notes"))),
    h(
      "tbody",
      {},
      parameters.map((p) =>
        h(
          "tr",
          {},
          h("td", {}, h("span.tld-name", {}, p.name), p.required ? h("span.tld-required", {}, "required") : null),
          h("td", {}, p.in),
          h("td", {}, schemaType(p.schema || {}, 0)),
          h("td.tld-notes", {}, notes(p.schema || {}, p.description)),
        ),
      ),
    ),
  );
}

function content(media) {
  return Object.entries(media || {}).map(([type, entry]) =>
    h("div", {}, h("div.tld-media", {}, type), entry.schema ? schemaType(entry.schema, 0) : null),
  );
}

function responsesTable(responses) {
  return h(
    "table.tld-table",
    {},
    h("thead", {}, h("tr", {}, h("th", {}, "Status"), h("th", {}, "Meaning"), h("th", {}, "Body"))),
    h(
      "tbody",
      {},
      Object.entries(responses)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([status, response]) =>
          h(
            "tr",
            {},
            h("td", {}, h("span.tld-name", {}, status)),
            h("td", {}, response.description || ""),
            h("td", {}, content(response.content)),
          ),
        ),
    ),
  );
}

function schemasSection(doc) {
  const schemas = (doc.components || {}).schemas || {};
  const names = Object.keys(schemas).sort();
  if (!names.length) return null;
  return h(
    "section.tld-tag",
    { id: "schemas" },
    h("h2", {}, "Schemas"),
    names.map((name) =>
      h(
        "section.tld-schema",
        { id: schemaAnchor(name) },
        h("h3", {}, name),
        schemas[name].description ? description(schemas[name].description) : null,
        schemaBody(schemas[name], 0),
      ),
    ),
  );
}

/** An object's properties as a table; anything else as its type. */
function schemaBody(schema, depth) {
  const properties = Object.entries(schema.properties || {});
  if (!properties.length) return h("div", {}, schemaType(schema, depth), h("div.tld-notes", {}, notes(schema)));
  const required = new Set(schema.required || []);
  return h(
    "table.tld-table",
    {},
    h("thead", {}, h("tr", {}, h("th", {}, "Field"), h("th", {}, "Type"), h("th", {}, "Notes"))),
    h(
      "tbody",
      {},
      properties.map(([name, property]) =>
        h(
          "tr",
          {},
          h("td", {}, h("span.tld-name", {}, name), required.has(name) ? h("span.tld-required", {}, "required") : null),
          h("td", {}, schemaType(property, depth + 1)),
          h("td.tld-notes", {}, notes(property, property.description)),
        ),
      ),
    ),
  );
}

/** A schema's type as text, with links to named schemas; small inline objects expanded. */
function schemaType(schema, depth) {
  if (schema.$ref) {
    const name = String(schema.$ref).startsWith(REF_PREFIX) ? schema.$ref.slice(REF_PREFIX.length) : schema.$ref;
    return h("a.tld-type", { href: "#" + schemaAnchor(name) }, name);
  }
  const alternatives = schema.anyOf || schema.oneOf;
  if (alternatives) {
    const parts = [];
    for (const alternative of alternatives) {
      if (parts.length) parts.push(" | ");
      parts.push(schemaType(alternative, depth));
    }
    return h("span.tld-type", {}, parts);
  }
  if (schema.allOf && schema.allOf.length === 1) return schemaType(schema.allOf[0], depth);
  if (schema.type === "array") {
    return h("span.tld-type", {}, "array of ", schema.items ? schemaType(schema.items, depth) : "anything");
  }
  if (schema.type === "object" || schema.properties) {
    if (schema.properties && depth < MAX_INLINE_DEPTH) return schemaBody(schema, depth);
    const values = schema.additionalProperties;
    if (values && typeof values === "object") return h("span.tld-type", {}, "map of string to ", schemaType(values, depth));
    return h("span.tld-type", {}, "object");
  }
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "any";
  return h("span.tld-type", {}, schema.format ? `${type} (${schema.format})` : type);
}

/** Constraints, default and description of a schema, as one line of text. */
function notes(schema, text) {
  const out = [];
  const source = schema.anyOf ? schema.anyOf.find((s) => s.type !== "null") || schema : schema;
  if (source.enum) out.push("one of " + source.enum.map((v) => JSON.stringify(v)).join(", "));
  const bounds = [
    ["minimum", "≥"],
    ["exclusiveMinimum", ">"],
    ["maximum", "≤"],
    ["exclusiveMaximum", "<"],
  ];
  for (const [key, sign] of bounds) if (typeof source[key] === "number") out.push(`${sign} ${source[key]}`);
  if (source.minLength === 1) out.push("not empty");
  else if (source.minLength) out.push(`at least ${source.minLength} characters`);
  if (source.maxLength !== undefined) out.push(`at most ${source.maxLength} characters`);
  if (source.maxItems !== undefined) out.push(`at most ${source.maxItems} items`);
  if (source.pattern) out.push(`matches ${source.pattern}`);
  if (schema.default !== undefined && schema.default !== null) out.push("default " + JSON.stringify(schema.default));
  const parts = [out.join("; ")];
  if (text) parts.push(out.length ? " — " : "", inlineCode(text));
  return parts;
}

function description(text) {
  return h("p.tld-desc", {}, inlineCode(text));
}

/** Text with ``code`` or `code` spans as <code> elements (never parsed as HTML). */
function inlineCode(text) {
  return String(text)
    .split(/``([^`]+)``|`([^`]+)`/)
    .map((part, index) => (index % 3 === 0 ? part : part === undefined ? null : h("code", {}, part)));
}

main();
