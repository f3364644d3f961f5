// One VM: the guest has what every other case relies on: kernel WireGuard,
// networkd and NetworkManager running, the Debian node able to load the
// project's native module (host-built better-sqlite3) from the read-only share.
import { expectOutput, type SystemCase } from "../case.js";

const smoke: SystemCase = {
  name: "smoke",
  description: "guest tooling: wg, wireguard module, networkd, NetworkManager, node + better-sqlite3",
  guests: () => [
    {
      script: `
wg --version
modprobe wireguard
ip link add wgsmoke type wireguard
ip link del wgsmoke
systemctl is-active dbus systemd-networkd NetworkManager
networkctl list --no-pager
echo "nm $(NetworkManager --version)"
echo "kernel $(uname -r)"
node --version
cd "$SCOPE_PROJECT"
node -e 'const Db = require("better-sqlite3"); const db = new Db(":memory:");
console.log("sqlite " + db.prepare("select sqlite_version() as v").get().v);'
`,
    },
  ],
  check: ([vm]) => {
    expectOutput(vm!, /wireguard-tools v1\./, "wg missing");
    expectOutput(vm!, /^v20\./m, "node is not 20.x");
    expectOutput(vm!, /^sqlite 3\.\d+/m, "better-sqlite3 did not load in the guest");
    expectOutput(vm!, /^nm 1\./m, "NetworkManager missing");
  },
};
export default smoke;
