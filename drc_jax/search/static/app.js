// drc-jax search page: plain JS against the JSON API (/api/health, /api/search).
// The whole search (query, method, edits, filters, pages) lives in the URL: Back/Forward, reload
// and shared links restore it.
"use strict";

const $ = (id) => document.getElementById(id);
// Results per page (?per= in the URL, default 24).
const PAGE = Math.max(1, Math.min(200, parseInt(new URLSearchParams(location.search).get("per") || "24", 10) || 24));
const FILTERS = ["type", "folder", "name", "taken_after", "taken_before"];
const LABELS = { drc: "DRC", clip: "CLIP", spacevlm: "SpaceVLM" };
const EXAMPLES = ["a dog not on a beach", "a street without cars", "cat -sofa", "a park, no people"];
let state = null; // what is on screen: {q, like, method, compare, edits, filters, pages}
let shown = []; // hits of the main column, in order (the viewer walks them)
let generation = null; // the index generation the results came from

function setStatus(text) { $("status").textContent = text; }

async function getJSON(url) {
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    offline(true);
    throw new Error("cannot reach the search server");
  }
  offline(false);
  const body = await res.json();
  if (!res.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(detail || res.statusText);
  }
  return body;
}

function offline(down) {
  $("offline").hidden = !down;
  $("results").classList.toggle("stale", down);
}

// ------------------------------------------------------------------ state <-> URL

function stateFromURL() {
  const p = new URLSearchParams(location.search);
  const filters = {};
  for (const f of FILTERS) if (p.get(f)) filters[f] = p.get(f);
  const edited = p.has("aff") || p.has("neg") || p.has("strength");
  return {
    q: p.get("q") || "",
    like: p.get("like") || "",
    method: LABELS[p.get("method")] ? p.get("method") : "drc",
    compare: p.get("compare") === "1",
    edits: edited
      ? { aff: p.get("aff"), negs: p.getAll("neg").filter((n) => n), strength: p.get("strength") }
      : null,
    filters,
    pages: Math.max(1, Math.min(20, parseInt(p.get("pages") || "1", 10) || 1)),
  };
}

function stateParams(s) {
  const p = new URLSearchParams();
  if (s.q) p.set("q", s.q);
  if (s.like) p.set("like", s.like);
  p.set("method", s.method);
  if (s.compare) p.set("compare", "1");
  if (s.edits) {
    if (s.edits.aff !== null) p.set("aff", s.edits.aff);
    if (s.edits.negs.length) s.edits.negs.forEach((n) => p.append("neg", n));
    else p.append("neg", ""); // every exclusion cleared
    if (s.edits.strength) p.set("strength", s.edits.strength);
  }
  for (const [f, v] of Object.entries(s.filters)) if (v) p.set(f, v);
  if (PAGE !== 24) p.set("per", String(PAGE));
  return p;
}

function go(next, push = true) {
  const p = stateParams(next);
  if (next.pages > 1) p.set("pages", String(next.pages));
  const url = `${location.pathname}?${p}`;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  run(next);
}

function showForm(s) {
  $("q").value = s.q;
  $("like-chip").hidden = !s.like;
  $("like-name").textContent = likeName(s.like);
  $("method").value = s.method;
  $("compare").checked = s.compare;
  for (const f of FILTERS) $(f).value = s.filters[f] || "";
  if (Object.keys(s.filters).length) $("filters").open = true;
}

function likeName(like) {
  if (!like) return "";
  return like.startsWith("upload:") ? "your photo" : like.split("/").pop();
}

function formState() {
  const filters = {};
  for (const f of FILTERS) if ($(f).value.trim()) filters[f] = $(f).value.trim();
  const like = state && !$("like-chip").hidden ? state.like : "";
  return {
    q: $("q").value.trim(), like, method: $("method").value, compare: $("compare").checked,
    edits: null, filters, pages: 1,
  };
}

// ------------------------------------------------------------------ the decomposition panel

function negRow(value) {
  const row = document.createElement("div");
  row.className = "neg-row";
  const label = document.createElement("label");
  label.textContent = "hide ";
  const input = document.createElement("input");
  input.type = "text";
  input.className = "neg";
  input.value = value;
  label.append(input);
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary remove";
  remove.textContent = "×";
  remove.setAttribute("aria-label", `stop hiding ${value || "this"}`);
  remove.addEventListener("click", () => row.remove());
  row.append(label, remove);
  return row;
}

function showDecomposition(res, method) {
  const d = res.decomposition;
  $("decomposition").hidden = false;
  $("aff").value = d.negated ? d.aff : d.caption;
  $("negs").replaceChildren(...d.negs.map(negRow));
  $("strength").value = d.negated ? d.strength : "strong";
  $("cf").textContent = d.negated ? res.cfs.join(" · ") : "(nothing hidden: plain similarity)";
  $("dec-state").textContent = res.overridden ? "(your edits)" : "";
  const shown = d.negated ? d.aff : d.caption;  // the line a phone shows instead of the panel
  $("dec-summary").textContent = method === "clip" ? "CLIP: the query as typed" :
    `show “${shown}”` + (d.negs.length ? ` · hide ${d.negs.join(", ")}` : "") +
    (res.overridden ? " (your edits)" : "");
  // CLIP scores the text as typed: offer no edit it would ignore. SpaceVLM ignores cf and strength.
  const clip = method === "clip";
  $("method-note").hidden = !clip;
  $("method-note").textContent =
    "CLIP scores the query exactly as typed, so there is nothing to edit; choose DRC to edit " +
    "what to show and hide.";
  for (const el of [$("aff").parentElement, $("negs"), $("add-neg"), $("apply"), $("reset")]) {
    el.hidden = clip;
  }
  $("dec-edit").hidden = clip;
  $("strength-field").hidden = clip || method === "spacevlm";
  $("cf-line").hidden = clip || method === "spacevlm";
}

function panelEdits() {
  const negs = [...document.querySelectorAll("#negs input.neg")]
    .map((i) => i.value.trim()).filter((v) => v);
  return { aff: $("aff").value, negs, strength: negs.length ? $("strength").value : null };
}

// ------------------------------------------------------------------ results

function fmtTime(s) {
  s = Math.max(0, Math.round(s || 0));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

function altText(hit) {
  const name = hit.id.split("/").pop();
  const kind = hit.kind === "video" ? "video" : "photo";
  return hit.taken ? `${kind} ${name}, ${hit.taken.slice(0, 10)}` : `${kind} ${name}`;
}

function thumbURL(hit, size) { // a video hit shows the frame it matched at
  const p = new URLSearchParams({ size: String(size) });
  if (hit.kind === "video" && hit.time) p.set("t", String(hit.time));
  return `${hit.thumb}?${p}`;
}

function hitCard(hit, index, main) {
  const card = document.createElement("figure");
  card.className = "hit";
  card.dataset.path = hit.path;
  const open = document.createElement(hit.available ? "a" : "div");
  open.className = "thumb";
  if (hit.available) {
    open.href = hit.file;
    open.addEventListener("click", (ev) => {
      if (!main) return;
      ev.preventDefault();
      openViewer(index);
    });
    const img = document.createElement("img");
    img.src = thumbURL(hit, 256);
    img.srcset = `${thumbURL(hit, 256)} 1x, ${thumbURL(hit, 512)} 2x`;
    img.alt = altText(hit);
    img.loading = "lazy";
    open.append(img);
    if (hit.kind === "video") {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = `▶ ${hit.duration ? fmtTime(hit.duration) : "video"}`;
      open.append(badge);
    }
  } else {
    open.classList.add("unavailable");
    open.textContent = "file not available (moved, deleted or outside the indexed folders)";
  }
  const meta = document.createElement("figcaption");
  meta.className = "meta";
  const score = document.createElement("div");
  score.className = "score";
  score.textContent = `#${hit.rank}`;
  score.title = `score ${hit.score.toFixed(4)}: higher is a closer match; only the order ` +
    "between results of one search means something";
  const bar = document.createElement("meter");
  bar.min = -0.2;
  bar.max = 0.4;
  bar.value = hit.score;
  bar.setAttribute("aria-label", "match");
  score.append(" ", bar);
  const path = document.createElement("div");
  path.className = "path";
  path.textContent = hit.id;
  path.title = hit.path;
  meta.append(score, path);
  if (hit.time !== undefined && hit.time !== null && hit.kind === "video") {
    const at = document.createElement("div");
    at.className = "at";
    at.textContent = `best match at ${fmtTime(hit.time)}`;
    meta.append(at);
  }
  if (hit.duplicates && hit.duplicates.length) {
    const dup = document.createElement("div");
    dup.className = "dup";
    dup.textContent = `also at: ${hit.duplicates.join(", ")}`;
    meta.append(dup);
  }
  if (hit.available) {
    const similar = document.createElement("button");
    similar.type = "button";
    similar.className = "secondary similar";
    similar.textContent = "Similar";
    similar.title = "photos like this one (add words to the search box to hide things)";
    similar.addEventListener("click", () => go({ ...formState(), q: "", like: hit.path }));
    meta.append(similar);
  }
  card.append(open, meta);
  return card;
}

function column(method, title) {
  const col = document.createElement("section");
  col.className = "column";
  col.dataset.method = method;
  const h = document.createElement("h3");
  h.textContent = title;
  const grid = document.createElement("div");
  grid.className = "grid";
  col.append(h, grid);
  return col;
}

function searchURL(s, method, offset, withEdits) {
  const p = stateParams({ ...s, method, edits: withEdits ? s.edits : null });
  p.delete("per");
  p.set("k", String(PAGE));
  p.set("offset", String(offset));
  return `/api/search?${p}`;
}

let runId = 0;

async function run(s) {
  const id = ++runId;
  state = s;
  showForm(s);
  $("start").hidden = true;
  const compare = s.compare && s.method !== "clip";
  setStatus("searching…");
  try {
    const results = $("results");
    const main = column(s.method, LABELS[s.method]);
    const other = compare ? column("clip", "CLIP") : null;
    shown = [];
    let res = null;
    for (let page = 0; page < s.pages; page++) {
      const [r, c] = await Promise.all([
        getJSON(searchURL(s, s.method, page * PAGE, true)),
        other ? getJSON(searchURL(s, "clip", page * PAGE, false)) : null,
      ]);
      if (id !== runId) return; // a newer search started
      res = r;
      for (const hit of r.hits) {
        main.querySelector(".grid").append(hitCard(hit, shown.length, true));
        shown.push(hit);
      }
      if (c) c.hits.forEach((hit) => other.querySelector(".grid").append(hitCard(hit, -1, false)));
      if (r.hits.length < PAGE) break;
    }
    results.replaceChildren(...(other ? [other, main] : [main]));
    results.classList.toggle("compare", compare);
    showDecomposition(res, s.method);
    $("more").hidden = !res.more;
    generation = res.generation;
    const what = s.like ? `photos like ${likeName(s.like)}` : `“${res.query}”`;
    setStatus(`${shown.length} of ${res.total.toLocaleString()} results for ${what} ` +
              `in ${res.took_ms.toFixed(0)} ms`);
  } catch (e) {
    if (id === runId) setStatus(`error: ${e.message}`);
  }
}

async function loadMore() {
  const s = { ...state, pages: state.pages + 1 };
  const p = stateParams(s);
  p.set("pages", String(s.pages));
  history.replaceState(null, "", `${location.pathname}?${p}`);
  state = s;
  try {
    const r = await getJSON(searchURL(s, s.method, shown.length, true));
    const grid = document.querySelector("#results .column[data-method] .grid");
    const mainGrid = document.querySelector(`#results .column[data-method="${s.method}"] .grid`);
    for (const hit of r.hits) {
      (mainGrid || grid).append(hitCard(hit, shown.length, true));
      shown.push(hit);
    }
    $("more").hidden = !r.more;
    setStatus(`${shown.length} of ${r.total.toLocaleString()} results`);
  } catch (e) {
    setStatus(`error: ${e.message}`);
  }
}

// ------------------------------------------------------------------ viewer

let viewing = -1;

function openViewer(index) {
  const hit = shown[index];
  if (!hit) return;
  viewing = index;
  const stage = $("stage");
  $("no-play").hidden = true;
  if (hit.kind === "video") {
    const v = document.createElement("video");
    v.controls = true;
    v.preload = "metadata";
    v.src = hit.file;
    v.addEventListener("loadedmetadata", () => { v.currentTime = hit.time || 0; });
    v.addEventListener("error", () => { $("no-play").hidden = false; });
    stage.replaceChildren(v);
  } else {
    const img = document.createElement("img");
    img.src = hit.file;
    img.alt = altText(hit);
    stage.replaceChildren(img);
  }
  $("download").href = hit.file;
  const rows = [
    ["file", hit.path],
    ["taken", hit.taken ? `${hit.taken}${hit.taken_source === "mtime" ? " (file date)" : ""}` : ""],
    ["size", hit.width ? `${hit.width} × ${hit.height}` : ""],
    ["length", hit.duration ? fmtTime(hit.duration) : ""],
    ["bytes", hit.bytes ? hit.bytes.toLocaleString() : ""],
  ];
  $("meta").replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    return [dt, dd];
  }));
  $("prev").disabled = index === 0;
  $("next").disabled = index === shown.length - 1;
  if (!$("viewer").open) $("viewer").showModal();
}

$("prev").addEventListener("click", () => openViewer(viewing - 1));
$("next").addEventListener("click", () => openViewer(viewing + 1));
$("close").addEventListener("click", () => $("viewer").close());
$("viewer").addEventListener("close", () => $("stage").replaceChildren());
$("viewer").addEventListener("keydown", (ev) => {
  if (ev.key === "ArrowLeft" && viewing > 0) openViewer(viewing - 1);
  if (ev.key === "ArrowRight" && viewing < shown.length - 1) openViewer(viewing + 1);
});

// ------------------------------------------------------------------ health, start screen

async function loadHealth() {
  try {
    const h = await getJSON("/api/health");
    const when = h.last_indexed ? new Date(h.last_indexed).toLocaleString() : "unknown";
    $("index-info").textContent =
      `${h.images.toLocaleString()} images in ${h.roots.join(", ")} · last indexed ${when} · ` +
      `model ${h.model} · decomposer ${h.decomposer}`;
    $("random-note").hidden = !h.random_weights;
    const job = h.indexing;
    $("indexing").hidden = !job || job.state === "idle";
    if (job && job.state !== "idle") {
      $("indexing").textContent = job.total
        ? `indexing new files: ${job.done} of ${job.total}…` : `looking for new files…`;
    }
    if (generation !== null && h.generation !== generation && state) {
      generation = h.generation;
      run(state); // the index changed under the results: search again
    }
  } catch (e) {
    $("index-info").textContent = `cannot reach the server: ${e.message}`;
  }
}

async function recentPhotos() {
  try {
    const r = await getJSON("/api/recent?k=12");
    const grid = $("recent");
    grid.replaceChildren(...r.hits.filter((h) => h.available).map((h) => {
      const a = document.createElement("a");
      a.className = "thumb";
      a.href = h.file;
      const img = document.createElement("img");
      img.src = h.thumb;
      img.alt = altText(h);
      img.loading = "lazy";
      a.append(img);
      return a;
    }));
  } catch (e) { /* the banner says the server is unreachable */ }
}

function startScreen() {
  $("start").hidden = false;
  recentPhotos();
  $("examples").replaceChildren(...EXAMPLES.map((q) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `?q=${encodeURIComponent(q)}`;
    a.textContent = q;
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      go({ ...formState(), q });
    });
    li.append(a);
    return li;
  }));
}

// ------------------------------------------------------------------ wiring

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const s = formState();
  if (s.q || s.like) go(s);
});
$("unlike").addEventListener("click", () => {
  $("like-chip").hidden = true;
  const s = formState();
  if (s.q) go(s);
});

$("decomposition").addEventListener("submit", (ev) => { // the button or Enter in a box
  ev.preventDefault();
  if (state) go({ ...state, edits: panelEdits(), pages: 1 });
});

$("dec-edit").addEventListener("click", () => {
  const open = $("decomposition").classList.toggle("open");
  $("dec-edit").setAttribute("aria-expanded", String(open));
  $("dec-edit").textContent = open ? "Done" : "Edit";
});
$("add-neg").addEventListener("click", () => {
  const row = negRow("");
  $("negs").append(row);
  row.querySelector("input").focus();
});
$("reset").addEventListener("click", () => { if (state) go({ ...state, edits: null, pages: 1 }); });
$("method").addEventListener("change", () => {
  if (state) go({ ...state, method: $("method").value, pages: 1 });
});
$("compare").addEventListener("change", () => {
  if (state) go({ ...state, compare: $("compare").checked });
});
$("more").addEventListener("click", loadMore);
$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  setStatus("reading your photo…");
  try {
    const res = await fetch("/api/upload", { method: "POST", body: file });
    const body = await res.json();
    if (!res.ok) throw new Error(body.detail || res.statusText);
    go({ ...formState(), q: $("q").value.trim(), like: body.like });
  } catch (e) {
    setStatus(`error: ${e.message}`);
  }
  $("upload").value = "";
});
window.addEventListener("popstate", () => {
  const s = stateFromURL();
  if (s.q || s.like) run(s);
  else { showForm(s); $("results").replaceChildren(); $("decomposition").hidden = true; startScreen(); }
});

loadHealth();
setInterval(loadHealth, 3000);
{
  const s = stateFromURL();
  if (s.q || s.like) run(s);
  else startScreen();
}
