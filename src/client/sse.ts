/**
 * Incremental Server-Sent Events parser (the WHATWG event-stream format):
 * feed it chunks of bytes as they arrive, get one callback per dispatched
 * event. Handles lines split across chunks, CRLF/CR/LF endings, multi-line
 * data, comments (heartbeats) and the id/retry fields. Bounded: a line or
 * an event longer than maxChars (a broken or hostile server) throws
 * SseOverflow instead of growing the buffer until the process dies.
 */
export interface SseMessage {
  /** "message" unless the stream named it (`event:`). */
  event: string;
  data: string;
  /** The last id seen on the stream so far (sticky, as in EventSource). */
  lastEventId: string;
}

/** Far above any real event (a request body is at most 64 KiB, src/core/protocol.ts MAX_BODY_BYTES). */
export const SSE_MAX_CHARS = 1024 * 1024;

export class SseOverflow extends Error {
  constructor(maxChars: number) {
    super(`event stream line or event over ${maxChars} characters`);
    this.name = "SseOverflow";
  }
}

export class SseParser {
  private readonly decoder = new TextDecoder("utf-8");
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private dataChars = 0;
  private lastEventId = "";
  /** Reconnection delay the server asked for, ms. */
  retryMs: number | undefined;

  constructor(
    private readonly onMessage: (m: SseMessage) => void,
    private readonly maxChars = SSE_MAX_CHARS,
  ) {}

  push(chunk: Uint8Array): void {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the first half of CRLF: wait for more.
      if (!m || (m[0] === "\r" && m.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      this.line(line);
    }
    if (this.buffer.length > this.maxChars) {
      this.buffer = "";
      throw new SseOverflow(this.maxChars);
    }
  }

  private line(line: string): void {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.dataChars += value.length + 1;
        if (this.dataChars > this.maxChars) {
          this.data = [];
          this.dataChars = 0;
          throw new SseOverflow(this.maxChars);
        }
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retryMs = Number(value);
        break;
    }
  }

  private dispatch(): void {
    const event = this.event || "message";
    const hasData = this.data.length > 0;
    const data = this.data.join("\n");
    this.event = "";
    this.data = [];
    this.dataChars = 0;
    if (hasData) this.onMessage({ event, data, lastEventId: this.lastEventId });
  }
}
