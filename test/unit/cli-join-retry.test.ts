import { expect } from "chai";
import { joinPatiently } from "../../src/cli/commands/join.js";
import { ScopeError } from "../../src/core/errors.js";

// `scope join` against a registry that is busy or restarting (bench:psk --lab
// saw one exit at host 35 of 50): sent again while nothing answers, never
// after an answer, and not forever.
describe("scope join: patience with a registry that does not answer", () => {
  const unreachable = () =>
    new ScopeError("unavailable", "no answer from http://r:8470 in time", {
      cause: Object.assign(new Error("ETIMEDOUT"), { code: "ETIMEDOUT" }),
    });
  const fakeTime = () => {
    let t = 0;
    return { now: () => t, sleep: async (ms: number) => void (t += ms), slept: () => t };
  };
  const stderr = () => {
    const lines: string[] = [];
    return {
      lines,
      io: { stderr: { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream },
    };
  };

  /** joinPatiently over a send that always throws `fail()`: what it ended with, how often it sent. */
  const alwaysFailing = async (fail: () => Error, patienceMs: number) => {
    const time = fakeTime();
    let calls = 0;
    const send = async (): Promise<never> => {
      calls++;
      throw fail();
    };
    const error = await joinPatiently(stderr().io, send, patienceMs, time.sleep, time.now).then(
      () => expect.fail("resolved"),
      (e: unknown) => e,
    );
    return { error, calls, slept: time.slept() };
  };

  it("sends again after no answer, and says so on stderr", async () => {
    const time = fakeTime();
    const err = stderr();
    let calls = 0;
    const answer = await joinPatiently(
      err.io,
      async () => {
        if (++calls < 3) throw unreachable();
        return "joined";
      },
      90_000,
      time.sleep,
      time.now,
    );
    expect(answer).to.equal("joined");
    expect(calls).to.equal(3);
    expect(err.lines).to.have.length(2);
    expect(err.lines[0]).to.match(
      /^scope join: no answer from http:\/\/r:8470 in time; trying again in 0\.5 s\n$/,
    );
    expect(time.slept()).to.equal(1_500);
  });

  it("gives up with the last error once the patience is spent", async () => {
    const { error, calls, slept } = await alwaysFailing(unreachable, 20_000);
    expect((error as Error).message).to.match(/no answer/);
    expect(slept).to.be.at.most(20_000);
    expect(calls).to.equal(6); // after 0.5 + 1 + 2 + 4 + 8 s; 8 s more would pass 20 s
  });

  it("never sends again after an answer (a bad token stays one request)", async () => {
    const { error, calls } = await alwaysFailing(
      () => new ScopeError("token_invalid", "join token used up"),
      90_000,
    );
    expect((error as ScopeError).code).to.equal("token_invalid");
    expect(calls).to.equal(1);
  });
});
