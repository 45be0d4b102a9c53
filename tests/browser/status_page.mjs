// The status page in headless Chromium, for tests/integration/test_web.sh (docs/testing.md).
//
// Usage: node status_page.mjs URL JOB HOSTILE_NAME OUT_DIR
//   URL           the peer's base URL (its status page is URL/)
//   JOB           a job whose only task the test holds running (it waits on a FIFO)
//   HOSTILE_NAME  the name of a job whose name is HTML
//   OUT_DIR       where the screenshots go (status-page.png, status-page-phone.png)
//
// It loads the page once and, in that same open page (no reload: a mark set on the window after
// the load must still be there), waits for JOB to show as running and prints "running"; the test
// then releases the task; it waits for JOB to show as done and prints "done". It then checks that
// JOB's task list has closed (open while it ran) and, once clicked open, stays open across
// refreshes; that HOSTILE_NAME is shown as text, that no element came out of it (no <img> in the
// page, no dialog, no error), that the page asked nothing of any other origin, and that at a
// phone's width nothing is wider than the screen, takes the screenshots and prints "ok". Anything
// else: "fail: why" on stdout and exit 1. Each wait is bounded (WAIT_MS).
//
// Debian's Chromium is driven by playwright-core (pinned in package.json, installed by
// scripts/install-deps.sh with npm ci): never a browser of Playwright's own.
import { chromium } from "playwright-core";

const WAIT_MS = 30000;
const [url, job, hostile, outDir] = process.argv.slice(2);
if (!url || !job || !hostile || !outDir) {
  console.log("fail: usage: node status_page.mjs URL JOB HOSTILE_NAME OUT_DIR");
  process.exit(2);
}
const base = new URL(url);

function say(line) { console.log(line); }

// Waits (bounded) until the page shows the job named name in state want, in the same open page.
function shows(page, name, want) {
  return page.waitForFunction(([n, w]) => {
    for (const d of document.querySelectorAll(".job")) {
      const e = d.querySelector(".job-name");
      if (e && e.textContent === n) return d.querySelector(".job-state").textContent === w;
    }
    return false;
  }, [name, want], { timeout: WAIT_MS, polling: 100 });
}

const problems = [];
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  // As root, and without Chromium calling home (the network here is closed): docs/testing.md.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let code = 0;
try {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 1400 } });
  const page = await ctx.newPage();
  page.on("dialog", d => { problems.push("a dialog opened: " + d.message()); d.dismiss(); });
  page.on("pageerror", e => problems.push("page error: " + e.message));
  page.on("console", m => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("request", r => {
    const u = new URL(r.url());
    if (u.origin !== base.origin) problems.push("a request to another origin: " + r.url());
  });
  const resp = await page.goto(base.origin + "/", { waitUntil: "load", timeout: WAIT_MS });
  if (!resp || resp.status() !== 200) throw new Error("GET / answered " + (resp && resp.status()));
  const csp = resp.headers()["content-security-policy"] || "";
  if (!csp.includes("default-src 'none'") || !csp.includes("connect-src 'self'"))
    throw new Error("no strict Content-Security-Policy: '" + csp + "'");
  await page.evaluate(() => { window.__preonTestMark = 1; });

  await shows(page, job, "running");
  say("running");
  await shows(page, job, "done");
  if (await page.evaluate(() => window.__preonTestMark) !== 1) throw new Error("the page was reloaded");
  say("done");

  // Task lists: open while a job runs, closed once it is done (unless the user opened it), and
  // what the user chose is kept across refreshes.
  const isOpen = n => page.evaluate(n => [...document.querySelectorAll(".job")]
    .find(d => d.querySelector(".job-name").textContent === n).open, n);
  const refreshes = async k => { // k more answers of /v1/status: the page rendered after the first
    for (let i = 0; i < k; i++)
      await page.waitForResponse(r => new URL(r.url()).pathname === "/v1/status", { timeout: WAIT_MS });
  };
  await refreshes(2);
  if (await isOpen(job)) throw new Error("the task list of " + job + " stays open once it is done");
  await page.evaluate(n => [...document.querySelectorAll(".job")]
    .find(d => d.querySelector(".job-name").textContent === n).querySelector("summary").click(), job);
  await refreshes(2);
  if (!(await isOpen(job))) throw new Error("the task list the user opened closed again at a refresh");

  // The hostile name: shown once, as the same text; nothing came out of it.
  const shown = await page.evaluate(n => [...document.querySelectorAll(".job-name")].filter(e => e.textContent === n).length,
                                    hostile);
  if (shown !== 1) throw new Error("the job named " + JSON.stringify(hostile) + " is shown " + shown + " times as text");
  const injected = await page.evaluate(() => document.querySelectorAll("img, iframe, object, embed").length +
                                             document.scripts.length - 1);
  if (injected !== 0) throw new Error(injected + " element(s) were injected into the page");
  const events = await page.evaluate(n => [...document.querySelectorAll("ol.events .t")].some(e => e.textContent.includes(n)),
                                     hostile);
  if (!events) throw new Error("the recent events do not show the hostile name as text");

  await page.screenshot({ path: outDir + "/status-page.png", fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 }); // a phone
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (wide > 1) throw new Error("at a phone's width the page is " + wide + " px wider than the screen");
  await page.screenshot({ path: outDir + "/status-page-phone.png", fullPage: false });
  if (problems.length) throw new Error(problems.join("; "));
  say("ok");
} catch (e) {
  say("fail: " + (problems.length ? problems.join("; ") + "; " : "") + e.message);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
