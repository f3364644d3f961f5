/**
 * GET /ui/: the web view's page (issue 16), static files from the
 * package itself (the page, its style, its script and the script's chunks) (built by src/registry/ui/build.ts at `npm run build`: no
 * CDN, nothing fetched at run time). The page holds no data: it asks for a
 * token, then reads /v1/networks/:net/view with it in an Authorization
 * header, never in a URL (URLs end up in logs and browser history).
 *
 * Strict Content-Security-Policy: scripts, styles and connections from this
 * origin only, no inline script or style, no frames, no forms posting away.
 */
import { readFileSync } from "node:fs";
import Router from "@koa/router";
import { ScopeError } from "../../core/errors.js";

/** The script's chunks, chunk-HASH.js (build.ts names them so; it is not shipped, so the name is here). */
export const CHUNK = /^chunk-[A-Z0-9]+\.js$/;

/** Where the build puts the bundle, next to the compiled registry (dist/src/registry/ui/static). */
export const UI_DIR = new URL("../ui/static/", import.meta.url);

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

export function uiRoutes(dir: URL = UI_DIR): Router {
  // strict: "/ui" and "/ui/" are two paths (the first redirects to the second).
  const router = new Router({ strict: true });
  const cache = new Map<string, Buffer>();
  const read = (name: string): Buffer => {
    let b = cache.get(name);
    if (!b) {
      try {
        b = readFileSync(new URL(name, dir));
      } catch {
        throw new ScopeError("not_found", "the web view is not built (npm run build)");
      }
      cache.set(name, b);
    }
    return b;
  };
  router.get("/ui", (ctx) => ctx.redirect("/ui/"));
  router.get(["/ui/", "/ui/:file"], (ctx) => {
    const name = (ctx.params as { file?: string }).file ?? "index.html";
    const type = FILES[name] ?? (CHUNK.test(name) ? FILES["app.js"] : undefined);
    if (!type) throw new ScopeError("not_found", "no such file in the web view");
    const body = read(name);
    ctx.set("content-security-policy", CSP);
    ctx.set("x-content-type-options", "nosniff");
    ctx.set("referrer-policy", "no-referrer");
    ctx.set("x-frame-options", "DENY");
    ctx.set("cache-control", "no-cache");
    ctx.type = type;
    ctx.body = body;
  });
  return router;
}
