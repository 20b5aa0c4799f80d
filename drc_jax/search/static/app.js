// drc-jax search page: plain JS against the JSON API (/api/health, /api/search).
"use strict";

const $ = (id) => document.getElementById(id);
let lastQuery = "";
let lastOverrides = null; // the user's aff / neg / strength edits for lastQuery

function setStatus(text) { $("status").textContent = text; }

async function getJSON(url) {
  const res = await fetch(url);
  const body = await res.json();
  if (!res.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(detail || res.statusText);
  }
  return body;
}

async function loadHealth() {
  try {
    const h = await getJSON("/api/health");
    const when = h.last_indexed ? new Date(h.last_indexed).toLocaleString() : "never";
    $("index-info").textContent =
      `${h.images.toLocaleString()} images in ${h.roots.join(", ")} · last indexed ${when} · ` +
      `model ${h.model} · decomposer ${h.decomposer}`;
    $("random-note").hidden = !h.random_weights;
    $("k").max = h.max_k;
  } catch (e) {
    $("index-info").textContent = `cannot reach the server: ${e.message}`;
  }
}

function searchURL(method, overrides) {
  const p = new URLSearchParams({ q: lastQuery, k: $("k").value || "24", method });
  for (const [key, value] of Object.entries(overrides || {})) p.set(key, value);
  return `/api/search?${p}`;
}

function hitCard(hit) {
  const card = document.createElement("figure");
  card.className = "hit";
  const link = document.createElement("a");
  if (hit.available) {
    link.href = hit.file;
    link.target = "_blank";
    link.rel = "noopener";
    const img = document.createElement("img");
    img.src = hit.thumb;
    img.alt = hit.id;
    img.loading = "lazy";
    link.append(img);
  } else {
    link.className = "unavailable";
    link.textContent = "file not available (moved, deleted or outside the indexed folders)";
  }
  const meta = document.createElement("figcaption");
  meta.className = "meta";
  const score = document.createElement("div");
  score.className = "score";
  score.textContent = `#${hit.rank} · ${hit.score.toFixed(4)}`;
  const path = document.createElement("div");
  path.className = "path";
  path.textContent = hit.path;
  path.title = hit.path;
  meta.append(score, path);
  card.append(link, meta);
  return card;
}

function column(result, title) {
  const col = document.createElement("section");
  col.className = "column";
  col.dataset.method = result.method;
  const h = document.createElement("h3");
  h.textContent = title;
  const grid = document.createElement("div");
  grid.className = "grid";
  result.hits.forEach((hit) => grid.append(hitCard(hit)));
  col.append(h, grid);
  return col;
}

function showDecomposition(res) {
  const d = res.decomposition;
  $("decomposition").hidden = false;
  $("aff").value = d.aff;
  $("neg").value = d.negated ? d.neg : "";
  $("strength").value = d.negated ? d.strength : "";
  $("cf").textContent = d.negated ? d.cf : "(no negation: plain CLIP score of the query)";
  $("dec-state").textContent = res.overridden ? "(your edits)" : "(from the decomposer)";
}

const LABELS = { drc: "DRC", clip: "CLIP", spacevlm: "SpaceVLM" };

async function run(overrides) {
  lastOverrides = overrides;
  const method = $("method").value;
  const compare = $("compare").checked && method !== "clip";
  setStatus("searching…");
  try {
    const main = getJSON(searchURL(method, overrides));
    const clip = compare ? getJSON(searchURL("clip")) : null;
    const res = await main;
    showDecomposition(res);
    const results = $("results");
    results.replaceChildren();
    results.classList.toggle("compare", compare);
    if (compare) results.append(column(await clip, "CLIP"));
    results.append(column(res, LABELS[res.method] || res.method));
    setStatus(`${res.hits.length} results for “${res.query}” in ${res.took_ms.toFixed(0)} ms`);
  } catch (e) {
    setStatus(`error: ${e.message}`);
  }
}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  lastQuery = $("q").value.trim();
  if (lastQuery) run(null);
});

$("apply").addEventListener("click", () => {
  if (!lastQuery) return;
  const overrides = { aff: $("aff").value, neg: $("neg").value };
  if ($("neg").value.trim() && $("strength").value) overrides.strength = $("strength").value;
  run(overrides);
});

$("reset").addEventListener("click", () => { if (lastQuery) run(null); });
$("compare").addEventListener("change", () => { if (lastQuery) run(lastOverrides); });

loadHealth();
