/**
 * Headless chromium for the web view's tests (issue 16): Debian's package
 * (test/setup.sh installs it for the registry and lab tiers), driven by
 * playwright-core. Every console message of level error, every page error
 * and every CSP violation is collected, so a test can say "none".
 */
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { buildUi, builtUi, type BuiltUi } from "../../src/registry/ui/build.js";
import { UI_DIR } from "../../src/registry/routes/ui.js";
import { fileURLToPath } from "node:url";

export const CHROMIUM = "/usr/bin/chromium";

/**
 * The bundle as `npm run build` makes it, made again here (about a second):
 * the tiers' npm scripts run only tsc, and an app.js left from an older
 * build would test old code. Its sizes in bytes. SCOPE_UI_KEEP=1 keeps an
 * existing one (to test a bundle changed by hand).
 */
export async function ensureUi(): Promise<BuiltUi> {
  const js = fileURLToPath(new URL("app.js", UI_DIR));
  if (process.env["SCOPE_UI_KEEP"] === "1" && existsSync(js)) return builtUi();
  return buildUi();
}

/** executablePath: another way to start Debian's chromium (the lab's runs it in a namespace). */
export async function launch(executablePath = CHROMIUM): Promise<Browser> {
  return chromium.launch({
    executablePath,
    // Root in CI: chromium's sandbox needs user namespaces it may not get there. Without
    // --disable-crash-reporter, crash handlers outlive the browser, reparented to init.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-crash-reporter"],
  });
}

export interface OpenedPage {
  page: Page;
  /** Console errors, page errors and failed requests, as text. */
  errors: string[];
  /** Date.now() when /ui/ was requested (after the browser's new page is made). */
  requestedAt: number;
}

/** Opens /ui/ and signs in with the network and token through the page's own form. */
export async function openView(
  browser: Browser,
  url: string,
  network: string,
  token: string,
): Promise<OpenedPage> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => {
    // The live stream is cut when the page closes; that is not an error of the page.
    if (!r.url().endsWith("/view/events")) errors.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`);
  });
  const requestedAt = Date.now();
  await page.goto(`${url}/ui/`);
  await page.fill("#net", network);
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  return { page, errors, requestedAt };
}

/** Waits until the page shows `n` peers and is live. */
export async function waitPeers(page: Page, n: number, timeout = 10_000): Promise<void> {
  // A selector, not a function: the page's CSP refuses the eval a waitForFunction needs.
  await page.waitForSelector(`body[data-state=live][data-peers="${n}"]`, { state: "attached", timeout });
}

/** The table as the page shows it: one object per row, from the rows' data attributes. */
export async function tableRows(
  page: Page,
): Promise<{ from: string; to: string; path: string; hub: string }[]> {
  return page.evaluate(
    `[...document.querySelectorAll("#pairs-body tr")].map((tr) => ({
      from: tr.dataset.from, to: tr.dataset.to, path: tr.dataset.path, hub: tr.dataset.hub }))`,
  );
}
