// Boots guest VMs from the cached image and collects what their test script
// left in the 9p share. A VM runs exactly one script and powers itself off;
// the host only waits, enforces the timeout and reads the results.
import { spawn, type ChildProcess } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { isAbsolute, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { detectAccel, hasCommand, log, repoRoot, type Accel } from "./host.js";
import { writeGuestScript, type GuestSpec } from "./guest.js";
import { type GuestImage } from "./image.js";

export interface NetLink {
  /** One side listens on 127.0.0.1:port, the other connects: a private L2 link, no internet. */
  role: "listen" | "connect";
  port: number;
  mac: string;
}

export interface VMOptions {
  name: string;
  image: GuestImage;
  /** Writable dir shared as tag `scope`; must hold run-in-guest.sh (see writeGuestScript). */
  shareDir: string;
  /** Where the serial console goes; defaults to shareDir/../serial.log. */
  serialLog?: string;
  /** Shared read-only as tag `project` and mounted at /project; null shares nothing. */
  projectDir?: string | null;
  memoryMB?: number;
  cpus?: number;
  netLinks?: NetLink[];
  timeoutMs?: number;
  /**
   * How many times the guest may boot in this QEMU process. 1 (default) runs
   * QEMU with -no-reboot: a reboot or panic ends it at once. More lets a case
   * reboot the guest for real; -snapshot keeps the disk across a reboot
   * within one QEMU process. A boot beyond the limit (a panic loop) kills it.
   */
  maxBoots?: number;
  /** Defaults to chooseAccel()'s answer. */
  accel?: Accel;
}

export interface VMResult {
  name: string;
  /** The script's exit code; null when the guest never wrote one (boot failure, timeout). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  serialLog: string;
  timedOut: boolean;
  /** Host wall time from QEMU start to QEMU exit. */
  durationMs: number;
  /** Guest uptime when the test unit started: the boot cost inside the VM. */
  guestBootMs: number | null;
  /** QEMU's own stderr (bad arguments, a refused link connection, ...). */
  qemuStderr: string;
}

/** Every QEMU we started, so any way out of the host process kills them all. */
const live = new Set<ChildProcess>();
let handlersInstalled = false;

function killAll(): void {
  for (const child of live) child.kill("SIGKILL");
}

/**
 * Spawn QEMU, tracked in `live`. pdeathsig covers what no handler can: the
 * host process being SIGKILLed; so nothing ever needs a sweep by name.
 */
function spawnQemu(args: string[]): ChildProcess {
  installExitHandlers();
  const qemu = ["qemu-system-x86_64", ...args];
  const argv = hasCommand("setpriv") ? ["setpriv", "--pdeathsig", "KILL", "--", ...qemu] : qemu;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  live.add(child);
  return child;
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAll);
  for (const [sig, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(code);
    });
  }
}

const KERNEL_CMDLINE = [
  "root=/dev/vda",
  "rw",
  "console=ttyS0",
  // eth0, eth1… in link order: scripts need no MAC lookup to find the link.
  "net.ifnames=0",
  // A kernel panic ends QEMU at once (with -no-reboot; else maxBoots counts it)
  // instead of burning the timeout.
  "panic=-1",
  // systemd's per-unit status lines are most of the console output, and every
  // byte is an emulated UART write; kernel messages and the runner's lines stay.
  "systemd.show_status=error",
  // A starved TCG guest (host load 20+) failed the boot-time IO-APIC timer
  // check: "Kernel panic - not syncing: IO-APIC + timer doesn't work!".
  // QEMU's timer is fine; skip the check, as VM images commonly do.
  "no_timer_check",
].join(" ");

export function qemuArgs(opts: VMOptions, serialLog: string): string[] {
  const accel =
    (opts.accel ?? detectAccel()) === "kvm"
      ? ["-enable-kvm", "-cpu", "host"]
      : ["-accel", "tcg", "-cpu", "qemu64"];
  const args = [
    ...["-name", opts.name, "-m", String(opts.memoryMB ?? 1024), "-smp", String(opts.cpus ?? 1)],
    ...accel,
    // q35 + -nodefaults: no floppy, parallel port, VGA or CD-ROM for udev to probe at boot.
    ...["-machine", "q35", "-nodefaults", "-nographic", "-monitor", "none"],
    ...["-serial", `file:${serialLog}`],
    ...((opts.maxBoots ?? 1) > 1 ? [] : ["-no-reboot"]),
    ...["-kernel", opts.image.kernel, "-initrd", opts.image.initrd, "-append", KERNEL_CMDLINE],
    // -snapshot: writes go to a temp overlay, the cached image stays pristine and shareable.
    ...["-drive", `file=${opts.image.rootImage},format=raw,if=virtio`, "-snapshot"],
    ...["-virtfs", `local,path=${opts.shareDir},mount_tag=scope,security_model=none,id=scope`],
    // Guest key generation and node's crypto want entropy early.
    ...["-device", "virtio-rng-pci"],
    // No default user-mode NIC: the guest must not reach the internet.
    ...["-nic", "none"],
  ];
  const project = opts.projectDir === undefined ? repoRoot() : opts.projectDir;
  if (project) {
    args.push(
      "-virtfs",
      `local,path=${project},mount_tag=project,security_model=none,readonly=on,id=project`,
    );
    // A git worktree links node_modules to the main checkout's (an absolute
    // path outside the share): share that too; the guest preamble mounts it
    // at the same path, so the link resolves there as well.
    const modules = linkedModules(project);
    if (modules)
      args.push(
        "-virtfs",
        `local,path=${modules},mount_tag=modules,security_model=none,readonly=on,id=modules`,
      );
  }
  (opts.netLinks ?? []).forEach((link, i) => {
    args.push("-netdev", `socket,id=link${i},${link.role}=127.0.0.1:${link.port}`);
    args.push("-device", `virtio-net-pci,netdev=link${i},mac=${link.mac}`);
  });
  return args;
}

/** The absolute target of project/node_modules when it is a symlink, else undefined. */
export function linkedModules(project: string): string | undefined {
  const link = join(project, "node_modules");
  if (!lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) return undefined;
  const target = readlinkSync(link);
  return isAbsolute(target) ? target : undefined;
}

function readIf(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, "utf8") : undefined;
}

export interface RunningVM {
  opts: VMOptions;
  done: Promise<VMResult>;
  readonly finished: boolean;
}

/** Start one QEMU; the promise settles when it exits or is killed at the timeout. */
export function startVM(opts: VMOptions): RunningVM {
  if (!existsSync(join(opts.shareDir, "run-in-guest.sh"))) {
    throw new Error(`${opts.shareDir}/run-in-guest.sh missing: call writeGuestScript first`);
  }
  const serialLog = opts.serialLog ?? join(opts.shareDir, "..", "serial.log");
  const started = Date.now();
  const child = spawnQemu(qemuArgs(opts, serialLog));
  let qemuStderr = "";
  child.stderr?.on("data", (d: Buffer) => (qemuStderr += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, opts.timeoutMs ?? 300_000);
  const bootWatch = watchBoots(opts.maxBoots ?? 1, serialLog, (boots) => {
    qemuStderr += `guest booted ${boots} times, more than the ${opts.maxBoots} allowed: killed\n`;
    child.kill("SIGKILL");
  });
  const state = { finished: false };
  const done = new Promise<VMResult>((resolve) => {
    const finish = (): void => {
      clearTimeout(timer);
      if (bootWatch) clearInterval(bootWatch);
      live.delete(child);
      state.finished = true;
      const out = join(opts.shareDir, "out");
      const code = readIf(join(out, "exit-code"));
      const boot = readIf(join(out, "boot-seconds"));
      resolve({
        name: opts.name,
        exitCode: code === undefined ? null : Number(code.trim()),
        stdout: readIf(join(out, "stdout")) ?? "",
        stderr: readIf(join(out, "stderr")) ?? "",
        serialLog,
        timedOut,
        durationMs: Date.now() - started,
        guestBootMs: boot === undefined ? null : Math.round(Number(boot.trim()) * 1000),
        qemuStderr,
      });
    };
    child.on("error", (err) => {
      qemuStderr += String(err);
      finish();
    });
    child.on("close", finish);
  });
  return {
    opts,
    done,
    get finished() {
      return state.finished;
    },
  };
}

/** Each boot starts with the kernel's banner on the serial console. */
const BOOT_BANNER = /\] Linux version /g;

/** With reboots allowed, -no-reboot cannot stop a panic loop: count the banners instead. */
function watchBoots(
  maxBoots: number,
  serialLog: string,
  tooMany: (boots: number) => void,
): NodeJS.Timeout | undefined {
  if (maxBoots <= 1) return undefined;
  return setInterval(() => {
    const boots = (readIf(serialLog)?.match(BOOT_BANNER) ?? []).length;
    if (boots > maxBoots) tooMany(boots);
  }, 2_000);
}

let accelChoice: Promise<Accel> | undefined;

/**
 * KVM if /dev/kvm opens *and* a guest actually runs on it, else TCG. Nested
 * KVM can be present yet broken (seen: MSR assertions with -cpu host, "KVM
 * internal error" emulation failures in early boot); the tier must still pass
 * there, so a 2-second probe decides once per process.
 */
export function chooseAccel(image: GuestImage): Promise<Accel> {
  accelChoice ??= (async (): Promise<Accel> => {
    if (detectAccel() === "tcg") return "tcg";
    const problem = await probeKvm(image);
    if (!problem) return "kvm";
    log(`/dev/kvm is present but unusable (${problem}); using TCG`);
    return "tcg";
  })();
  return accelChoice;
}

/** Boot the kernel alone until it panics for want of a root fs; undefined means KVM works. */
async function probeKvm(image: GuestImage): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "scope-kvm-probe-"));
  const serial = join(dir, "serial.log");
  const args = ["-enable-kvm", "-cpu", "host", "-m", "256", "-nographic", "-monitor", "none"];
  args.push("-serial", `file:${serial}`, "-no-reboot", "-nic", "none", "-kernel", image.kernel);
  args.push("-append", "console=ttyS0 panic=-1 loglevel=1");
  const child = spawnQemu(args);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
    // QEMU pauses the guest on an internal error instead of exiting: stop waiting.
    if (/KVM internal error/.test(stderr)) child.kill("SIGKILL");
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  await new Promise((resolve) => child.on("close", resolve));
  clearTimeout(timer);
  live.delete(child);
  const out = existsSync(serial) ? readFileSync(serial, "utf8") : "";
  rmSync(dir, { recursive: true, force: true });
  if (/Kernel panic/.test(out)) return undefined;
  return stderr.trim().split("\n")[0] || "the probe kernel did not reach its expected panic";
}

/** One VM whose share is already prepared (writeGuestScript); barriers work as in runGroup. */
export async function runVM(opts: VMOptions): Promise<VMResult> {
  const [result] = await runGroup([opts]);
  return result!;
}

/** True once 127.0.0.1:port is in LISTEN state. Probing by connecting would steal QEMU's one accept. */
function isListening(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .some((line) => {
      const cols = line.trim().split(/\s+/);
      return cols[1] === local && cols[3] === "0A";
    });
}

/**
 * Run VMs together. Listening sides start first (a connect to a port nobody
 * listens on makes QEMU quit). Barriers: a guest touches out/barrier.NAME and
 * waits for in/barrier.NAME; the host creates it in every share once each VM
 * has reached that barrier or has already exited (so a dead peer fails the
 * others fast instead of leaving them to the timeout).
 */
export async function runGroup(vms: VMOptions[]): Promise<VMResult[]> {
  const running: RunningVM[] = [];
  for (const vm of vms) vm.accel ??= await chooseAccel(vm.image);
  const byListen = [...vms].sort((a, b) => Number(hasConnect(a)) - Number(hasConnect(b)));
  try {
    for (const opts of byListen) {
      for (const link of (opts.netLinks ?? []).filter((l) => l.role === "connect")) {
        await waitFor(() => isListening(link.port) || running.some((r) => r.finished), 15_000);
      }
      running.push(startVM(opts));
    }
  } catch (err) {
    killAll();
    throw err;
  }
  const released = new Set<string>();
  while (!running.every((r) => r.finished)) {
    releaseBarriers(running, released);
    await sleep(200);
  }
  const results = await Promise.all(running.map((r) => r.done));
  return vms.map((o) => results.find((r) => r.name === o.name)!);
}

function hasConnect(o: VMOptions): boolean {
  return (o.netLinks ?? []).some((l) => l.role === "connect");
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting for the link's listening VM");
    await sleep(50);
  }
}

function releaseBarriers(running: RunningVM[], released: Set<string>): void {
  const reached = running.map((r) => {
    const out = join(r.opts.shareDir, "out");
    return new Set(existsSync(out) ? readdirNames(out).filter((f) => f.startsWith("barrier.")) : []);
  });
  const names = new Set(reached.flatMap((s) => [...s]));
  for (const name of names) {
    if (released.has(name)) continue;
    if (running.every((r, i) => r.finished || reached[i]!.has(name))) {
      released.add(name);
      for (const r of running) {
        mkdirSync(join(r.opts.shareDir, "in"), { recursive: true });
        writeFileSync(join(r.opts.shareDir, "in", name), "");
      }
    }
  }
}

function readdirNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return []; // the guest has not created out/ yet
  }
}

/** Addresses of the private link in a pair: VM "a" is .1, VM "b" is .2. */
export const LINK_NET = "192.168.77";

export interface GroupOptions {
  image: GuestImage;
  /** Per-case directory; each VM gets DIR/NAME/{share,serial.log}. */
  dir: string;
  timeoutMs?: number;
  memoryMB?: number;
  /** See VMOptions.maxBoots. */
  maxBoots?: number;
}

function vmDirs(dir: string, name: string): { shareDir: string; serialLog: string } {
  const vmDir = join(dir, name);
  mkdirSync(vmDir, { recursive: true });
  return { shareDir: join(vmDir, "share"), serialLog: join(vmDir, "serial.log") };
}

/** One VM, no network at all. */
export async function runSingle(spec: GuestSpec | string, opts: GroupOptions): Promise<VMResult> {
  const dirs = vmDirs(opts.dir, "vm");
  writeGuestScript(dirs.shareDir, "vm", toSpec(spec));
  const [result] = await runGroup([{ name: "vm", image: opts.image, ...dirs, ...vmSizing(opts) }]);
  return result!;
}

/**
 * Two VMs joined by a private link only (eth0 on both, no route anywhere else).
 * Each script sees SCOPE_LINK_IF, SCOPE_LINK_ADDR (CIDR), SCOPE_LINK_IP and SCOPE_PEER_IP;
 * the link is left unconfigured so a case can hand it to NetworkManager or networkd.
 */
export async function runPair(
  a: GuestSpec | string,
  b: GuestSpec | string,
  opts: GroupOptions,
): Promise<[VMResult, VMResult]> {
  const port = await freePort();
  const sides = [
    { name: "a", spec: toSpec(a), role: "listen" as const, ip: `${LINK_NET}.1`, peer: `${LINK_NET}.2` },
    { name: "b", spec: toSpec(b), role: "connect" as const, ip: `${LINK_NET}.2`, peer: `${LINK_NET}.1` },
  ];
  const vms = sides.map((s, i): VMOptions => {
    const dirs = vmDirs(opts.dir, s.name);
    const env = {
      SCOPE_LINK_IF: "eth0",
      SCOPE_LINK_ADDR: `${s.ip}/24`,
      SCOPE_LINK_IP: s.ip,
      SCOPE_PEER_IP: s.peer,
    };
    writeGuestScript(dirs.shareDir, s.name, { ...s.spec, env: { ...env, ...s.spec.env } });
    // Locally administered unicast MACs (52:54:00 is QEMU's own prefix).
    const mac = `52:54:00:77:00:0${i + 1}`;
    return {
      name: s.name,
      image: opts.image,
      ...dirs,
      ...vmSizing(opts),
      netLinks: [{ role: s.role, port, mac }],
    };
  });
  const [ra, rb] = await runGroup(vms);
  return [ra!, rb!];
}

function toSpec(spec: GuestSpec | string): GuestSpec {
  return typeof spec === "string" ? { script: spec } : spec;
}

function vmSizing(opts: GroupOptions): Pick<VMOptions, "timeoutMs" | "memoryMB" | "maxBoots"> {
  return { timeoutMs: opts.timeoutMs, memoryMB: opts.memoryMB, maxBoots: opts.maxBoots };
}

/** A port free right now; QEMU binds it a moment later (a tiny race we accept on loopback). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}
