/**
 * Every `scope` subcommand, in the order `scope --help` lists them.
 * A command lives in its own module and is registered here.
 */
import type { Command } from "../command.js";
import { command as check } from "./check.js";
import { command as daemon } from "./daemon.js";
import { command as join } from "./join.js";
import { command as leave } from "./leave.js";
import { command as netcheck } from "./netcheck.js";
import { create as networkCreate, list as networkList } from "./network.js";
import { list as peerList, remove as peerRemove, set as peerSet } from "./peer.js";
import { command as ping } from "./ping.js";
import { only as pskOnly, rotate as pskRotate } from "./psk.js";
import { command as recreate } from "./recreate.js";
import { command as registry, migrate as registryMigrate } from "./registry.js";
import { command as status } from "./status.js";
import { command as tokenCreate } from "./token.js";

export const COMMANDS: Command[] = [
  registry,
  registryMigrate,
  networkCreate,
  networkList,
  tokenCreate,
  peerList,
  peerSet,
  peerRemove,
  join,
  daemon,
  status,
  ping,
  netcheck,
  pskRotate,
  pskOnly,
  leave,
  recreate,
  check,
];
