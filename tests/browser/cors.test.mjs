// The joxit docker-registry-ui's calls, made with fetch() by a page served from another
// origin, in Debian's headless chromium (driven by playwright-core): the browser enforces
// CORS, so they succeed only when the mirror sends the configured Access-Control-* fields.
// Started by test_cors.py, which runs the page's origin and the mirrors; standalone use:
//
//   PAGE_URL=http://127.0.0.1:8000/ui.html \
//   MIRRORS='[{"name":"open","url":"http://127.0.0.1:5000","expect":"ok","repo":"library/docker2","tag":"1"}]' \
//     node tests/browser/cors.test.mjs
//
// Each mirror: name, url, repo, tag, expect ("ok": every call succeeds and
// Docker-Content-Digest is readable; "blocked": the browser refuses the first call),
// optional user/password (sent as Authorization: Basic, with credentials included, as
// the UI does once logged in), optional delete (then the UI's DELETE of the manifest by
// digest follows, and a GET of it must be 404). Exits 0 when all pass, 1 otherwise.

import { check, finish, launchChromium } from "./chromium.mjs";

const PAGE_URL = process.env.PAGE_URL;
const MIRRORS = JSON.parse(process.env.MIRRORS || "[]");
// The Accept field of docker-registry-ui's manifest request.
const UI_ACCEPT = [
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.index.v1+json",
].join(", ");

if (!PAGE_URL || MIRRORS.length === 0) {
  console.error("PAGE_URL and MIRRORS are required");
  process.exit(2);
}


// Runs in the page: the UI's calls in order. Returns what each gave, or where it stopped.
async function uiCalls({ base, repo, tag, accept, authorization, remove }) {
  const steps = [];
  const init = (extra) => {
    const headers = { ...extra };
    if (authorization) headers.Authorization = authorization;
    return { headers, credentials: authorization ? "include" : "same-origin", cache: "no-store" };
  };
  async function call(what, url, extra, method) {
    try {
      const res = await fetch(url, { ...init(extra), method: method || "GET" });
      const body = await res.text();
      const step = { what, status: res.status, digest: res.headers.get("Docker-Content-Digest"), body };
      steps.push(step);
      return step;
    } catch (e) {
      steps.push({ what, error: String(e) });
      return null;
    }
  }
  const catalog = await call("catalog", `${base}/v2/_catalog`, {});
  if (!catalog) return steps;
  const tags = await call("tags", `${base}/v2/${repo}/tags/list`, {});
  if (!tags) return steps;
  const manifest = await call("manifest", `${base}/v2/${repo}/manifests/${tag}`, { Accept: accept });
  if (!manifest || manifest.status !== 200) return steps;
  const config = JSON.parse(manifest.body).config.digest;
  await call("config blob", `${base}/v2/${repo}/blobs/${config}`, {});
  if (remove && manifest.digest) {
    await call("delete", `${base}/v2/${repo}/manifests/${manifest.digest}`, {}, "DELETE");
    await call("manifest after delete", `${base}/v2/${repo}/manifests/${manifest.digest}`, { Accept: accept });
  }
  return steps;
}

async function checkMirror(page, m) {
  const authorization = m.user ? "Basic " + Buffer.from(`${m.user}:${m.password}`).toString("base64") : "";
  const steps = await page.evaluate(uiCalls, { base: m.url, repo: m.repo, tag: m.tag, accept: UI_ACCEPT, authorization, remove: !!m.delete });
  const summary = steps.map((s) => `${s.what}=${s.error ? "blocked" : s.status}`).join(" ");
  if (m.expect === "blocked") {
    check(steps.length === 1 && steps[0].error && /Failed to fetch/.test(steps[0].error),
          `${m.name}: the browser blocks the cross-origin catalog call (${summary}; ${steps[0] && steps[0].error})`);
    return;
  }
  const byName = Object.fromEntries(steps.map((s) => [s.what, s]));
  const reads = steps.slice(0, 4);
  check(reads.length === 4 && reads.every((s) => s.status === 200),
        `${m.name}: catalog, tags, manifest and config blob all answer 200 across origins (${summary})`);
  if (m.delete) {
    check(byName.delete && byName.delete.status === 202,
          `${m.name}: the UI's DELETE of the manifest by digest answers 202 across origins (${summary})`);
    const after = byName["manifest after delete"];
    check(after && after.status === 404 && /MANIFEST_UNKNOWN/.test(after.body),
          `${m.name}: the deleted manifest is gone (${after && after.status})`);
  } else {
    check(steps.length === 4, `${m.name}: the UI made its four calls (${summary})`);
  }
  const catalog = byName.catalog && byName.catalog.status === 200 ? JSON.parse(byName.catalog.body) : {};
  check((catalog.repositories || []).includes(m.repo), `${m.name}: the catalog lists ${m.repo}`);
  const tags = byName.tags && byName.tags.status === 200 ? JSON.parse(byName.tags.body) : {};
  check((tags.tags || []).includes(m.tag), `${m.name}: the tags list has ${m.tag}`);
  const manifest = byName.manifest || {};
  check(typeof manifest.digest === "string" && manifest.digest === m.digest,
        `${m.name}: Docker-Content-Digest is exposed to the page (${manifest.digest})`);
  const blob = byName["config blob"] || {};
  check(blob.status === 200 && blob.body.includes("architecture"), `${m.name}: the config blob reads as an image config`);
}

async function main() {
  const { context, close } = await launchChromium();
  try {
    const page = await context.newPage();
    const consoleErrors = [];
    page.on("console", (msg) => msg.type() === "error" && consoleErrors.push(msg.text()));
    const response = await page.goto(PAGE_URL, { waitUntil: "load" });
    check(response && response.status() === 200, `the page loads from its own origin ${new URL(PAGE_URL).origin}`);
    for (const m of MIRRORS) {
      check(new URL(m.url).origin !== new URL(PAGE_URL).origin, `${m.name}: the mirror is another origin`);
      await checkMirror(page, m);
    }
    // The blocked calls are reported by chromium itself as CORS errors.
    const blockedExpected = MIRRORS.some((m) => m.expect === "blocked");
    const corsErrors = consoleErrors.filter((t) => /CORS policy/.test(t));
    check(!blockedExpected || corsErrors.length > 0,
          `chromium reports the CORS policy for the blocked mirror (${corsErrors.length} message(s))`);
    const okMirrorsBlocked = corsErrors.filter((t) => MIRRORS.some((m) => m.expect === "ok" && t.includes(m.url)));
    check(okMirrorsBlocked.length === 0, `no CORS error for the mirrors with headers${okMirrorsBlocked.length ? ": " + okMirrorsBlocked.join("; ") : ""}`);
  } finally {
    await close();
  }
  finish("cors");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
