import { expect } from "chai";
import { execRunner } from "../../src/exec.js";

const EXEC_MODULE = new URL("../../src/exec.js", import.meta.url).href;

describe("exec runner", () => {
  const runner = execRunner();

  it("answers 127 for a command that does not exist, and leaves nothing that keeps the process up", async function () {
    this.timeout(20_000);
    // Node's own spawn timeout outlived a failed spawn: a `scope join` that
    // probed for modprobe stayed up for the whole 30 s deadline.
    const script = `import(${JSON.stringify(EXEC_MODULE)}).then(async (m) => {
      const r = await m.execRunner().run("scope-no-such-command", []);
      process.stdout.write(String(r.code));
    });`;
    const t0 = Date.now();
    const r = await runner.run(process.execPath, ["-e", script], { timeoutMs: 15_000 });
    expect(r.stdout).to.equal("127");
    expect(Date.now() - t0, "the process lingered").to.be.below(10_000);
  });

  it("kills a command that outlives its deadline", async () => {
    const t0 = Date.now();
    const r = await runner.run("sleep", ["5"], { timeoutMs: 100 });
    expect(r.code).to.not.equal(0);
    expect(Date.now() - t0).to.be.below(3_000);
  });

  it("hands stdin to the command through a real pipe, never on argv", async () => {
    const r = await runner.run("sh", ["-c", 'read -r line < /dev/stdin; echo "got $line"'], {
      stdin: "s3cret\n",
    });
    expect(r).to.include({ code: 0, stdout: "got s3cret\n" });
  });
});
