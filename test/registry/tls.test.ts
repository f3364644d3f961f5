/**
 * Issue 14, acceptance 5: TLS done properly, against a registry with a
 * certificate from a self-signed CA made here with openssl. `scope join
 * --ca-file` works and without it fails with one clear line; plain http to
 * a host that is not loopback is refused before any request; a TLS 1.1
 * client is refused; SIGHUP with a renewed certificate keeps the open event
 * stream and serves the new certificate to new connections.
 */
import { execSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ConnectionOptions } from "node:tls";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { RegistryClient } from "../../src/client/registry-client.js";
import type { Event } from "../../src/core/protocol.js";
import { fingerprintOf, makeTestCa } from "../tls-ca.js";
import { newPeer, startRegistryProcess, until, type RegistryProcess } from "./harness.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** Runs `scope ARGS` with stdin; resolves with the exit code and both outputs. */
function scope(args: string[], stdin = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** A TLS handshake with the registry: the certificate it served, or the error. */
function handshake(port: number, o: ConnectionOptions): Promise<{ fingerprint: string } | { error: string }> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port, servername: "localhost", ...o }, () => {
      resolve({ fingerprint: s.getPeerCertificate().fingerprint256 });
      s.end();
    });
    s.on("error", (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message }));
  });
}

/** The pin of a certificate, the way docs/hardening.md tells an admin to compute it. */
const pinOfCert = (pem: string): string =>
  "sha256/" +
  execSync(
    `openssl x509 -in ${pem} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`,
    { encoding: "utf8" },
  ).trim();

describe("registry: TLS (real process, self-signed CA)", function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), "scope-tls-"));
  const { caFile, issue: issueFor } = makeTestCa(dir);
  const issue = (name: string) => issueFor(name, ["IP:127.0.0.1", "DNS:localhost"]);
  const first = issue("registry");
  // The files the registry is configured with; a renewal replaces their contents.
  const live = { cert: join(dir, "live.pem"), key: join(dir, "live.key") };
  writeFileSync(live.cert, readFileSync(first.cert));
  writeFileSync(live.key, readFileSync(first.key));
  let reg: RegistryProcess;
  let token: string;

  before(async () => {
    reg = await startRegistryProcess({ tls: live });
    await reg.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
    token = (await reg.admin.createToken("corp", { uses: 10 })).token;
  });
  after(async () => {
    await reg?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const joinArgs = (name: string) => [
    "join",
    reg.url,
    "--network",
    "corp",
    "--token-file",
    "-",
    "--name",
    name,
    "--no-start",
    "--config-dir",
    join(dir, `conf-${name}`),
    "--state-dir",
    join(dir, `state-${name}`),
  ];

  it("scope join --ca-file works; without it, one line says the certificate is not trusted", async () => {
    const ok = await scope([...joinArgs("with-ca"), "--ca-file", caFile], token);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(readFileSync(join(dir, "conf-with-ca", "corp.conf"), "utf8")).to.include(`ca_file = ${caFile}`);

    const refused = await scope(joinArgs("without-ca"), token);
    expect(refused.code).to.equal(1);
    const lines = refused.stderr.trim().split("\n");
    expect(lines, refused.stderr).to.have.length(1);
    expect(lines[0]).to.match(/TLS certificate .*not trust.*--ca-file/);
    console.log(`      without --ca-file: ${lines[0]}`);
  });

  it("with --pin: the registry's key passes, any other key is refused even under the right CA", async () => {
    const right = pinOfCert(first.cert);
    const wrong = pinOfCert(issue("other").cert);
    const refused = await scope([...joinArgs("wrong-pin"), "--ca-file", caFile, "--pin", wrong], token);
    expect(refused.code, refused.stderr).to.equal(1);
    expect(refused.stderr).to.match(/not the pinned key/);
    const ok = await scope([...joinArgs("right-pin"), "--ca-file", caFile, "--pin", right], token);
    expect(ok.code, ok.stderr).to.equal(0);
  });

  it("refuses plain http to a host that is not loopback, before sending anything", async () => {
    const r = await scope(
      [...joinArgs("plain"), "--ca-file", caFile].map((a) => (a === reg.url ? "http://192.0.2.1:8470" : a)),
      token,
    );
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/https:\/\/ is required/);
    const admin = await scope(["network", "list", "--registry", "http://192.0.2.1:8470"], "");
    expect(admin.code).to.equal(2);
  });

  it("refuses a TLS 1.1 client and serves TLS 1.2", async () => {
    // SECLEVEL=0 so that the client's own OpenSSL offers TLS 1.1 at all: the refusal must be the server's.
    const old = await handshake(reg.port, {
      ca: readFileSync(caFile),
      minVersion: "TLSv1.1",
      maxVersion: "TLSv1.1",
      ciphers: "DEFAULT@SECLEVEL=0",
    });
    expect(old).to.have.property("error");
    const modern = await handshake(reg.port, { ca: readFileSync(caFile), maxVersion: "TLSv1.2" });
    expect(modern).to.deep.equal({ fingerprint: fingerprintOf(first.cert) });
  });

  it("SIGHUP with a renewed certificate: the open stream stays, new connections get the new one", async () => {
    const trust = { ca: readFileSync(caFile, "utf8") };
    const clients = [newPeer("watcher"), newPeer("speaker")].map(
      (p) =>
        [p, new RegistryClient({ url: reg.url, network: "corp", identity: p.identity, tls: trust })] as const,
    );
    const [[wp, watcher], [sp, speaker]] = clients as unknown as [
      [ReturnType<typeof newPeer>, RegistryClient],
      [ReturnType<typeof newPeer>, RegistryClient],
    ];
    const joined = await watcher.join(token, wp.input);
    const spoke = await speaker.join(token, sp.input);
    const events: Event[] = [];
    let readies = 0;
    let drops = 0;
    const ac = new AbortController();
    const following = watcher.events({
      lastEventId: spoke.lastEventId,
      signal: ac.signal,
      onEvent: (e) => void events.push(e),
      onReady: () => void readies++,
      onDisconnect: () => void drops++,
    });
    await until(() => readies === 1, "the stream");

    const renewed = issue("registry-renewed");
    // Written as a renewal tool would: new files moved over the old names.
    writeFileSync(`${live.key}.new`, readFileSync(renewed.key));
    writeFileSync(`${live.cert}.new`, readFileSync(renewed.cert));
    renameSync(`${live.key}.new`, live.key);
    renameSync(`${live.cert}.new`, live.cert);
    reg.child.kill("SIGHUP");
    const want = fingerprintOf(renewed.cert);
    let served: unknown;
    await until(() => {
      void handshake(reg.port, { ca: trust.ca }).then((h) => (served = h));
      return (served as { fingerprint?: string } | undefined)?.fingerprint === want;
    }, "the renewed certificate");

    await speaker.postMessage({ type: "cc.ltgc.scope:peerConn", body: { peerId: spoke.self.id } });
    await until(() => events.some((e) => e.type === "cc.ltgc.scope:peerConn"), "the event on the old stream");
    expect({ readies, drops }).to.deep.equal({ readies: 1, drops: 0 });
    expect(reg.child.exitCode).to.equal(null);
    expect(joined.self.id).to.be.a("string");
    ac.abort();
    await following;
    watcher.close();
    speaker.close();
  });
});
