/** `scope ping`: ICMP through the tunnel with the system's ping(8); the address is validated first, argv carries nothing secret. */
import { execFile } from "node:child_process";
import { familyOf, tryParseIpv4, tryParseIpv6 } from "../core/ip.js";

export function pingPeer(address: string, count: number): Promise<{ output: string; exitCode: number }> {
  if (!(tryParseIpv4(address) ?? tryParseIpv6(address)))
    return Promise.resolve({ output: "bad address", exitCode: 2 });
  const args = [
    ...(familyOf(address) === "ipv6" ? ["-6"] : []),
    "-c",
    String(count),
    "-W",
    "2",
    "-i",
    "0.2",
    address,
  ];
  return new Promise((resolve) => {
    execFile("ping", args, { timeout: (count + 3) * 2_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ output: stdout + stderr, exitCode: code });
    });
  });
}
