/**
 * Fakes for the two seams of this folder, shipped next to them (STYLE §1:
 * "a fake ships next to each seam") so the plugin's tests and the lead's
 * can use them without root, networkd or a kernel.
 */
import type { FileStat, FileSystem } from "./files.js";
import type { CommandRunner, RunOptions, RunResult } from "../src/exec.js";

export interface RecordedCommand {
  file: string;
  args: string[];
  stdin?: string;
}

export type CommandHandler = (cmd: RecordedCommand) => RunResult | undefined;

/**
 * Records every command and answers through handlers tried in order (the
 * first that returns a result wins); unhandled commands succeed with empty
 * output. `lines()` gives "file arg arg" per command, for comparing
 * with expected text the way tailscale's fakeOS does.
 */
export class RecordingRunner implements CommandRunner {
  readonly calls: RecordedCommand[] = [];
  private readonly handlers: CommandHandler[] = [];

  on(handler: CommandHandler): this {
    this.handlers.push(handler);
    return this;
  }

  async run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const cmd: RecordedCommand = {
      file,
      args: [...args],
      ...(options.stdin !== undefined && { stdin: options.stdin }),
    };
    this.calls.push(cmd);
    for (const h of this.handlers) {
      const r = h(cmd);
      if (r) return r;
    }
    return { code: 0, stdout: "", stderr: "" };
  }

  lines(): string[] {
    return this.calls.map((c) => [c.file, ...c.args].join(" "));
  }

  clear(): void {
    this.calls.length = 0;
  }
}

export const ok = (stdout = ""): RunResult => ({ code: 0, stdout, stderr: "" });
export const fail = (stderr: string, code = 1): RunResult => ({ code, stdout: "", stderr });

interface MemFile extends FileStat {
  content: string;
}

/** A directory tree in memory; records mutating operations as text in `ops`. */
export class MemoryFileSystem implements FileSystem {
  readonly files = new Map<string, MemFile>();
  readonly ops: string[] = [];

  constructor(initial: Record<string, string> = {}) {
    for (const [p, content] of Object.entries(initial))
      this.files.set(p, { content, uid: 0, gid: 0, mode: 0o644 });
  }

  async readFile(path: string): Promise<string | undefined> {
    return this.files.get(path)?.content;
  }
  async stat(path: string): Promise<FileStat | undefined> {
    const f = this.files.get(path);
    return f && { uid: f.uid, gid: f.gid, mode: f.mode };
  }
  async readdir(dir: string): Promise<string[]> {
    const d = dir.endsWith("/") ? dir : `${dir}/`;
    return [...this.files.keys()]
      .filter((p) => p.startsWith(d) && !p.slice(d.length).includes("/"))
      .map((p) => p.slice(d.length));
  }
  async createExclusive(path: string, content: string, mode: number): Promise<void> {
    if (this.files.has(path)) throw Object.assign(new Error(`EEXIST: ${path}`), { code: "EEXIST" });
    this.files.set(path, { content, uid: 0, gid: 0, mode });
    this.ops.push(`create ${path} ${mode.toString(8)}`);
  }
  async chown(path: string, uid: number, gid: number): Promise<void> {
    Object.assign(this.get(path), { uid, gid });
    this.ops.push(`chown ${path} ${uid}:${gid}`);
  }
  async chmod(path: string, mode: number): Promise<void> {
    this.get(path).mode = mode;
    this.ops.push(`chmod ${path} ${mode.toString(8)}`);
  }
  async rename(from: string, to: string): Promise<void> {
    this.files.set(to, this.get(from));
    this.files.delete(from);
    this.ops.push(`rename ${from} ${to}`);
  }
  async unlink(path: string): Promise<void> {
    if (this.files.delete(path)) this.ops.push(`unlink ${path}`);
  }
  async syncDir(dir: string): Promise<void> {
    this.ops.push(`sync ${dir}`);
  }

  private get(path: string): MemFile {
    const f = this.files.get(path);
    if (!f) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    return f;
  }
}
