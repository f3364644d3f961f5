// Entry point of `npm run test:system [-- CASE...]`: ensure the guest image,
// run each case (or the named ones) in fresh VMs, print a report, exit 1 on
// any failure. Progress and diagnostics go to stderr, the report to stdout.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isHostCase, type AnyCase, type HostCase, type SystemCase } from "./case.js";
import { newRunDir } from "./guest.js";
import { formatMs, log, repoRoot } from "./host.js";
import { ensureImage, type GuestImage } from "./image.js";
import { chooseAccel, runPair, runSingle, type VMResult } from "./vm.js";

const DEFAULT_TIMEOUT_MS = 300_000;

async function loadCases(filter: string[]): Promise<AnyCase[]> {
  const dir = join(dirname(fileURLToPath(import.meta.url)), "cases");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".js"))
    .sort();
  const cases: AnyCase[] = [];
  for (const file of files) {
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as { default?: AnyCase };
    if (!mod.default || !("guests" in mod.default || "run" in mod.default))
      throw new Error(`${file}: no default-exported SystemCase or HostCase`);
    cases.push(mod.default);
  }
  const unknown = filter.filter((n) => !cases.some((c) => c.name === n));
  if (unknown.length)
    throw new Error(`unknown case(s) ${unknown.join(", ")}; have ${cases.map((c) => c.name)}`);
  return filter.length ? cases.filter((c) => filter.includes(c.name)) : cases;
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Why a VM failed on its own (before the case's check), or undefined. */
function vmFailure(r: VMResult, timeoutMs: number): string | undefined {
  if (r.timedOut) return `${r.name}: timed out after ${formatMs(timeoutMs)}`;
  if (r.exitCode === null) return `${r.name}: no exit code (guest did not boot or the runner failed)`;
  if (r.exitCode !== 0) return `${r.name}: script exited ${r.exitCode}`;
  return undefined;
}

function diagnostics(r: VMResult): string {
  const serial = existsSync(r.serialLog) ? readFileSync(r.serialLog, "utf8") : "";
  return [
    `--- ${r.name} stdout (tail) ---\n${tail(r.stdout, 20)}`,
    `--- ${r.name} stderr (tail) ---\n${tail(r.stderr, 30)}`,
    r.qemuStderr ? `--- ${r.name} qemu ---\n${tail(r.qemuStderr, 10)}` : "",
    `--- ${r.name} serial (tail; full log ${r.serialLog}) ---\n${tail(serial, 25)}`,
  ]
    .filter(Boolean)
    .join("\n");
}

async function runCase(c: SystemCase, image: GuestImage, runDir: string): Promise<boolean> {
  const started = Date.now();
  const timeoutMs = c.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const opts = { image, dir: join(runDir, c.name), timeoutMs, maxBoots: (c.reboots ?? 0) + 1 };
  const guests = c.guests();
  log(`case ${c.name}: ${c.description} (${guests.length} VM${guests.length > 1 ? "s" : ""})`);
  let results: VMResult[];
  if (guests.length === 1) results = [await runSingle(guests[0]!, opts)];
  else if (guests.length === 2) results = await runPair(guests[0]!, guests[1]!, opts);
  else throw new Error(`${c.name}: ${guests.length} guests; a case has one or two`);

  let failure = results.map((r) => vmFailure(r, timeoutMs)).find(Boolean);
  if (!failure) {
    try {
      c.check(results);
    } catch (err) {
      failure = err instanceof Error ? err.message : String(err);
    }
  }
  const boots = results.map(
    (r) => `${r.name} boot ${r.guestBootMs === null ? "?" : formatMs(r.guestBootMs)}`,
  );
  const status = failure ? "FAIL" : "ok  ";
  console.log(
    `${status} ${c.name.padEnd(16)} ${formatMs(Date.now() - started).padStart(7)}  (${boots.join(", ")})`,
  );
  if (failure) {
    console.log(`     ${failure}`);
    for (const r of results) console.log(diagnostics(r));
  }
  return !failure;
}

async function runHostCase(c: HostCase, runDir: string): Promise<boolean> {
  const started = Date.now();
  log(`case ${c.name}: ${c.description} (host)`);
  let failure: string | undefined;
  let lines: string[] = [];
  try {
    lines = await c.run(join(runDir, c.name));
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  }
  console.log(
    `${failure ? "FAIL" : "ok  "} ${c.name.padEnd(16)} ${formatMs(Date.now() - started).padStart(7)}  (host)`,
  );
  for (const l of lines) console.log(`     ${l}`);
  if (failure) console.log(`     ${failure}`);
  return !failure;
}

async function main(): Promise<number> {
  // debootstrap, chroot, 9p and the guest's root all need root; CI runs as root.
  if (process.getuid?.() !== 0) {
    console.log("system tests skipped: they need root (debootstrap, chroot, QEMU with 9p shares)");
    return 0;
  }
  const filter = process.argv.slice(2);
  const cases = await loadCases(filter);
  if (!existsSync(join(repoRoot(), "node_modules"))) {
    throw new Error("node_modules missing: the guest runs the project from the repo (run npm ci first)");
  }
  const t0 = Date.now();
  // The VM image only when a selected case boots VMs (host cases need none).
  let image: GuestImage | undefined;
  if (cases.some((c) => !isHostCase(c))) {
    const ensured = await ensureImage();
    image = ensured.image;
    const accel = await chooseAccel(image);
    console.log(
      `image ${image.manifest.key} (${image.manifest.suite}, kernel ${image.manifest.kernelVersion}): ` +
        (ensured.built ? `built in ${formatMs(Date.now() - t0)} (cold)` : `cached (warm)`) +
        `; accel ${accel}`,
    );
  }
  const imageMs = Date.now() - t0;
  const runDir = newRunDir();
  log(`run dir ${runDir}`);
  let failed = 0;
  for (const c of cases) {
    const ok = isHostCase(c) ? await runHostCase(c, runDir) : await runCase(c, image!, runDir);
    if (!ok) failed++;
  }
  console.log(
    `${cases.length - failed}/${cases.length} passed in ${formatMs(Date.now() - t0)} ` +
      `(image ${formatMs(imageMs)}, cases ${formatMs(Date.now() - t0 - imageMs)})`,
  );
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`system tests: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
