// The retriever page: search (one system or two side by side), documents, and the agent's trace, streamed.
"use strict";

const $ = (id) => document.getElementById(id);
const STOP = new Set("a an and are as at be by for from has have how in is it of on or that the this to was were what when where which who why with".split(" "));
let token = sessionStorage.getItem("retriever-token") || "";
let lastTerms = [];

function headers(json) {
  const h = json ? { "Content-Type": "application/json" } : {};
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? { headers: headers(false) }
    : { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  const data = await response.json().catch(() => ({ code: "bad_response", message: response.statusText }));
  if (response.status === 401) $("token-form").hidden = false;
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

// Query terms: lower-case words, no stop words.
function terms(text) {
  return [...new Set((text.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((w) => w.length > 1 && !STOP.has(w)))];
}

// A fragment with every query term wrapped in <mark> (built from text nodes: no HTML injection).
function highlighted(text, words) {
  const fragment = document.createDocumentFragment();
  if (!words.length) { fragment.append(text); return fragment; }
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp("(" + escaped.join("|") + ")", "giu");
  text.split(pattern).forEach((piece, i) => fragment.append(i % 2 ? el("mark", {}, piece) : piece));
  return fragment;
}

function snippet(text, words, size = 260) {
  if (text.length <= size) return text;
  const lower = text.toLowerCase();
  const at = Math.min(...words.map((w) => lower.indexOf(w)).filter((i) => i >= 0), text.length);
  const start = at === text.length ? 0 : Math.max(0, at - 60);
  return (start ? "…" : "") + text.slice(start, start + size) + "…";
}

function docLink(docId, title, words) {
  return el("a", { href: "#doc=" + encodeURIComponent(docId), "data-doc": docId,
                   onclick: (e) => { e.preventDefault(); openDocument(docId, words); } }, title || docId);
}

// ---- engine info and systems
async function loadEngine() {
  try {
    const info = await api("/api/engine");
    $("engine-info").textContent = `${info.name} · generation ${info.generation} · ${info.documents} documents · ` +
      info.indexes.map((i) => i.spec).join(", ") + (info.llm ? ` · LM ${info.llm}` : " · no LM");
    const names = info.indexes.map((i) => i.name);
    const systems = [...names];
    if (names.length > 1) {
      systems.push("hybrid");
      for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) {
        systems.push(`rrf(${names[i]},${names[j]})`, `norm(${names[i]},${names[j]})`);
      }
    }
    for (const select of [$("system-a"), $("system-b")]) {
      select.replaceChildren(...systems.map((s) => el("option", { value: s }, s)));
    }
    $("system-a").value = info.default_using;
    $("system-b").value = systems.find((s) => s !== info.default_using) || systems[0];
  } catch (e) {
    $("engine-info").textContent = "engine: " + e.message;
  }
}

// ---- search
async function search(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  const k = Number($("k").value) || 10;
  const systems = [$("system-a").value];
  if ($("compare").checked) systems.push($("system-b").value);
  lastTerms = terms(query);
  $("search-status").textContent = "searching…";
  const started = performance.now();
  try {
    const results = await Promise.all(systems.map((using) => api("/api/search", { query, k, using })));
    const ranks = results.map((r) => new Map(r.hits.map((h) => [h.doc_id, h.rank])));
    $("results").replaceChildren(...results.map((r, i) => column(r, ranks[1 - i], systems.length > 1)));
    $("search-status").textContent = `${results.map((r) => r.hits.length).join(" / ")} hits · generation ` +
      `${results[0].generation} · ${Math.round(performance.now() - started)} ms`;
    history.replaceState(null, "", "#q=" + encodeURIComponent(query));
  } catch (e) {
    $("search-status").replaceChildren(el("span", { class: "error" }, e.message));
  }
}

function column(result, other, comparing) {
  const items = result.hits.map((h) => {
    const elsewhere = comparing ? (other.has(h.doc_id) ? `#${other.get(h.doc_id)} in the other` : "only here") : null;
    return el("li", { class: "hit", "data-doc": h.doc_id },
      el("div", { class: "meta" }, el("span", { class: "rank" }, "#" + h.rank),
         el("span", { class: "score" }, "score " + h.score.toFixed(4)), el("span", {}, h.doc_id),
         elsewhere && el("span", { class: elsewhere === "only here" ? "only" : "" }, elsewhere)),
      docLink(h.doc_id, h.title, lastTerms),
      el("p", {}, highlighted(snippet(h.text, lastTerms), lastTerms)));
  });
  return el("div", { class: "column", "data-using": result.using },
    el("h2", {}, result.using), items.length ? el("ol", { class: "hits" }, ...items) : el("p", { class: "muted" }, "no hits"));
}

// ---- documents
let returnFocus = null;
async function openDocument(docId, words) {
  returnFocus = document.activeElement;
  try {
    const doc = await api("/api/documents/" + encodeURIComponent(docId));
    $("doc-id").textContent = doc.doc_id;
    $("doc-title").replaceChildren(highlighted(doc.title || doc.doc_id, words || []));
    $("doc-text").replaceChildren(el("p", {}, highlighted(doc.text, words || [])));
    $("doc-view").hidden = false;
    $("doc-close").focus();
  } catch (e) {
    alert(e.message);
  }
}

function closeDocument() {
  $("doc-view").hidden = true;
  if (returnFocus) returnFocus.focus();
}

// ---- ask: Server-Sent Events over a POST (fetch reads the stream as it comes)
async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const words = terms(question);
  $("trace").replaceChildren();
  $("answer").hidden = true;
  $("ask-status").textContent = "thinking…";
  try {
    const response = await fetch("/api/ask/stream", { method: "POST", headers: headers(true),
      body: JSON.stringify({ question, max_hops: Number($("hops").value) || 2 }) });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      if (response.status === 401) $("token-form").hidden = false;
      throw new Error(data.message || response.statusText);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "null");
        onAskEvent(name, data, words);
      }
    }
  } catch (e) {
    $("ask-status").replaceChildren(el("span", { class: "error" }, e.message));
  }
}

function onAskEvent(name, data, words) {
  if (name === "start") $("ask-status").textContent = "hop 1…";
  if (name === "hop") {
    const kept = data.kept_documents.map((d) => el("li", {}, docLink(d.doc_id, d.title, words), " ",
                                                    el("span", { class: "muted" }, d.doc_id)));
    $("trace").append(el("li", { class: "hop", "data-hop": data.hop },
      el("div", {}, el("span", { class: "q" }, data.query), el("span", { class: "tag" }, data.source),
         el("span", { class: "tag" }, "decision: " + data.decision)),
      el("div", { class: "muted" }, `retrieved ${data.retrieved.length}` +
         (data.linked.length ? `, linked by title ${data.linked.length}` : "") + ` · ${data.seconds.toFixed(3)} s`),
      el("div", {}, "kept evidence:"), el("ul", {}, ...kept)));
    $("ask-status").textContent = `hop ${data.hop + 1} done (${data.decision})`;
  }
  if (name === "answer") {
    const cites = data.citations.map((d) => el("li", {}, docLink(d.doc_id, d.title, words)));
    $("answer").replaceChildren(el("div", { class: "muted" }, "answer"), el("div", { class: "text" }, data.answer || "(none)"),
      el("div", { class: "muted" }, "citations"), el("ol", { class: "citations" }, ...cites));
    $("answer").hidden = false;
    $("ask-status").textContent = `stopped: ${data.stop_reason} · generation ${data.generation}`;
  }
  if (name === "error") $("ask-status").replaceChildren(el("span", { class: "error" }, `${data.code}: ${data.message}`));
}

// ---- tabs and keyboard
function selectTab(tab) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute("aria-selected", on);
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
}

document.addEventListener("DOMContentLoaded", () => {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        selectTab(tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length]);
      }
    });
  });
  $("search-form").addEventListener("submit", search);
  $("ask-form").addEventListener("submit", ask);
  $("compare").addEventListener("change", () => { $("system-b").disabled = !$("compare").checked; });
  $("doc-close").addEventListener("click", closeDocument);
  $("doc-view").addEventListener("click", (e) => { if (e.target === $("doc-view")) closeDocument(); });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value;
    sessionStorage.setItem("retriever-token", token);
    $("token-form").hidden = true;
    loadEngine();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("doc-view").hidden) closeDocument();
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
    if (e.key === "/" && !typing) { e.preventDefault(); selectTab($("tab-search")); $("query").focus(); }
  });
  const initial = new URLSearchParams(location.hash.slice(1)).get("q");
  if (initial) $("query").value = initial;
  loadEngine();
});
