// Builds (once) and caches the Debian trixie guest image: a raw ext4 root disk
// plus the kernel and initrd taken out of it, so QEMU boots with -kernel and
// needs no bootloader. The cache key is a hash of everything that shapes the
// image, so editing the package list or the guest glue rebuilds it and nothing
// else does.
import { createHash } from "node:crypto";
import {
  copyFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
} from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hostDebianMirror } from "./apt-mirror.js";
import { cacheDir, ensureHostPackages, formatMs, log, mustRun, run, systemDir } from "./host.js";

export const SUITE = "trixie";

/**
 * Guest packages on top of debootstrap's minbase. Kernel 6.12 has the WireGuard
 * module the host kernel may lack; systemd (with networkd) and NetworkManager are
 * the two backends under test; nodejs runs the project from the 9p share.
 */
export const GUEST_PACKAGES = [
  "linux-image-amd64",
  "systemd-sysv",
  "udev",
  "dbus",
  "network-manager",
  "wireguard-tools",
  "iproute2",
  "iputils-ping",
  "kmod",
  "nodejs",
];

/** Sparse, so the size is a ceiling; room for tests that install things in the guest. */
const DISK_SIZE = "2G";

export interface GuestImage {
  dir: string;
  rootImage: string;
  kernel: string;
  initrd: string;
  manifest: ImageManifest;
}

export interface ImageManifest {
  key: string;
  suite: string;
  packages: string[];
  kernelVersion: string;
  buildMs: number;
  builtAt: string;
}

function guestFile(name: string): string {
  return readFileSync(join(systemDir(), "guest", name), "utf8");
}

/** Cache key: bump RECIPE_VERSION when the build steps in this file change meaningfully. */
const RECIPE_VERSION = 1;
export function recipeKey(): string {
  const recipe = {
    v: RECIPE_VERSION,
    suite: SUITE,
    packages: GUEST_PACKAGES,
    size: DISK_SIZE,
    configure: guestFile("configure.sh"),
    runner: guestFile("runner.sh"),
  };
  return createHash("sha256").update(JSON.stringify(recipe)).digest("hex").slice(0, 16);
}

function imagePaths(dir: string): Omit<GuestImage, "manifest"> {
  return {
    dir,
    rootImage: join(dir, "root.img"),
    kernel: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.img"),
  };
}

/** The cached image if a complete one exists (the manifest is written last, before the rename). */
export function cachedImage(key = recipeKey()): GuestImage | undefined {
  const dir = join(cacheDir(), `image-${key}`);
  const manifestPath = join(dir, "manifest.json");
  if (!existsSync(manifestPath)) return undefined;
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as ImageManifest;
  return { ...imagePaths(dir), manifest };
}

/** Return the cached image or build it. `built` tells the caller whether this was a cold run. */
export async function ensureImage(): Promise<{ image: GuestImage; built: boolean }> {
  const key = recipeKey();
  const cached = cachedImage(key);
  if (cached) return { image: cached, built: false };
  await ensureHostPackages();
  return { image: await buildImage(key), built: true };
}

/**
 * bookworm's keyring gained the trixie keys only in a point release, so an old
 * host may lack them. Upgrade the keyring package rather than skip the check:
 * debootstrap then still verifies the Release file against it.
 */
export async function trixieKeyring(): Promise<string> {
  const dir = "/usr/share/keyrings";
  const hasTrixie = (): boolean =>
    existsSync(join(dir, "debian-archive-keyring.gpg")) &&
    readdirSync(dir).some((f) => f.startsWith(`debian-archive-${SUITE}-`));
  if (!hasTrixie()) {
    log(`host keyring lacks the ${SUITE} archive keys; upgrading debian-archive-keyring`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    await mustRun("apt-get", ["update"], { env, inherit: true });
    await mustRun("apt-get", ["install", "-y", "--no-install-recommends", "debian-archive-keyring"], {
      env,
      inherit: true,
    });
  }
  if (!hasTrixie()) {
    throw new Error(`no ${SUITE} archive key in ${dir} even after upgrading debian-archive-keyring`);
  }
  return join(dir, "debian-archive-keyring.gpg");
}

/** Unmount anything left mounted under dir (deepest first): rm -rf must never walk into /proc. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1] ?? "")
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run("umount", ["-l", m]);
}

async function removeBuildDir(dir: string): Promise<void> {
  await unmountUnder(dir);
  await rm(dir, { recursive: true, force: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Drop half-built dirs of dead builds and images of other recipes (they only fill the disk). */
async function pruneCache(root: string, keepKey: string): Promise<void> {
  for (const name of readdirSync(root)) {
    const tmp = /^tmp-image-[0-9a-f]+-(\d+)$/.exec(name);
    const stale = tmp ? !pidAlive(Number(tmp[1])) : name.startsWith("image-") && name !== `image-${keepKey}`;
    if (stale) await removeBuildDir(join(root, name));
  }
}

function onlyFile(dir: string, prefix: string): string {
  const found = readdirSync(dir).filter((f) => f.startsWith(prefix) && !f.endsWith(".old-dkms"));
  if (found.length !== 1)
    throw new Error(`expected one ${prefix}* in ${dir}, found: ${found.join(", ") || "none"}`);
  return found[0]!;
}

async function buildImage(key: string): Promise<GuestImage> {
  const root = cacheDir();
  mkdirSync(root, { recursive: true });
  await pruneCache(root, key);
  const started = Date.now();
  const tmp = join(root, `tmp-image-${key}-${process.pid}`);
  const rootfs = join(tmp, "rootfs");
  mkdirSync(tmp, { recursive: true });
  try {
    const mirror = hostDebianMirror();
    const keyring = await trixieKeyring();
    // Debs are kept across recipes: a package-list change then downloads only what is new.
    const debs = join(root, "debs");
    mkdirSync(debs, { recursive: true });
    log(`building ${SUITE} image ${key} (debootstrap from the host's Debian mirror; a few minutes)`);
    const boot = await run("debootstrap", [
      "--variant=minbase",
      `--keyring=${keyring}`,
      `--cache-dir=${debs}`,
      `--include=${GUEST_PACKAGES.join(",")}`,
      SUITE,
      rootfs,
      mirror,
    ]);
    // Outside tmp, so it survives the cleanup of a failed build.
    const bootLog = join(root, "debootstrap.log");
    await writeFile(bootLog, boot.stdout + boot.stderr);
    if (boot.code !== 0) {
      const tail = (boot.stdout + boot.stderr).trim().split("\n").slice(-15).join("\n");
      throw new Error(`debootstrap failed (${boot.code}); full log in ${bootLog}:\n${tail}`);
    }
    log(`debootstrap done in ${formatMs(Date.now() - started)}; configuring`);

    const runner = join(rootfs, "usr/local/sbin/scope-test-runner");
    copyFileSync(join(systemDir(), "guest", "runner.sh"), runner);
    chmodSync(runner, 0o755);
    // update-initramfs reads /proc; nothing else from the host is exposed to the chroot.
    await mustRun("mount", ["-t", "proc", "proc", join(rootfs, "proc")]);
    try {
      await mustRun("chroot", [rootfs, "/bin/sh", "-s"], {
        input: guestFile("configure.sh"),
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C", DEBIAN_FRONTEND: "noninteractive" },
      });
    } finally {
      await mustRun("umount", [join(rootfs, "proc")]);
    }

    const bootDir = join(rootfs, "boot");
    const vmlinuz = onlyFile(bootDir, "vmlinuz-");
    const paths = imagePaths(tmp);
    copyFileSync(join(bootDir, vmlinuz), paths.kernel);
    copyFileSync(join(bootDir, onlyFile(bootDir, "initrd.img-")), paths.initrd);
    // The debs are in the shared deb cache; in the image they would only waste space.
    await rm(join(rootfs, "var/cache/apt/archives"), { recursive: true, force: true });
    mkdirSync(join(rootfs, "var/cache/apt/archives/partial"), { recursive: true });

    await mustRun("mkfs.ext4", ["-q", "-F", "-L", "scope-root", "-d", rootfs, paths.rootImage, DISK_SIZE]);
    await removeBuildDir(rootfs);

    const manifest: ImageManifest = {
      key,
      suite: SUITE,
      packages: GUEST_PACKAGES,
      kernelVersion: vmlinuz.replace(/^vmlinuz-/, ""),
      buildMs: Date.now() - started,
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(tmp, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    const final = join(root, `image-${key}`);
    try {
      renameSync(tmp, final);
    } catch (err) {
      // A concurrent build of the same recipe won the rename; its image is as good as ours.
      if (!cachedImage(key)) throw err;
      await removeBuildDir(tmp);
    }
    log(`image ${key} ready in ${formatMs(manifest.buildMs)} (kernel ${manifest.kernelVersion})`);
    return cachedImage(key)!;
  } catch (err) {
    await removeBuildDir(tmp);
    throw err;
  }
}
