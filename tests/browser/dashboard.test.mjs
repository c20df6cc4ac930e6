// Loads the dashboard of running mirrors in Debian's headless chromium (driven by
// playwright-core, which downloads no browser of its own) and checks that what the
// page shows is what /stats says. Started by test_dashboard.py, which runs the mirrors
// and pulls images through them first; standalone use:
//
//   MIRROR_URL=http://127.0.0.1:5000 [ADMIN_MIRROR_URL=...] [SCREENSHOT=out.png] \
//     node tests/browser/dashboard.test.mjs
//
// Checks: every figure on the page (data-stat / data-value) equals the same path in
// /stats; the cached repositories, their tags, digests and sizes and the top
// repositories equal /stats; the chart has drawn the history; the page made no request
// to any other origin and logged no error; an evict button per image appears only on
// the mirror whose /stats says admin is enabled, and clicking it (confirm, then the
// admin token at the prompt) removes the image from the page and from /stats. The
// hosted repositories card lists what /stats `hosted.repository_list` says (name,
// size, manifests, tags), with a delete button per tag only with admin on; clicking one
// (confirm; the token is kept from the evict) deletes the tag from the page and /stats.
// Exits 0 when all pass, 1 otherwise.

import { check, finish, launchChromium } from "./chromium.mjs";

const MIRROR_URL = process.env.MIRROR_URL;
const ADMIN_MIRROR_URL = process.env.ADMIN_MIRROR_URL || "";
const ADMIN_TOKEN = process.env.ADMIN_TOKEN || "";
const SCREENSHOT = process.env.SCREENSHOT || "";
const SETTLE_MS = 15000; // the page polls every 2 s; give it a few rounds to catch up

if (!MIRROR_URL) {
  console.error("MIRROR_URL is required");
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const get = (obj, p) => p.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);

async function stats(base) {
  const res = await fetch(base + "/stats");
  if (!res.ok) throw new Error(`GET ${base}/stats: HTTP ${res.status}`);
  return res.json();
}

// What the page shows, read from its data attributes.
async function readPage(page) {
  return page.evaluate(() => {
    const figures = {};
    for (const el of document.querySelectorAll("[data-stat]")) {
      (figures[el.dataset.stat] ||= []).push(el.dataset.value);
    }
    const repos = [...document.querySelectorAll("#repos tr.repo")].map((r) => ({
      name: r.dataset.repo,
      size: r.dataset.size,
      tags: [...document.querySelectorAll("#repos tr.tag")]
        .filter((t) => t.dataset.repo === r.dataset.repo)
        .map((t) => ({ tag: t.dataset.tag, digest: t.dataset.digest, size: t.dataset.size })),
    }));
    const hosted = [...document.querySelectorAll("#hosted-repos tr.hosted-repo")].map((r) => ({
      name: r.dataset.repo,
      size: r.dataset.size,
      manifests: r.dataset.manifests,
      tags: [...document.querySelectorAll("#hosted-repos tr.hosted-tag")]
        .filter((t) => t.dataset.repo === r.dataset.repo)
        .map((t) => t.dataset.tag),
    }));
    const top = [...document.querySelectorAll("#top-repos tr[data-repo]")].map((r) => ({
      repository: r.dataset.repo,
      bytes: r.lastElementChild.dataset.value,
    }));
    const registries = [...document.querySelectorAll("#upstream-registries tr[data-registry]")].map((r) => ({
      registry: r.dataset.registry,
      requests: r.children[1].dataset.value,
      bytes: r.children[2].dataset.value,
    }));
    const chart = document.getElementById("chart");
    return {
      figures,
      registries,
      repos,
      hosted,
      hostedVisible: !document.getElementById("hosted").hidden,
      deleteButtons: document.querySelectorAll("#hosted-repos button.delete").length,
      hostedTagRows: document.querySelectorAll("#hosted-repos tr.hosted-tag").length,
      top,
      total: document.getElementById("requests-total").dataset.value,
      chartPoints: Number(chart.dataset.points || 0),
      ratioLine: !!document.getElementById("ratio-line"),
      bars: chart.querySelectorAll("rect").length,
      evictButtons: document.querySelectorAll("button.evict").length,
      tagRows: document.querySelectorAll("#repos tr.tag").length,
      live: document.getElementById("live-dot").className,
    };
  });
}

// The differences between the page and /stats ([] when they agree).
function compare(shown, s) {
  const diffs = [];
  for (const [stat, values] of Object.entries(shown.figures)) {
    if (stat === "uptime_seconds") continue; // moves every second
    const v = get(s, stat);
    const want = v == null ? "" : String(v);
    for (const got of values) if (got !== want) diffs.push(`${stat}: page ${got}, /stats ${want}`);
  }
  const total = s.requests.manifest.requests + s.requests.blob.requests;
  if (shown.total !== String(total)) diffs.push(`requests total: page ${shown.total}, /stats ${total}`);
  const repos = (s.repositories || []).map((r) => ({
    name: r.name,
    size: String(r.size_bytes),
    tags: r.tags.map((t) => ({ tag: t.tag, digest: t.digest, size: String(t.size_bytes) })),
  }));
  if (JSON.stringify(shown.repos) !== JSON.stringify(repos)) {
    diffs.push(`repositories: page ${JSON.stringify(shown.repos)}, /stats ${JSON.stringify(repos)}`);
  }
  const hosted = (s.hosted.repository_list || []).map((r) => ({
    name: r.name,
    size: String(r.size_bytes),
    manifests: String(r.manifests),
    tags: r.tags,
  }));
  if (JSON.stringify(shown.hosted) !== JSON.stringify(hosted)) {
    diffs.push(`hosted repositories: page ${JSON.stringify(shown.hosted)}, /stats ${JSON.stringify(hosted)}`);
  }
  const top = s.top_repositories.map((r) => ({ repository: r.repository, bytes: String(r.bytes_served) }));
  if (JSON.stringify(shown.top) !== JSON.stringify(top)) {
    diffs.push(`top repositories: page ${JSON.stringify(shown.top)}, /stats ${JSON.stringify(top)}`);
  }
  const registries = s.upstream.registries.map((r) => ({
    registry: r.registry,
    requests: String(r.requests_total),
    bytes: String(r.bytes_received),
  }));
  if (JSON.stringify(shown.registries) !== JSON.stringify(registries)) {
    diffs.push(`upstream registries: page ${JSON.stringify(shown.registries)}, /stats ${JSON.stringify(registries)}`);
  }
  return diffs;
}

async function openDashboard(context, base) {
  const page = await context.newPage();
  const problems = [];
  const origin = new URL(base).origin;
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("request", (r) => {
    if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) {
      problems.push(`request to another origin: ${r.url()}`);
    }
  });
  const response = await page.goto(base + "/", { waitUntil: "load" });
  check(response && response.status() === 200, `${base}/ answers 200`);
  await page.waitForSelector('body[data-loaded="1"]', { timeout: 10000 });
  return { page, problems };
}

async function main() {
  const { context, close } = await launchChromium({ viewport: { width: 1440, height: 1000 } });
  try {
    const { page, problems } = await openDashboard(context, MIRROR_URL);
    // The page and the test each read /stats; wait for a poll that saw the settled state.
    let shown;
    let diffs = ["not compared yet"];
    let s;
    const deadline = Date.now() + SETTLE_MS;
    while (Date.now() < deadline) {
      s = await stats(MIRROR_URL);
      shown = await readPage(page);
      diffs = compare(shown, s);
      if (diffs.length === 0 && shown.chartPoints > 0) break;
      await sleep(500);
    }
    check(diffs.length === 0, `figures, repositories and top repositories match /stats${diffs.length ? ":\n  " + diffs.join("\n  ") : ""}`);
    const figureCount = Object.keys(shown.figures).length;
    check(figureCount >= 30, `the page shows ${figureCount} figures from /stats`);
    check(shown.repos.length === (s.repositories || []).length && shown.repos.length > 0,
          `${shown.repos.length} cached repositories listed`);
    check(shown.chartPoints > 0 && shown.bars > 0 && shown.ratioLine,
          `the chart drew ${shown.chartPoints} intervals, ${shown.bars} bars and the hit ratio line`);
    check(shown.live.includes("live"), "the live indicator is on");
    check(!s.admin.enabled && shown.evictButtons === 0, "no evict button while admin is off");
    check(shown.hostedVisible && shown.hosted.length === 1 && shown.hostedTagRows === 2,
          `the hosted card lists ${shown.hosted.length} repository with ${shown.hostedTagRows} tags`);
    check(shown.deleteButtons === 0, "no delete button while admin is off");

    // The filter narrows the repository list.
    const first = shown.repos[0].name;
    await page.fill("#filter", first);
    const filtered = await page.$$eval("#repos tr.repo", (rows) => rows.map((r) => r.dataset.repo));
    check(filtered.length >= 1 && filtered.every((n) => n.includes(first)), `filtering by "${first}" keeps ${filtered.join(", ")}`);
    await page.fill("#filter", "");

    if (SCREENSHOT) {
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(`screenshot: ${SCREENSHOT}`);
    }
    check(problems.length === 0, `no page errors and no request elsewhere${problems.length ? ": " + problems.join("; ") : ""}`);

    if (ADMIN_MIRROR_URL) {
      const admin = await openDashboard(context, ADMIN_MIRROR_URL);
      const as = await stats(ADMIN_MIRROR_URL);
      let view;
      for (let i = 0; i < 20; i++) {
        view = await readPage(admin.page);
        if (view.tagRows > 0) break;
        await sleep(500);
      }
      check(as.admin.enabled, "the admin mirror says admin is enabled");
      check(view.tagRows > 0 && view.evictButtons === view.tagRows,
            `one evict button per cached image with admin on (${view.evictButtons} for ${view.tagRows})`);
      // Evict the first image: confirm, give the token, and it is gone from page and /stats.
      const dialogs = [];
      admin.page.on("dialog", (d) => {
        dialogs.push(d.type());
        d.type() === "prompt" ? d.accept(ADMIN_TOKEN) : d.accept();
      });
      const victim = await admin.page.$eval("#repos tr.tag", (r) => ({ repo: r.dataset.repo, tag: r.dataset.tag }));
      await admin.page.click("#repos tr.tag button.evict");
      let gone = false;
      for (let i = 0; i < 40 && !gone; i++) {
        await sleep(250);
        const after = await stats(ADMIN_MIRROR_URL);
        const listed = (after.repositories || []).some((r) => r.name === victim.repo && r.tags.some((t) => t.tag === victim.tag));
        const shown = await admin.page.$$eval("#repos tr.tag", (rows) => rows.map((r) => r.dataset.repo + ":" + r.dataset.tag));
        gone = !listed && !shown.includes(victim.repo + ":" + victim.tag);
      }
      check(JSON.stringify(dialogs) === JSON.stringify(["confirm", "prompt"]), `evict asked to confirm, then for the token (${dialogs.join(", ")})`);
      check(gone, `evicting ${victim.repo}:${victim.tag} removed it from the page and from /stats`);

      // Delete a hosted tag: confirm only (the token is kept), gone from page and /stats.
      view = await readPage(admin.page);
      check(view.hostedTagRows > 0 && view.deleteButtons === view.hostedTagRows,
            `one delete button per hosted tag with admin on (${view.deleteButtons} for ${view.hostedTagRows})`);
      dialogs.length = 0;
      const hostedVictim = await admin.page.$eval("#hosted-repos tr.hosted-tag", (r) => ({ repo: r.dataset.repo, tag: r.dataset.tag }));
      await admin.page.click("#hosted-repos tr.hosted-tag button.delete");
      let deleted = false;
      for (let i = 0; i < 40 && !deleted; i++) {
        await sleep(250);
        const after = await stats(ADMIN_MIRROR_URL);
        const listed = (after.hosted.repository_list || []).some((r) => r.name === hostedVictim.repo && r.tags.includes(hostedVictim.tag));
        const shownTags = await admin.page.$$eval("#hosted-repos tr.hosted-tag", (rows) => rows.map((r) => r.dataset.repo + ":" + r.dataset.tag));
        deleted = !listed && !shownTags.includes(hostedVictim.repo + ":" + hostedVictim.tag) && shownTags.length === view.hostedTagRows - 1;
      }
      check(JSON.stringify(dialogs) === JSON.stringify(["confirm"]), `delete asked to confirm only (${dialogs.join(", ")})`);
      check(deleted, `deleting ${hostedVictim.repo}:${hostedVictim.tag} removed it from the page and from /stats`);
      check(admin.problems.length === 0, `no page errors on the admin mirror${admin.problems.length ? ": " + admin.problems.join("; ") : ""}`);
    }
  } finally {
    await close();
  }
  finish("dashboard");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
