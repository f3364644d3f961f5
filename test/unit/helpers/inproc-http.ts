/**
 * An HttpTransport (src/client/http.ts) that hands each request to a koa
 * app's callback() in-process: a real IncomingMessage and ServerResponse on
 * a fake socket, whose bytes are parsed back into status, headers and body
 * (Content-Length or chunked, including an SSE stream that stays open).
 * No port, no real time: a whole registry under the fake clock.
 *
 * While `handler()` returns undefined the registry is down: requests fail
 * like a refused connection.
 */
import { IncomingMessage, ServerResponse, type IncomingHttpHeaders } from "node:http";
import { Duplex, PassThrough } from "node:stream";
import type { HttpRequest, HttpResponse, HttpTransport } from "../../../src/client/http.js";

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

class FakeSocket extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort = 40_000;
  readonly remoteFamily = "IPv4";
  constructor(
    remote: string,
    private readonly sink: (b: Buffer) => void,
  ) {
    super();
    this.remoteAddress = remote;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.sink(chunk);
    cb();
  }
  override _read(): void {}
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

type Body = PassThrough & { statusCode?: number; headers?: IncomingHttpHeaders };

/** Parses one HTTP/1.1 response from the bytes a ServerResponse writes. */
class ResponseParser {
  private buf = Buffer.alloc(0);
  private state: "head" | "length" | "chunked" | "done" = "head";
  private left = 0;
  constructor(
    private readonly onHead: (status: number, headers: IncomingHttpHeaders) => void,
    private readonly body: PassThrough,
  ) {}

  push(b: Buffer): void {
    this.buf = Buffer.concat([this.buf, b]);
    for (;;) {
      if (this.state === "head") {
        const end = this.buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const lines = this.buf.subarray(0, end).toString("latin1").split("\r\n");
        this.buf = this.buf.subarray(end + 4);
        const status = Number(lines[0]?.split(" ")[1]);
        const headers: IncomingHttpHeaders = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(":");
          headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        this.onHead(status, headers);
        if (headers["transfer-encoding"] === "chunked") this.state = "chunked";
        else {
          this.left = Number(headers["content-length"] ?? 0);
          this.state = "length";
        }
      } else if (this.state === "length") {
        const take = this.buf.subarray(0, this.left);
        this.buf = this.buf.subarray(take.length);
        this.left -= take.length;
        if (take.length > 0) this.body.write(take);
        if (this.left > 0) return;
        this.finish();
      } else if (this.state === "chunked") {
        const nl = this.buf.indexOf("\r\n");
        if (nl < 0) return;
        const size = parseInt(this.buf.subarray(0, nl).toString("latin1"), 16);
        if (this.buf.length < nl + 2 + size + 2) return;
        const data = this.buf.subarray(nl + 2, nl + 2 + size);
        this.buf = this.buf.subarray(nl + 2 + size + 2);
        if (size === 0) this.finish();
        else this.body.write(data);
      } else return;
    }
  }

  private finish(): void {
    this.state = "done";
    this.body.end();
  }
}

const abortError = (): Error => Object.assign(new Error("The operation was aborted"), { name: "AbortError" });

/** The transport; `remote` is the client address the registry sees. */
export function inProcessTransport(handler: () => Handler | undefined, remote = "127.0.0.1"): HttpTransport {
  return (req: HttpRequest): Promise<HttpResponse> =>
    new Promise((resolve, reject) => {
      if (req.signal?.aborted) return reject(abortError());
      const h = handler();
      if (!h) return reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
      const body: Body = new PassThrough();
      let headed = false;
      const parser = new ResponseParser((status, headers) => {
        headed = true;
        body.statusCode = status;
        body.headers = headers;
        resolve(body as Body & HttpResponse);
      }, body);
      const socket = new FakeSocket(remote, (b) => parser.push(b));
      const onAbort = (): void => {
        if (!headed) reject(abortError());
        else body.destroy(abortError());
      };
      req.signal?.addEventListener("abort", onAbort, { once: true });
      // The client is done with the answer (read, destroyed or aborted): the connection goes.
      body.once("close", () => {
        req.signal?.removeEventListener("abort", onAbort);
        socket.destroy();
      });
      socket.once("close", () => {
        if (!headed) reject(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }));
        else if (!body.writableEnded)
          body.destroy(Object.assign(new Error("aborted"), { code: "ECONNRESET" }));
      });

      const msg = new IncomingMessage(socket as never);
      msg.method = req.method;
      msg.url = req.path;
      msg.httpVersion = "1.1";
      msg.httpVersionMajor = 1;
      msg.httpVersionMinor = 1;
      const headers: IncomingHttpHeaders = { host: "registry" };
      for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
      if (req.body) headers["content-length"] = String(req.body.length);
      msg.headers = headers;
      if (req.body && req.body.length > 0) msg.push(req.body);
      msg.push(null);
      msg.complete = true;
      const res = new ServerResponse(msg);
      res.assignSocket(socket as never);
      h(msg, res);
    });
}
