/**
 * Loader hooks for a child node (`--import` this file): every module URL the
 * child loads is written to stderr as one `LOADED url` line. cli-startup.test.ts
 * uses it to see what a `scope` start loads.
 */
import { register } from "node:module";

const hooks = `export async function load(url, context, next) {
  const r = await next(url, context);
  process.stderr.write("LOADED " + url + "\\n");
  return r;
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
