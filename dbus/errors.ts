/**
 * The one place where a D-Bus error becomes a ScopeError. The D-Bus error
 * name NetworkManager (or the bus daemon) sent is kept in `dbusName` and
 * in the message, so a log line says what NM said, e.g.
 * "networkmanager: Update2 of Scope corp: org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty: wireguard.peers[0]: …".
 *
 * Names are NetworkManager's error domains (libnm nm-errors.h, each
 * domain's D-Bus prefix + the enum nick): NMManagerError
 * "org.freedesktop.NetworkManager.*", NMSettingsError
 * "org.freedesktop.NetworkManager.Settings.*", NMConnectionError
 * "org.freedesktop.NetworkManager.Settings.Connection.*", NMDeviceError
 * "org.freedesktop.NetworkManager.Device.*", NMAgentManagerError
 * "org.freedesktop.NetworkManager.AgentManager.*", plus the bus daemon's
 * org.freedesktop.DBus.Error.*.
 */
import { ScopeError, type ErrorCode } from "../src/core/errors.js";
import { DBusErrorReply } from "./bus.js";

/** Last dotted component of the error name → Scope error code; first match wins. */
const BY_SUFFIX: [RegExp, ErrorCode][] = [
  // The caller is not allowed: polkit said no, or the bus policy refused the call.
  [/\.(PermissionDenied|AccessDenied|NotAllowed|InteractiveAuthorizationRequired)$/, "forbidden"],
  // The object is gone: a profile deleted by hand, a path from before an NM restart.
  [
    /\.(UnknownConnection|UnknownDevice|UnknownObject|UnknownMethod|UnknownInterface|UnknownProperty|SettingNotFound|PropertyNotFound|SpecificObjectNotFound)$/,
    "not_found",
  ],
  // NM refused the settings: a bug in what Scope sent, or an NM too old for a key.
  [
    /\.(InvalidConnection|InvalidProperty|InvalidSetting|MissingProperty|MissingSetting|InvalidArguments|InvalidArgs|InvalidArgument|IncompatibleConnection|PropertyNotSecret|NotSoftware)$/,
    "config",
  ],
  // A concurrent change (Reapply version_id) or a state that forbids the call.
  [
    /\.(VersionIdMismatch|ConnectionAlreadyActive|ConnectionNotActive|NotActive|ConnectionNotAvailable|UuidExists)$/,
    "conflict",
  ],
  // NetworkManager is not there (stopped, restarting) or the bus is gone.
  [
    /\.(ServiceUnknown|NameHasNoOwner|NoReply|Disconnected|NoServer|Timeout|TimedOut|Spawn\.\w+)$/,
    "unavailable",
  ],
];

export const NM_ERROR_PREFIX = "org.freedesktop.NetworkManager";

/** A ScopeError that remembers the D-Bus error name it came from (undefined: the bus itself failed). */
export class NmError extends ScopeError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly dbusName: string | undefined,
    cause: unknown,
  ) {
    super(code, message, { cause });
    this.name = "NmError";
  }
}

export function codeOfDBusError(name: string): ErrorCode {
  for (const [re, code] of BY_SUFFIX) if (re.test(name)) return code;
  return "backend";
}

/**
 * Wraps any failure of a D-Bus call. `what` names the call for the
 * message ("AddConnection2 of Scope corp"). A connection failure (not an
 * error reply) is `unavailable`: the client reconnects.
 */
export function nmError(what: string, err: unknown): NmError {
  if (err instanceof NmError) return err;
  if (err instanceof DBusErrorReply)
    return new NmError(
      codeOfDBusError(err.errorName),
      `${what}: ${err.errorName}: ${err.text}`,
      err.errorName,
      err,
    );
  const text = err instanceof Error ? err.message : String(err);
  return new NmError("unavailable", `${what}: ${text}`, undefined, err);
}

/** The error says the method does not exist (an NM older than the method, e.g. AddConnection2 before 1.20). */
export const isUnknownMethod = (err: unknown): boolean =>
  err instanceof NmError &&
  (err.dbusName === "org.freedesktop.DBus.Error.UnknownMethod" ||
    err.dbusName === "org.freedesktop.DBus.Error.UnknownInterface");

/** The error says the object or profile does not exist (any more). */
export const isGone = (err: unknown): boolean => err instanceof NmError && err.code === "not_found";
