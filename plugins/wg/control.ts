/**
 * The control seam: how the backend reads and writes WireGuard's own
 * configuration (keys, peers), apart from the link (addresses, MTU, up)
 * that `ip` handles in both flavours. Two implementations: UAPI for
 * wireguard-go (here) and wg(8) for kernel WireGuard (wgtool.ts).
 */
import type { DesiredState } from "../../src/core/backend.js";
import type { Plan } from "./diff.js";
import type { DeviceState, PeerState } from "./model.js";
import {
  checkErrno,
  encodeRetrigger,
  encodeSet,
  parseGet,
  UapiUnavailableError,
  type UapiTransport,
} from "./uapi.js";

export interface WgControl {
  /** Live state, or undefined when the interface does not exist. */
  read(): Promise<DeviceState | undefined>;
  /** Send exactly the plan; `desired` is normalized and holds the secrets the plan refers to. */
  write(plan: Plan, desired: DesiredState): Promise<void>;
  /** Re-create the peer with its live config so a handshake starts now (uapi.ts: encodeRetrigger). */
  retrigger(peer: PeerState): Promise<void>;
}

export class UapiControl implements WgControl {
  constructor(
    private readonly transport: UapiTransport,
    private readonly onIgnoredKeys: (keys: string[]) => void = () => undefined,
  ) {}

  async read(): Promise<DeviceState | undefined> {
    let reply: string;
    try {
      reply = await this.transport.request("get=1\n\n");
    } catch (err) {
      if (err instanceof UapiUnavailableError) return undefined;
      throw err;
    }
    const { state, ignored } = parseGet(reply);
    if (ignored.length) this.onIgnoredKeys(ignored);
    return state;
  }

  async write(plan: Plan, desired: DesiredState): Promise<void> {
    checkErrno(await this.transport.request(encodeSet(plan, desired)), "set");
  }

  async retrigger(peer: PeerState): Promise<void> {
    checkErrno(await this.transport.request(encodeRetrigger(peer)), "set");
  }
}
