// Booted systemd containers (systemd-nspawn -b) for the package tests: cheaper
// than a VM (a boot is seconds, not a minute of TCG) wherever kernel WireGuard
// is not needed. The containers share the host's kernel, which may have no
// WireGuard module, so the mesh in them runs over wireguard-go on the host's
// /dev/net/tun, bound into each container.
//
// The rootfs is built once per recipe with the VM tier's debootstrap (same
// mirror from the host's apt sources, same keyring check, same deb cache),
// cached as a directory, and never written: each container boots an overlay
// of it whose upper layer lives in the run dir, so a restart keeps the
// container's changes (installed package, keys, enabled units).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hostDebianMirror } from "./apt-mirror.js";
import { cacheDir, formatMs, log, mustRun, run, systemDir, type RunResult } from "./host.js";
import { SUITE, trixieKeyring } from "./image.js";

/** What the package needs to install and run offline, plus the tools the checks use. */
export const CONTAINER_PACKAGES = [
  "systemd-sysv",
  "dbus",
  "nodejs",
  "wireguard-tools",
  "wireguard-go",
  "iproute2",
  "iputils-ping",
  "man-db",
  "bash-completion",
];

const RECIPE_VERSION = 1;

function configureScript(): string {
  return readFileSync(join(systemDir(), "container", "configure.sh"), "utf8");
}

export function rootfsKey(): string {
  const recipe = {
    v: RECIPE_VERSION,
    suite: SUITE,
    packages: CONTAINER_PACKAGES,
    configure: configureScript(),
  };
  return createHash("sha256").update(JSON.stringify(recipe)).digest("hex").slice(0, 16);
}

/** The cached rootfs directory, built on first use (debootstrap, a few minutes cold). */
export async function ensureRootfs(): Promise<string> {
  const root = cacheDir();
  const key = rootfsKey();
  const final = join(root, `rootfs-${key}`);
  if (existsSync(join(final, "manifest.json"))) return join(final, "rootfs");
  mkdirSync(root, { recursive: true });
  // Rootfs of other recipes and dead half-builds only fill the disk.
  for (const name of readdirSync(root)) {
    const tmp = /^tmp-rootfs-[0-9a-f]+-(\d+)$/.exec(name);
    const alive = tmp && existsSync(`/proc/${tmp[1]}`);
    if ((tmp && !alive) || (name.startsWith("rootfs-") && name !== `rootfs-${key}`))
      await rm(join(root, name), { recursive: true, force: true });
  }
  const started = Date.now();
  const tmp = join(root, `tmp-rootfs-${key}-${process.pid}`);
  const rootfs = join(tmp, "rootfs");
  mkdirSync(tmp, { recursive: true });
  try {
    const debs = join(root, "debs");
    mkdirSync(debs, { recursive: true });
    log(`building ${SUITE} container rootfs ${key} (debootstrap from the host's Debian mirror)`);
    await mustRun("debootstrap", [
      "--variant=minbase",
      `--keyring=${await trixieKeyring()}`,
      `--cache-dir=${debs}`,
      `--include=${CONTAINER_PACKAGES.join(",")}`,
      SUITE,
      rootfs,
      hostDebianMirror(),
    ]);
    await mustRun("chroot", [rootfs, "/bin/sh", "-s"], {
      input: configureScript(),
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C", DEBIAN_FRONTEND: "noninteractive" },
    });
    await rm(join(rootfs, "var/cache/apt/archives"), { recursive: true, force: true });
    mkdirSync(join(rootfs, "var/cache/apt/archives/partial"), { recursive: true });
    const manifest = { key, suite: SUITE, packages: CONTAINER_PACKAGES, buildMs: Date.now() - started };
    await writeFile(join(tmp, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    spawnSync("mv", ["-T", tmp, final]);
    if (!existsSync(join(final, "manifest.json"))) throw new Error(`could not move ${tmp} to ${final}`);
    log(`container rootfs ${key} ready in ${formatMs(manifest.buildMs)}`);
    return join(final, "rootfs");
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

// Everything a failed or interrupted run must undo, by exact pid, path and name.
const leaders = new Set<number>();
const mounts = new Set<string>();
const links = new Set<string>();
function sweepSync(): void {
  for (const pid of leaders) {
    try {
      process.kill(pid, "SIGKILL"); // PID 1 of the container: its whole namespace goes
    } catch {
      /* already gone */
    }
  }
  for (const m of mounts) spawnSync("umount", ["-l", m]);
  for (const l of links) spawnSync("ip", ["link", "del", l]);
}
let sweepHooked = false;
function hookSweep(): void {
  if (sweepHooked) return;
  sweepHooked = true;
  process.on("exit", sweepSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(sig, () => {
      sweepSync();
      process.exit(130);
    });
}

/** A host bridge joining the containers' host0 links; deleted by remove() or on exit. */
export async function createBridge(name: string): Promise<void> {
  hookSweep();
  await run("ip", ["link", "del", name]); // a leftover of a killed run with the same pid
  await mustRun("ip", ["link", "add", name, "type", "bridge"]);
  links.add(name);
  await mustRun("ip", ["link", "set", name, "up"]);
}
export async function removeBridge(name: string): Promise<void> {
  await run("ip", ["link", "del", name]);
  links.delete(name);
}

export interface ContainerOptions {
  /** Machine name (also the hostname); unique per run. */
  name: string;
  /** Holds upper/, work/, root/ (the overlay) and console.log. */
  dir: string;
  rootfs: string;
  bridge: string;
  /** host0's address, e.g. 192.168.78.1/24. */
  addr: string;
  /** Host directory bound read-only at /srv/scope-apt (the local apt repository). */
  aptDir: string;
}

function pidNs(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Container {
  private nspawn: ChildProcess | undefined;
  private leader = 0;
  readonly root: string;
  boots = 0;

  constructor(readonly o: ContainerOptions) {
    this.root = join(o.dir, "root");
  }

  /** Mount the overlay (first time), boot, and wait until systemd has finished starting up. */
  async start(): Promise<number> {
    hookSweep();
    const t0 = Date.now();
    if (!mounts.has(this.root)) {
      for (const d of ["upper", "work", "root"]) mkdirSync(join(this.o.dir, d), { recursive: true });
      const lower = `lowerdir=${this.o.rootfs},upperdir=${join(this.o.dir, "upper")},workdir=${join(this.o.dir, "work")}`;
      await mustRun("mount", ["-t", "overlay", "overlay", "-o", lower, this.root]);
      mounts.add(this.root);
      mkdirSync(join(this.root, "etc/scope-test"), { recursive: true });
      writeFileSync(join(this.root, "etc/scope-test/addr"), `${this.o.addr}\n`);
    }
    const console = openSync(join(this.o.dir, "console.log"), "a");
    // --keep-unit --register=no: no systemd (and no machined) on the host to
    // register with. The host mounts cgroup v1 (hybrid), which trixie's
    // systemd 257 refuses; a unified hierarchy for the container is what it needs.
    const args = [
      "--keep-unit",
      "--register=no",
      "--quiet",
      `--machine=${this.o.name}`,
      `--directory=${this.root}`,
      `--network-bridge=${this.o.bridge}`,
      "--bind=/dev/net/tun",
      `--bind-ro=${this.o.aptDir}:/srv/scope-apt`,
      "--console=read-only",
      "--boot",
    ];
    this.nspawn = spawn("systemd-nspawn", args, {
      stdio: ["ignore", console, console],
      env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" },
    });
    const host = pidNs(process.pid);
    for (let i = 0; i < 300 && !this.leader; i++) {
      if (this.nspawn.exitCode !== null) break;
      const pid = this.nspawn.pid!;
      const kids = readdirSync(`/proc/${pid}/task`).flatMap((t) => {
        try {
          return readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
        } catch {
          return [];
        }
      });
      const init = kids.map(Number).find((k) => pidNs(k) !== undefined && pidNs(k) !== host);
      if (init) this.leader = init;
      else await sleep(100);
    }
    if (!this.leader)
      throw new Error(`${this.o.name}: systemd-nspawn did not start (see ${this.o.dir}/console.log)`);
    leaders.add(this.leader);
    // "running" or "degraded" once start-up is over; the exec fails until PID 1 answers.
    for (let i = 0; ; i++) {
      const r = await this.exec("systemctl is-system-running --wait || true", 120_000);
      if (/^(running|degraded)$/m.test(r.stdout)) break;
      if (i > 50) throw new Error(`${this.o.name}: did not finish booting: ${r.stdout}${r.stderr}`);
      await sleep(200);
    }
    this.boots++;
    return Date.now() - t0;
  }

  /** Run a bash script as root inside the container (all its namespaces); never throws on exit codes. */
  exec(script: string, timeoutMs = 120_000): Promise<RunResult> {
    const args = ["-t", String(this.leader), "-a", "/usr/bin/env", "-i"];
    args.push(
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOME=/root",
      "LANG=C.UTF-8",
    );
    args.push("/bin/bash", "-c", `set -euo pipefail\n${script}`);
    return new Promise((resolve, reject) => {
      const child = spawn("nsenter", args, { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        stderr += `\n[timed out after ${formatMs(timeoutMs)}]`;
        child.kill("SIGKILL");
      }, timeoutMs);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? 128, stdout, stderr });
      });
    });
  }

  /** Like exec() but throws with the output when the script fails. */
  async must(script: string, timeoutMs?: number): Promise<string> {
    const r = await this.exec(script, timeoutMs);
    if (r.code !== 0) {
      const tail = (r.stdout + r.stderr).trim().split("\n").slice(-25).join("\n");
      throw new Error(`${this.o.name}: script exited ${r.code}:\n${script.trim()}\n--- output ---\n${tail}`);
    }
    return r.stdout;
  }

  /** Power the container off as `systemctl poweroff` would (nspawn turns SIGTERM into that). */
  async stop(): Promise<void> {
    const n = this.nspawn;
    if (!n || n.exitCode !== null || n.signalCode !== null) return;
    const exited = new Promise<void>((r) => n.once("exit", () => r()));
    n.kill("SIGTERM");
    const late = setTimeout(() => {
      if (this.leader) spawnSync("kill", ["-KILL", String(this.leader)]);
      n.kill("SIGKILL");
    }, 30_000);
    await exited;
    clearTimeout(late);
    leaders.delete(this.leader);
    this.leader = 0;
  }

  /** Stop, unmount the overlay (exact path) and delete the container's files. */
  async destroy(): Promise<void> {
    await this.stop();
    if (mounts.has(this.root)) {
      // Never delete through a still-mounted overlay.
      await mustRun("umount", [this.root]);
      mounts.delete(this.root);
    }
    await rm(this.o.dir, { recursive: true, force: true });
  }
}
