#include "http/dashboard_page.h"

namespace hubcache {

// clang-format off
const std::string_view kDashboardHtml = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hubcache</title>
<link rel="icon" href="data:,">
<style>
:root {
  --bg: #f4f6f9; --card: #ffffff; --text: #1b2430; --muted: #6b7685; --line: #e3e8ef;
  --accent: #2563eb; --good: #16a34a; --warn: #d97706; --bad: #dc2626;
  --cache: #22c55e; --upstream: #f59e0b; --ratio: #2563eb;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0f141a; --card: #171e27; --text: #e6ebf1; --muted: #8b97a7; --line: #273140;
          --accent: #60a5fa; --ratio: #60a5fa; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font-size: 14px; line-height: 1.4; }
header { display: flex; align-items: center; justify-content: space-between; gap: 16px;
         padding: 14px 24px; background: var(--card); border-bottom: 1px solid var(--line); }
.brand { font-size: 18px; font-weight: 650; letter-spacing: .2px; }
.brand .logo { color: var(--accent); }
.muted { color: var(--muted); font-weight: 400; }
.status { color: var(--muted); display: flex; align-items: center; gap: 6px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--muted); display: inline-block; }
.dot.live { background: var(--good); box-shadow: 0 0 0 3px rgba(22,163,74,.18); }
.dot.down { background: var(--bad); }
main { padding: 20px 24px 40px; max-width: 1400px; margin: 0 auto; display: grid; gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; min-width: 0; }
.card h2 { margin: 0 0 10px; font-size: 12px; font-weight: 600; text-transform: uppercase;
           letter-spacing: .6px; color: var(--muted); }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 16px; }
.big { font-size: 30px; font-weight: 650; font-variant-numeric: tabular-nums; line-height: 1.15; }
.sub { color: var(--muted); margin-top: 4px; font-size: 13px; }
.sub span { color: var(--text); font-variant-numeric: tabular-nums; }
.meter { height: 6px; border-radius: 3px; background: var(--line); margin-top: 8px; overflow: hidden; }
.meter > div { height: 100%; width: 0; background: var(--accent); transition: width .4s; }
.meter > div.high { background: var(--warn); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: right; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; font-size: 12px; }
th:first-child, td:first-child { text-align: left; }
td.name { white-space: normal; word-break: break-all; }
tr.repo td { font-weight: 600; background: color-mix(in srgb, var(--accent) 5%, transparent); }
tr.tag td:first-child { padding-left: 24px; }
td.digest { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; color: var(--muted); }
.empty { color: var(--muted); text-align: center; padding: 18px; }
dl { display: grid; grid-template-columns: 1fr auto; gap: 4px 16px; margin: 0 0 12px; }
dt { color: var(--muted); } dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
.legend { display: flex; gap: 18px; color: var(--muted); font-size: 12px; margin-top: 6px; flex-wrap: wrap; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
svg#chart { width: 100%; height: 240px; display: block; }
svg text { fill: var(--muted); font-size: 11px; }
.toolbar { display: flex; justify-content: space-between; align-items: center; gap: 12px; margin-bottom: 8px; }
.toolbar h2 { margin: 0; }
input[type=search] { padding: 6px 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--text); min-width: 220px; }
button.evict { border: 1px solid var(--bad); color: var(--bad); background: transparent; border-radius: 6px; padding: 2px 10px; cursor: pointer; font-size: 12px; }
button.evict:hover { background: var(--bad); color: #fff; }
button.delete { border: 1px solid var(--bad); color: var(--bad); background: transparent; border-radius: 6px; padding: 2px 10px; cursor: pointer; font-size: 12px; }
button.delete:hover { background: var(--bad); color: #fff; }
.minikpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 16px; margin-bottom: 12px; }
.minikpis .label { color: var(--muted); font-size: 12px; }
.minikpis .big { font-size: 24px; }
tr.hosted-repo td { font-weight: 600; background: color-mix(in srgb, var(--good) 6%, transparent); }
tr.hosted-tag td:first-child { padding-left: 24px; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: var(--line); color: var(--text); }
.pill.bad { background: color-mix(in srgb, var(--bad) 18%, transparent); color: var(--bad); }
#notice { display: none; padding: 10px 14px; border-radius: 8px; background: color-mix(in srgb, var(--bad) 12%, transparent); color: var(--bad); }
</style>
</head>
<body>
<header>
  <div class="brand"><span class="logo">&#9670;</span> hubcache <span class="muted" data-stat="version" data-format="text"></span></div>
  <div class="status"><span id="live-dot" class="dot"></span><span id="live-text">connecting&hellip;</span>
    <span>&middot; up <span data-stat="uptime_seconds" data-format="duration"></span></span></div>
</header>
<main>
  <div id="notice"></div>
  <section class="kpis">
    <div class="card" id="kpi-hit-ratio"><h2>Hit ratio</h2>
      <div class="big" data-stat="hit_ratio.requests" data-format="percent"></div>
      <div class="sub">of requests &middot; <span data-stat="hit_ratio.bytes" data-format="percent"></span> of bytes</div></div>
    <div class="card" id="kpi-saved"><h2>Bandwidth saved</h2>
      <div class="big" data-stat="bytes.saved" data-format="bytes"></div>
      <div class="sub">served <span data-stat="bytes.served" data-format="bytes"></span> &middot; fetched <span data-stat="bytes.fetched_upstream" data-format="bytes"></span></div></div>
    <div class="card" id="kpi-cache"><h2>Cache size</h2>
      <div class="big" data-stat="cache.size_bytes" data-format="bytes"></div>
      <div class="meter"><div id="cache-meter"></div></div>
      <div class="sub"><span id="cache-cap">no cap</span> &middot; <span data-stat="cache.entries"></span> objects &middot; <span data-stat="cache.evictions"></span> evicted</div></div>
    <div class="card" id="kpi-requests"><h2>Registry requests</h2>
      <div class="big" id="requests-total" data-value=""></div>
      <div class="sub"><span data-stat="requests.blob.requests"></span> blobs &middot; <span data-stat="requests.manifest.requests"></span> manifests</div></div>
    <div class="card" id="kpi-fills"><h2>Downloads in flight</h2>
      <div class="big" data-stat="fills.in_flight"></div>
      <div class="sub"><span data-stat="fills.started"></span> started &middot; <span data-stat="fills.coalesced"></span> joined &middot; <span data-stat="fills.failed"></span> failed</div></div>
    <div class="card" id="kpi-ratelimit"><h2>Docker Hub pulls left</h2>
      <div class="big" data-stat="upstream.ratelimit.remaining"></div>
      <div class="sub"><span id="ratelimit-of">of <span data-stat="upstream.ratelimit.limit"></span> per window &middot; </span><span id="ratelimit-seen">not reported by the upstream</span></div></div>
  </section>

  <section class="card">
    <h2>Recent traffic <span class="muted" id="chart-span"></span></h2>
    <svg id="chart" viewBox="0 0 1000 240" preserveAspectRatio="none" role="img" aria-label="bytes served and hit ratio over time"></svg>
    <div class="legend"><span><i style="background:var(--cache)"></i>served from cache</span>
      <span><i style="background:var(--upstream)"></i>served from upstream</span>
      <span><i style="background:var(--ratio);height:3px;vertical-align:3px"></i>hit ratio (requests)</span></div>
  </section>

  <section class="grid2">
    <div class="card"><h2>Requests by kind</h2>
      <table id="kinds"><thead><tr><th>kind</th><th>requests</th><th>hits</th><th>misses</th><th>stale</th><th>errors</th></tr></thead>
      <tbody>
        <tr data-kind="manifest"><td>manifests</td><td data-stat="requests.manifest.requests"></td><td data-stat="requests.manifest.hits"></td><td data-stat="requests.manifest.misses"></td><td data-stat="requests.manifest.stale"></td><td data-stat="requests.manifest.errors"></td></tr>
        <tr data-kind="blob"><td>blobs</td><td data-stat="requests.blob.requests"></td><td data-stat="requests.blob.hits"></td><td data-stat="requests.blob.misses"></td><td data-stat="requests.blob.stale"></td><td data-stat="requests.blob.errors"></td></tr>
        <tr data-kind="tag_revalidation"><td>tag revalidations</td><td data-stat="requests.tag_revalidation.requests"></td><td data-stat="requests.tag_revalidation.hits"></td><td data-stat="requests.tag_revalidation.misses"></td><td data-stat="requests.tag_revalidation.stale"></td><td data-stat="requests.tag_revalidation.errors"></td></tr>
      </tbody></table>
      <div class="sub" style="margin-top:8px">tag revalidations: hit = unchanged upstream, miss = tag moved, stale = upstream failed and the cached tag was served</div>
    </div>
    <div class="card"><h2>Upstream</h2>
      <dl>
        <dt>requests</dt><dd data-stat="upstream.requests_total"></dd>
        <dt>bytes received</dt><dd data-stat="upstream.bytes_received" data-format="bytes"></dd>
        <dt>token fetches</dt><dd data-stat="upstream.token_fetches"></dd>
        <dt>errors (5xx, 429, bad bytes, unreachable)</dt><dd data-stat="upstream.errors"></dd>
        <dt>no response (connect, TLS, timeout)</dt><dd data-stat="upstream.transport_errors"></dd>
        <dt>cache write errors</dt><dd data-stat="cache.write_errors"></dd>
      </dl>
      <table id="upstream-registries"><thead><tr><th>registry</th><th>requests</th><th>bytes received</th><th>no response</th></tr></thead><tbody></tbody></table>
      <table id="upstream-status"><thead><tr><th>registry</th><th>method</th><th>status</th><th>requests</th></tr></thead><tbody></tbody></table>
    </div>
  </section>

  <section class="grid2">
    <div class="card"><h2>Top repositories by bytes served</h2>
      <table id="top-repos"><thead><tr><th>repository</th><th>requests</th><th>bytes served</th></tr></thead><tbody></tbody></table></div>
    <div class="card"><h2>Latency by route</h2>
      <table id="latency"><thead><tr><th>route</th><th>requests</th><th>p50</th><th>p90</th><th>p99</th></tr></thead><tbody></tbody></table></div>
  </section>

  <section class="card" id="hosted">
    <div class="toolbar"><h2>Hosted repositories <span class="muted" id="hosted-count"></span></h2>
      <span class="muted" id="hosted-patterns"></span></div>
    <div class="minikpis">
      <div id="kpi-hosted-size"><div class="label">size (not in the cache size)</div>
        <div class="big" data-stat="hosted.bytes" data-format="bytes"></div>
        <div class="sub"><span data-stat="hosted.blobs"></span> blobs &middot; <span data-stat="hosted.manifests"></span> manifests</div></div>
      <div id="kpi-hosted-repositories"><div class="label">repositories</div>
        <div class="big" data-stat="hosted.repositories"></div>
        <div class="sub"><span data-stat="hosted.tags"></span> tags &middot; <span data-stat="hosted.deletes"></span> deleted</div></div>
      <div id="kpi-hosted-pushes"><div class="label">pushes (manifests)</div>
        <div class="big" data-stat="hosted.push_manifests"></div>
        <div class="sub"><span data-stat="hosted.push_blobs"></span> blobs &middot; <span data-stat="hosted.push_bytes" data-format="bytes"></span> uploaded &middot; <span data-stat="hosted.uploads_in_progress"></span> in progress &middot; <span data-stat="hosted.push_refused"></span> refused</div></div>
      <div id="kpi-hosted-requests"><div class="label">requests</div>
        <div class="big" data-stat="hosted.requests.total"></div>
        <div class="sub"><span data-stat="hosted.bytes_served" data-format="bytes"></span> served</div></div>
    </div>
    <table id="hosted-repos"><thead><tr><th>repository / tag</th><th>manifests</th><th>size</th><th>last push</th><th id="hosted-admin-col"></th></tr></thead><tbody></tbody></table>
  </section>

  <section class="card">
    <div class="toolbar"><h2>Cached repositories <span class="muted" id="repo-count"></span></h2>
      <input type="search" id="filter" placeholder="filter repositories and tags" aria-label="filter"></div>
    <table id="repos"><thead><tr><th>repository / tag</th><th>digest</th><th>size</th><th>last used</th><th id="evict-col"></th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const POLL_MS = 2000, HISTORY_MS = 5000;
let latest = null, lastOk = 0, filterText = "";

function get(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}
function fmtInt(v) { return Number(v).toLocaleString("en-US"); }
function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let x = Number(n), i = 0;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return (i === 0 ? x.toFixed(0) : x.toFixed(x < 10 ? 2 : 1)) + " " + units[i];
}
function fmtPercent(v) { return (v * 100).toFixed(1) + "%"; }
function fmtSeconds(s) {
  if (s < 0.001) return (s * 1e6).toFixed(0) + " \u00b5s";
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms";
  return s.toFixed(2) + " s";
}
function fmtDuration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + (s % 60) + "s";
  return s + "s";
}
function fmtAgo(ms, now) {
  if (!ms) return "\u2014";
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}
const FORMATS = { int: fmtInt, bytes: fmtBytes, percent: fmtPercent, duration: fmtDuration, text: String };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function fillBody(table, rows, emptyText, columns) {
  const body = table.tBodies[0];
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colSpan: columns }, emptyText))]));
}

function renderFigures(s) {
  for (const node of document.querySelectorAll("[data-stat]")) {
    const v = get(s, node.dataset.stat);
    node.dataset.value = v == null ? "" : String(v);
    node.textContent = v == null ? "\u2014" : FORMATS[node.dataset.format || "int"](v);
  }
  const total = s.requests.manifest.requests + s.requests.blob.requests;
  const totalNode = document.getElementById("requests-total");
  totalNode.dataset.value = String(total);
  totalNode.textContent = fmtInt(total);

  const cap = s.cache.max_size_bytes, size = s.cache.size_bytes || 0;
  const meter = document.getElementById("cache-meter");
  document.getElementById("cache-cap").textContent = cap ? "cap " + fmtBytes(cap) : "no cap";
  const share = cap ? Math.min(1, size / cap) : 0;
  meter.style.width = (share * 100).toFixed(1) + "%";
  meter.classList.toggle("high", share > 0.9);
  const rl = s.upstream.ratelimit;
  document.getElementById("ratelimit-of").style.display = rl.limit == null ? "none" : "";
  document.getElementById("ratelimit-seen").textContent =
    rl.seen_at_ms ? "seen " + fmtAgo(rl.seen_at_ms, s.now_ms) : "not reported by the upstream";
}

function renderUpstream(s) {
  const registries = s.upstream.registries.map(r => el("tr", { "data-registry": r.registry, title: r.url },
    el("td", {}, r.registry),
    el("td", { "data-value": String(r.requests_total) }, fmtInt(r.requests_total)),
    el("td", { "data-value": String(r.bytes_received) }, fmtBytes(r.bytes_received)),
    el("td", {}, fmtInt(r.transport_errors))));
  fillBody(document.getElementById("upstream-registries"), registries, "no upstream", 4);
  const rows = s.upstream.requests.map(r => el("tr", { "data-registry": r.registry, "data-method": r.method, "data-status": String(r.status) },
    el("td", {}, r.registry),
    el("td", {}, r.method),
    el("td", {}, el("span", { class: "pill" + (r.status === 0 || r.status >= 500 || r.status === 429 ? " bad" : "") },
       r.status === 0 ? "no response" : String(r.status))),
    el("td", {}, fmtInt(r.count))));
  fillBody(document.getElementById("upstream-status"), rows, "no upstream requests yet", 4);
}

function renderTop(s) {
  const rows = s.top_repositories.map(r => el("tr", { "data-repo": r.repository },
    el("td", { class: "name" }, r.repository), el("td", {}, fmtInt(r.requests)),
    el("td", { "data-value": String(r.bytes_served) }, fmtBytes(r.bytes_served))));
  fillBody(document.getElementById("top-repos"), rows, "nothing served yet", 3);
}

function renderLatency(s) {
  const rows = [];
  for (const [route, r] of Object.entries(s.http.routes)) {
    if (!r.latency_seconds.count) continue;
    rows.push(el("tr", { "data-route": route }, el("td", {}, route.replace("_", " ")), el("td", {}, fmtInt(r.requests)),
      el("td", {}, fmtSeconds(r.latency_seconds.p50)), el("td", {}, fmtSeconds(r.latency_seconds.p90)),
      el("td", {}, fmtSeconds(r.latency_seconds.p99))));
  }
  fillBody(document.getElementById("latency"), rows, "no requests yet", 5);
}

// DELETE /admin/images/<what>, after `question` is confirmed, with the admin
// token (asked once, then kept for the session).
async function adminDelete(what, question, failure) {
  if (!confirm(question)) return;
  let token = sessionStorage.getItem("hubcache-admin-token");
  if (!token) {
    token = prompt("Admin token");
    if (!token) return;
  }
  const res = await fetch("/admin/images/" + what, { method: "DELETE", headers: { Authorization: "Bearer " + token } });
  if (res.status === 401 || res.status === 403) {
    sessionStorage.removeItem("hubcache-admin-token");
    alert("The admin token was refused.");
    return;
  }
  sessionStorage.setItem("hubcache-admin-token", token);
  if (!res.ok) alert(failure + ": HTTP " + res.status);
  poll();
}

function evict(repo, tag, digest) {
  const what = tag ? repo + ":" + tag : repo + "@" + digest;
  return adminDelete(what, "Evict " + what + " from the cache?", "Eviction failed");
}

function deleteHosted(repo, tag) {
  const what = repo + ":" + tag;
  return adminDelete(what, "Delete the tag " + what + "? Pushed content is the only copy.", "Delete failed");
}

function renderHosted(s) {
  const h = s.hosted || {};
  const list = h.repository_list;
  const patterns = h.patterns || [];
  document.getElementById("hosted").hidden = patterns.length === 0 && !h.repositories;
  document.getElementById("hosted-patterns").textContent = patterns.length ? "HUBCACHE_HOSTED " + patterns.join(", ") : "";
  document.getElementById("hosted-count").textContent = list == null ? "(index unavailable)" :
    list.length + (list.length === 1 ? " repository" : " repositories");
  const admin = !!(s.admin && s.admin.enabled);
  document.getElementById("hosted-admin-col").textContent = admin ? "admin" : "";
  const rows = [];
  for (const repo of list || []) {
    rows.push(el("tr", { class: "hosted-repo", "data-repo": repo.name, "data-size": String(repo.size_bytes),
                         "data-manifests": String(repo.manifests), "data-last-push": String(repo.last_push_ms) },
      el("td", { class: "name" }, repo.name),
      el("td", {}, repo.manifests + (repo.manifests === 1 ? " manifest" : " manifests")),
      el("td", {}, fmtBytes(repo.size_bytes)), el("td", {}, fmtAgo(repo.last_push_ms, s.now_ms)), el("td", {})));
    for (const tag of repo.tags) {
      const cell = el("td", {});
      if (admin) {
        const b = el("button", { class: "delete", type: "button" }, "Delete");
        b.addEventListener("click", () => deleteHosted(repo.name, tag));
        cell.append(b);
      }
      rows.push(el("tr", { class: "hosted-tag", "data-repo": repo.name, "data-tag": tag },
        el("td", { class: "name" }, ":" + tag), el("td", {}), el("td", {}), el("td", {}), cell));
    }
  }
  fillBody(document.getElementById("hosted-repos"), rows, "nothing pushed yet", 5);
}

function renderRepositories(s) {
  const table = document.getElementById("repos");
  const admin = !!(s.admin && s.admin.enabled);
  document.getElementById("evict-col").textContent = admin ? "admin" : "";
  const repos = s.repositories || [];
  document.getElementById("repo-count").textContent = s.repositories == null ? "(index unavailable)" :
    repos.length + (repos.length === 1 ? " repository" : " repositories");
  const rows = [];
  for (const repo of repos) {
    const match = !filterText || repo.name.includes(filterText) || repo.tags.some(t => t.tag.includes(filterText));
    if (!match) continue;
    rows.push(el("tr", { class: "repo", "data-repo": repo.name, "data-size": String(repo.size_bytes) },
      el("td", { class: "name" }, repo.name), el("td", {}, repo.tags.length + (repo.tags.length === 1 ? " image" : " images")),
      el("td", {}, fmtBytes(repo.size_bytes)), el("td", {}, fmtAgo(repo.last_used_ms, s.now_ms)), el("td", {})));
    for (const t of repo.tags) {
      const cell = el("td", {});
      if (admin) {
        const b = el("button", { class: "evict", type: "button" }, "Evict");
        b.addEventListener("click", () => evict(repo.name, t.tag, t.digest));
        cell.append(b);
      }
      rows.push(el("tr", { class: "tag", "data-repo": repo.name, "data-tag": t.tag, "data-digest": t.digest, "data-size": String(t.size_bytes) },
        el("td", { class: "name" }, t.tag ? ":" + t.tag : "(by digest)"),
        el("td", { class: "digest", title: t.digest }, t.digest.replace("sha256:", "").slice(0, 12)),
        el("td", {}, fmtBytes(t.size_bytes)), el("td", {}, fmtAgo(t.last_used_ms, s.now_ms)), cell));
    }
  }
  fillBody(table, rows, repos.length ? "no match" : "the cache is empty", 5);
}

function renderChart(history) {
  const svg = document.getElementById("chart");
  const W = 1000, H = 240, L = 56, R = 40, T = 10, B = 24;
  const samples = history.samples || [];
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const hits = b.hits - a.hits, misses = b.misses - a.misses;
    const cache = b.served_from_cache_bytes - a.served_from_cache_bytes;
    const upstream = (b.served_bytes - b.served_from_cache_bytes) - (a.served_bytes - a.served_from_cache_bytes);
    points.push({ t0: a.t_ms, t1: b.t_ms, cache: Math.max(0, cache), upstream: Math.max(0, upstream),
                  ratio: hits + misses > 0 ? hits / (hits + misses) : null });
  }
  svg.dataset.points = String(points.length);
  const parts = [];
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  };
  const t1 = samples.length ? samples[samples.length - 1].t_ms : Date.now();
  const t0 = samples.length ? samples[0].t_ms : t1 - 60000;
  const span = Math.max(t1 - t0, 60000);
  document.getElementById("chart-span").textContent = "\u00b7 last " + fmtDuration(span / 1000);
  const x = t => L + (W - L - R) * (t - (t1 - span)) / span;
  const maxBytes = Math.max(1, ...points.map(p => p.cache + p.upstream));
  const y = v => H - B - (H - T - B) * v / maxBytes;
  const yr = r => H - B - (H - T - B) * r;
  for (let i = 0; i <= 4; i++) {
    const yy = T + (H - T - B) * i / 4;
    parts.push(node("line", { x1: L, x2: W - R, y1: yy, y2: yy, stroke: "var(--line)", "stroke-width": 1 }));
    parts.push(node("text", { x: L - 6, y: yy + 4, "text-anchor": "end" }, fmtBytes(maxBytes * (4 - i) / 4)));
    parts.push(node("text", { x: W - R + 6, y: yy + 4 }, (100 - 25 * i) + "%"));
  }
  for (const p of points) {
    const x0 = x(p.t0), w = Math.max(1, x(p.t1) - x0 - 1);
    if (p.upstream > 0) parts.push(node("rect", { x: x0, y: y(p.upstream), width: w, height: H - B - y(p.upstream), fill: "var(--upstream)" }));
    if (p.cache > 0) parts.push(node("rect", { x: x0, y: y(p.upstream + p.cache), width: w, height: y(p.upstream) - y(p.upstream + p.cache), fill: "var(--cache)" }));
  }
  let d = "";
  for (const p of points) {
    if (p.ratio == null) continue;
    d += (d ? " L" : "M") + ((x(p.t0) + x(p.t1)) / 2).toFixed(1) + " " + yr(p.ratio).toFixed(1);
  }
  if (d) parts.push(node("path", { d, fill: "none", stroke: "var(--ratio)", "stroke-width": 2, "vector-effect": "non-scaling-stroke", id: "ratio-line" }));
  if (points.length <= 60) {
    for (const p of points) {
      if (p.ratio == null) continue;
      const dot = node("circle", { cx: ((x(p.t0) + x(p.t1)) / 2).toFixed(1), cy: yr(p.ratio).toFixed(1), r: 3.5, fill: "var(--ratio)" });
      dot.append(node("title", {}, fmtPercent(p.ratio) + " hit ratio"));
      parts.push(dot);
    }
  }
  for (let i = 0; i <= 4; i++) {
    const t = t1 - span + span * i / 4;
    const label = new Date(t).toLocaleTimeString([], span < 600000
      ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
    parts.push(node("text", { x: L + (W - L - R) * i / 4, y: H - 6, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, label));
  }
  svg.replaceChildren(...parts);
}

function setLive(ok, message) {
  document.getElementById("live-dot").className = "dot " + (ok ? "live" : "down");
  document.getElementById("live-text").textContent = message;
  const notice = document.getElementById("notice");
  notice.style.display = ok ? "none" : "block";
  notice.textContent = ok ? "" : "Cannot reach the mirror: " + message + ". Showing the last figures received.";
}

async function poll() {
  try {
    const res = await fetch("/stats", { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    latest = await res.json();
    renderFigures(latest);
    renderUpstream(latest);
    renderTop(latest);
    renderLatency(latest);
    renderRepositories(latest);
    renderHosted(latest);
    lastOk = Date.now();
    setLive(true, "live");
    document.body.dataset.loaded = "1";
  } catch (e) {
    setLive(false, String(e.message || e));
  }
}

async function pollHistory() {
  try {
    const res = await fetch("/stats/history", { cache: "no-store" });
    if (res.ok) renderChart(await res.json());
  } catch (e) { /* the stats poll reports the outage */ }
}

document.getElementById("filter").addEventListener("input", e => {
  filterText = e.target.value.trim();
  if (latest) renderRepositories(latest);
});
poll();
pollHistory();
setInterval(poll, POLL_MS);
setInterval(pollHistory, HISTORY_MS);
setInterval(() => { if (lastOk && Date.now() - lastOk > 3 * POLL_MS) setLive(false, "no answer for " + fmtDuration((Date.now() - lastOk) / 1000)); }, 1000);
</script>
</body>
</html>
)html";
// clang-format on

}  // namespace hubcache
