// The .deb in two booted systemd containers (systemd-nspawn -b on a host
// bridge), covering issue 13's acceptance 1, 2, 3 and 5:
// 1. apt install from the local repository on both; a runs the registry
//    (enable --now), creates a network and a token; a and b join and enable
//    scope@NET; they ping over the tunnel; both containers restart and the
//    mesh comes back with nobody touching it;
// 2. apt upgrade to a newer build restarts the services and keeps config and
//    keys; apt remove keeps /etc/scope and /var/lib/scope; purge removes
//    them; no unit is left failed;
// 3. systemd-analyze security of both units, under whose settings 1 ran;
// 5. man --warnings, and bash completion of `scope <TAB>`, `scope join --<TAB>`.
// Containers rather than VMs: no kernel WireGuard is needed (the mesh runs
// over wireguard-go on the host's /dev/net/tun) and a boot takes seconds.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type HostCase } from "../case.js";
import { Container, createBridge, ensureRootfs, removeBridge } from "../container.js";
import { formatMs } from "../host.js";
import { baseVersion, buildPackages, kib, publish } from "../packages.js";

const NET = "corp";
const REGISTRY = "http://192.168.78.1:8470";
const MAX_EXPOSURE = { "scope@corp.service": 3.0, "scope-registry.service": 2.0 };

const install = `apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q scope >/dev/null
dpkg-query -W -f '\${Version}\\n' scope`;

// wait_ping ADDR SECONDS: the tunnel answers (WireGuard handshakes on first packet).
const waitPing = (addr: string, seconds: number): string => `
for i in $(seq ${seconds}); do ping -c 1 -W 1 ${addr} >/dev/null 2>&1 && break; sleep 1; done
ping -c 3 -i 0.3 -w 20 ${addr}`;

const joinScript = (name: string): string => `
scope join ${REGISTRY} --insecure --network ${NET} --token-file /root/${NET}.token --name ${name} --backend wg --no-start
systemctl enable --now scope@${NET}
for i in $(seq 60); do scope status --network ${NET} --json >/dev/null 2>&1 && break; sleep 1; done
scope status --network ${NET} --json >/dev/null`;

// Completion as bash runs it: the real bash-completion, then the package's file.
const completion = (line: string): string => `
source /usr/share/bash-completion/bash_completion
source /usr/share/bash-completion/completions/scope
read -r -a COMP_WORDS <<<'${line}'
${line.endsWith(" ") ? 'COMP_WORDS+=("")' : ":"}
COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMP_LINE='${line}'; COMP_POINT=\${#COMP_LINE}
_scope scope "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"`;

// Fingerprint of what an upgrade must keep and what it must restart.
const snapshot = (units: string[]): string => `
sha256sum /etc/scope/${NET}.conf /var/lib/scope/${NET}/*.key ${units.includes("scope-registry.service") ? "/var/lib/scope/registry/registry.key" : ""} | sort
for u in ${units.join(" ")}; do echo "$u $(systemctl show -P MainPID "$u") $(systemctl is-active "$u")"; done`;

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

const pkgContainers: HostCase = {
  name: "pkg-containers",
  description:
    ".deb: apt install, registry, join, mesh over wireguard-go, restart, upgrade, remove, purge (2 nspawn containers)",
  async run(dir) {
    const lines: string[] = [];
    const t0 = Date.now();
    const v1 = await buildPackages(join(dir, "build"));
    const v2 = await buildPackages(join(dir, "build"), `${baseVersion()}+upgrade1`);
    const apt = join(dir, "apt");
    await publish(apt, [v1.deb]);
    const rootfs = await ensureRootfs();
    lines.push(`packages built and rootfs ready in ${formatMs(Date.now() - t0)}`);
    const bridge = `spk${process.pid % 100000}`;
    await createBridge(bridge);
    const mk = (n: string, ip: string): Container =>
      new Container({
        name: `scope-pkg-${n}-${process.pid}`,
        dir: join(dir, n),
        rootfs,
        bridge,
        addr: `${ip}/24`,
        aptDir: apt,
      });
    const a = mk("a", "192.168.78.1");
    const b = mk("b", "192.168.78.2");
    try {
      const boots = await Promise.all([a.start(), b.start()]);
      lines.push(`boot a ${formatMs(boots[0]!)}, b ${formatMs(boots[1]!)}`);

      // Acceptance 1: install, registry, network, token, join, ping.
      let t = Date.now();
      const [va, vb] = await Promise.all([a.must(install, 300_000), b.must(install, 300_000)]);
      expect(
        va.trim() === v1.version && vb.trim() === v1.version,
        `installed ${va} ${vb}, want ${v1.version}`,
      );
      lines.push(`apt install on both: ${formatMs(Date.now() - t)}`);
      await a.must(`systemctl enable --now scope-registry
for i in $(seq 60); do test -S /run/scope/registry.sock && break; sleep 0.5; done
stat -L -c '%U:%G %a' /run/scope/registry.sock
scope network create ${NET} --cidr 10.99.0.0/24
scope token create ${NET} --uses 2 >/root/${NET}.token`);
      const sock = await a.must("stat -L -c '%U:%G %a' /run/scope/registry.sock");
      expect(sock.trim() === "scope-registry:scope-admin 660", `admin socket is ${sock.trim()}`);
      const token = await a.must(`cat /root/${NET}.token`);
      // Into b's overlay directly: a token never goes on a command line.
      writeFileSync(join(b.root, `root/${NET}.token`), token, { mode: 0o600 });
      t = Date.now();
      await a.must(joinScript("a"), 180_000);
      await b.must(joinScript("b"), 180_000);
      const peers = JSON.parse(await a.must(`scope peer list ${NET} --json`)) as
        { name: string; address: string }[] | { peers: { name: string; address: string }[] };
      const list = Array.isArray(peers) ? peers : peers.peers;
      const addrOf = (n: string): string => list.find((p) => p.name === n)!.address.replace(/\/.*/, "");
      const ab = await a.must(waitPing(addrOf("b"), 90), 150_000);
      expect(/3 received/.test(ab), `a cannot ping b over the tunnel:\n${ab}`);
      await b.must(waitPing(addrOf("a"), 30), 90_000);
      const flavour = await b.must(
        `journalctl -u scope@${NET} -o cat | grep -o 'flavour=[a-z-]*' | head -n 1`,
      );
      lines.push(
        `join + ping a<->b over the tunnel: ${formatMs(Date.now() - t)} (${flavour.trim().replace(/\n/g, ", ")})`,
      );

      // Acceptance 3: exposure scores of the units the mesh just ran under.
      const sec = await a.must(
        `systemd-analyze security --no-pager scope@${NET}.service scope-registry.service 2>&1 | grep -i 'overall exposure'`,
      );
      for (const [unit, max] of Object.entries(MAX_EXPOSURE)) {
        const m = new RegExp(`exposure level for ${unit.replace(/[.@]/g, "\\$&")}: ([0-9.]+)`).exec(sec);
        expect(Boolean(m), `no exposure score for ${unit}:\n${sec}`);
        lines.push(`systemd-analyze security ${unit}: ${m![1]} (limit ${max.toFixed(1)})`);
        expect(Number(m![1]) <= max, `${unit} exposure ${m![1]} > ${max}`);
      }

      // Acceptance 5: man page and completion, as installed.
      const man = await a.exec("MANWIDTH=80 man --warnings scope 2>&1 >/dev/null");
      expect(man.code === 0 && man.stdout.trim() === "", `man --warnings scope: ${man.stdout}${man.stderr}`);
      const top = (await a.must(completion("scope "))).split("\n");
      for (const w of ["registry", "join", "daemon", "status", "network", "token"])
        expect(top.includes(w), `scope <TAB> lacks ${w}: ${top.join(" ")}`);
      const joinFlags = (await a.must(completion("scope join --"))).split("\n");
      for (const f of ["--network", "--token-file", "--backend", "--no-start"])
        expect(joinFlags.includes(f), `scope join --<TAB> lacks ${f}: ${joinFlags.join(" ")}`);
      expect(!joinFlags.includes("--cidr"), "scope join --<TAB> offers --cidr");
      lines.push(
        `man --warnings clean; scope <TAB>: ${top.length} words; scope join --<TAB>: ${joinFlags.length} flags`,
      );

      // Acceptance 1, end: restart both containers; the mesh comes back alone.
      t = Date.now();
      await Promise.all([a.stop(), b.stop()]);
      await Promise.all([a.start(), b.start()]);
      const back = await a.must(waitPing(addrOf("b"), 120), 180_000);
      expect(/3 received/.test(back), `mesh not back after restart:\n${back}`);
      lines.push(`containers restarted, mesh back in ${formatMs(Date.now() - t)}`);

      // Acceptance 2: upgrade keeps config and keys, restarts the services.
      t = Date.now();
      const unitsA = ["scope-registry.service", `scope@${NET}.service`];
      const unitsB = [`scope@${NET}.service`];
      const before = await Promise.all([a.must(snapshot(unitsA)), b.must(snapshot(unitsB))]);
      await publish(apt, [v2.deb]);
      const up = await Promise.all([a.must(install, 300_000), b.must(install, 300_000)]);
      expect(
        up.every((v) => v.trim() === v2.version),
        `upgrade gave ${up.join(" ")}, want ${v2.version}`,
      );
      const after = await Promise.all([a.must(snapshot(unitsA)), b.must(snapshot(unitsB))]);
      for (const [i, c] of [a, b].entries()) {
        const keep = (s: string): string =>
          s
            .split("\n")
            .filter((l) => !l.startsWith("scope"))
            .join("\n");
        expect(keep(before[i]!) === keep(after[i]!), `${c.o.name}: config or keys changed by the upgrade`);
        for (const l of after[i]!.split("\n").filter((x) => x.startsWith("scope"))) {
          const [unit, pid, state] = l.split(" ");
          const old = before[i]!.split("\n")
            .find((x) => x.startsWith(`${unit} `))!
            .split(" ")[1];
          expect(
            state === "active" && pid !== old,
            `${c.o.name}: ${unit} not restarted (pid ${old} -> ${pid}, ${state})`,
          );
        }
      }
      const still = await a.must(waitPing(addrOf("b"), 60), 120_000);
      expect(/3 received/.test(still), `mesh broken by the upgrade:\n${still}`);
      lines.push(
        `upgrade ${v1.version} -> ${v2.version}: services restarted, config and keys kept, mesh up (${formatMs(Date.now() - t)})`,
      );

      // Each check says what failed: a CI run once exited 1 here with no output.
      await b.must(`DEBIAN_FRONTEND=noninteractive apt-get remove -y -q scope >/dev/null
test -f /etc/scope/${NET}.conf && test -f /etc/scope/registry.conf && test -f /var/lib/scope/${NET}/wg.key ||
  { echo "remove took config or keys: $(ls -l /etc/scope /var/lib/scope/${NET} 2>&1)"; exit 1; }
! systemctl is-active -q scope@${NET}.service ||
  { echo "scope@${NET} still active after remove"; systemctl status --no-pager scope@${NET}.service; exit 1; }
failed=$(systemctl --failed --no-legend --plain)
[ -z "$failed" ] || { echo "failed units after remove: $failed"; systemctl status --no-pager --failed; exit 1; }`);
      await b.must(`DEBIAN_FRONTEND=noninteractive apt-get purge -y -q scope >/dev/null
test ! -e /etc/scope && test ! -e /var/lib/scope
systemctl daemon-reload
test -z "$(systemctl --failed --no-legend --plain)"`);
      const failedA = await a.must("systemctl --failed --no-legend --plain");
      expect(failedA.trim() === "", `failed units on a: ${failedA}`);
      lines.push("remove kept /etc/scope and /var/lib/scope; purge removed them; no failed unit on a or b");
      lines.push(`package sizes: .deb ${kib(v1.deb)} KiB, installed ${v1.installedKiB} KiB`);
      return lines;
    } catch (err) {
      const logs = await Promise.all(
        [a, b].map((c) =>
          c.exec("journalctl -q --no-pager -n 40 -u 'scope*' 2>&1 || true").catch(() => undefined),
        ),
      );
      const detail = logs.map((l, i) => `--- ${["a", "b"][i]} journal ---\n${l?.stdout ?? ""}`).join("\n");
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${detail}\n${lines.join("\n")}`, {
        cause: err,
      });
    } finally {
      await Promise.allSettled([a.destroy(), b.destroy()]);
      await removeBridge(bridge);
    }
  },
};
export default pkgContainers;
