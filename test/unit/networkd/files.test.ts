import { expect } from "chai";
import { placeFiles, removeFiles, resolveOwnership, type Ownership } from "../../../networkd/files.js";
import { MemoryFileSystem } from "../../../networkd/testing.js";

const DIR = "/etc/systemd/network";
const OWN: Ownership = { uid: 0, gid: 998, mode: 0o640 };
const netdev = { name: "50-scope-corp.netdev", content: "[NetDev]\n", secret: false };
const key = { name: "50-scope-corp.key", content: "k\n", secret: true };
const psk = { name: "50-scope-corp.peer-aa.psk", content: "p\n", secret: true };

/** Temp names carry a random suffix; the shape of the sequence is what matters. */
const shape = (ops: string[]) => ops.map((o) => o.replace(/\.scope-tmp-[0-9a-f]+/, ".scope-tmp-X"));

describe("networkd files", () => {
  it("writes atomically: 0600 temp, chown, chmod 0640, rename; keys before the netdev", async () => {
    const fs = new MemoryFileSystem();
    const r = await placeFiles(fs, DIR, "50-scope-corp.", [netdev, key], OWN);
    expect(r).to.deep.equal({
      written: ["50-scope-corp.key", "50-scope-corp.netdev"],
      repaired: [],
      removed: [],
    });
    const tmpKey = `${DIR}/.50-scope-corp.key.scope-tmp-X`;
    const tmpNetdev = `${DIR}/.50-scope-corp.netdev.scope-tmp-X`;
    expect(shape(fs.ops)).to.deep.equal([
      `create ${tmpKey} 600`,
      `chown ${tmpKey} 0:998`,
      `chmod ${tmpKey} 640`,
      `rename ${tmpKey} ${DIR}/50-scope-corp.key`,
      `create ${tmpNetdev} 600`,
      `chown ${tmpNetdev} 0:998`,
      `chmod ${tmpNetdev} 640`,
      `rename ${tmpNetdev} ${DIR}/50-scope-corp.netdev`,
      `sync ${DIR}`,
    ]);
  });

  it("does nothing when content, owner and mode are right", async () => {
    const fs = new MemoryFileSystem();
    await placeFiles(fs, DIR, "50-scope-corp.", [netdev, key], OWN);
    fs.ops.length = 0;
    const r = await placeFiles(fs, DIR, "50-scope-corp.", [netdev, key], OWN);
    expect(r).to.deep.equal({ written: [], repaired: [], removed: [] });
    expect(fs.ops).to.deep.equal([]);
  });

  it("repairs owner and mode in place without rewriting", async () => {
    const fs = new MemoryFileSystem();
    await placeFiles(fs, DIR, "50-scope-corp.", [key], OWN);
    fs.files.get(`${DIR}/50-scope-corp.key`)!.mode = 0o644;
    fs.ops.length = 0;
    const r = await placeFiles(fs, DIR, "50-scope-corp.", [key], OWN);
    expect(r.repaired).to.deep.equal(["50-scope-corp.key"]);
    expect(fs.ops).to.deep.equal([
      `chown ${DIR}/50-scope-corp.key 0:998`,
      `chmod ${DIR}/50-scope-corp.key 640`,
    ]);
  });

  it("removes its stale files and crash leftovers, never another network's or the admin's", async () => {
    const fs = new MemoryFileSystem({
      [`${DIR}/50-scope-corp-eu.netdev`]: "other network",
      [`${DIR}/10-eth0.network`]: "admin",
      [`${DIR}/.50-scope-corp.netdev.scope-tmp-0123`]: "crash leftover",
    });
    await placeFiles(fs, DIR, "50-scope-corp.", [netdev, key, psk], OWN);
    const r = await placeFiles(fs, DIR, "50-scope-corp.", [netdev, key], OWN);
    expect(r.removed).to.deep.equal(["50-scope-corp.peer-aa.psk"]);
    expect([...fs.files.keys()].sort()).to.deep.equal([
      `${DIR}/10-eth0.network`,
      `${DIR}/50-scope-corp-eu.netdev`,
      `${DIR}/50-scope-corp.key`,
      `${DIR}/50-scope-corp.netdev`,
    ]);
  });

  it("refuses to place a file outside its prefix", async () => {
    const fs = new MemoryFileSystem();
    let err: Error | undefined;
    await placeFiles(fs, DIR, "50-scope-corp.", [{ ...netdev, name: "../x" }], OWN).catch(
      (e: Error) => (err = e),
    );
    expect(err?.message).to.match(/refusing/);
  });

  it("removeFiles deletes the .netdev first and exactly its own files", async () => {
    const fs = new MemoryFileSystem({ [`${DIR}/50-scope-corp-eu.netdev`]: "x" });
    await placeFiles(fs, DIR, "50-scope-corp.", [psk, netdev, key], OWN);
    fs.ops.length = 0;
    expect(await removeFiles(fs, DIR, "50-scope-corp.")).to.deep.equal([
      "50-scope-corp.netdev",
      "50-scope-corp.key",
      "50-scope-corp.peer-aa.psk",
    ]);
    expect([...fs.files.keys()]).to.deep.equal([`${DIR}/50-scope-corp-eu.netdev`]);
  });

  it("looks up the systemd-network gid, and falls back to root with a note", async () => {
    const fs = new MemoryFileSystem({ "/etc/group": "root:x:0:\nsystemd-network:x:101:\n" });
    expect(await resolveOwnership(fs)).to.deep.equal({ uid: 0, gid: 101, mode: 0o640 });
    const none = await resolveOwnership(new MemoryFileSystem({ "/etc/group": "root:x:0:\n" }));
    expect(none.gid).to.equal(0);
    expect(none.note).to.match(/systemd-network not found/);
  });
});

describe("networkd files on the real file system", () => {
  it("places, keeps and removes files in a temp directory with the right mode", async () => {
    const { mkdtemp, rm, stat, readFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { realFileSystem } = await import("../../../networkd/files.js");
    const dir = await mkdtemp(`${tmpdir()}/scope-networkd-`);
    // Our own uid/gid: chown to them needs no privilege.
    const own = { uid: process.getuid!(), gid: process.getgid!(), mode: 0o640 };
    try {
      await placeFiles(realFileSystem, dir, "50-scope-corp.", [netdev, key], own);
      expect((await stat(`${dir}/50-scope-corp.key`)).mode & 0o777).to.equal(0o640);
      expect(await readFile(`${dir}/50-scope-corp.netdev`, "utf8")).to.equal("[NetDev]\n");
      expect(
        (await placeFiles(realFileSystem, dir, "50-scope-corp.", [netdev, key], own)).written,
      ).to.deep.equal([]);
      expect(await removeFiles(realFileSystem, dir, "50-scope-corp.")).to.have.length(2);
      expect(await realFileSystem.readdir(dir)).to.deep.equal([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
