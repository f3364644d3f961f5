/**
 * The name rules, one definition each, used by the protocol (registry),
 * the config schema, the CLI, networkd/ and every backend. Pure.
 *
 * Each check returns a problem as text or undefined, so callers add their
 * own prefix ("networkd: ", "file:line:") in one place.
 */

// ---- network names -------------------------------------------------------

/**
 * A network name: 1-15 of a-z 0-9 "-", starting with a letter or digit,
 * not all digits and not "all" or "default". It must work unchanged
 * everywhere Scope puts it:
 * - the registry URL path /v1/networks/NET (no escaping needed);
 * - file and directory names: /etc/scope/NET.conf, /var/lib/scope/NET/,
 *   /etc/systemd/network/50-scope-NET.netdev ("." is our separator there,
 *   so "corp" never matches the files of "corp.eu"; no "/");
 * - the unit instance scope@NET: every character is legal in a unit name
 *   and none needs systemd-escape, so %i is NET itself (the unit files use
 *   %i, never %I, which would read "-" as "/");
 * - an interface name: NET itself is always a valid one (checkInterfaceName:
 *   at most 15 bytes, a subset of its characters, and the names it
 *   refuses — all digits, "all", "default" — are refused here too);
 * - argv: it cannot start with "-", so it is never read as an option.
 * Lower case only: file systems and the registry compare names
 * byte-for-byte, and "Corp" beside "corp" would be two networks that look
 * like one.
 */
export const NETWORK_NAME_RE = /^[a-z0-9][a-z0-9-]{0,14}$/;
export const NETWORK_NAME_RULE = '1-15 of a-z 0-9 -, starting alnum, not all digits, not "all" or "default"';

export const isNetworkName = (s: string): boolean =>
  NETWORK_NAME_RE.test(s) && !/^[0-9]+$/.test(s) && s !== "all" && s !== "default";

export function checkNetworkName(s: string): string | undefined {
  return isNetworkName(s) ? undefined : `network name ${JSON.stringify(s)} must be ${NETWORK_NAME_RULE}`;
}

// ---- interface names -----------------------------------------------------

/** Linux IFNAMSIZ (include/uapi/linux/if.h), including the terminating NUL. */
export const IFNAMSIZ = 16;

/**
 * Characters an interface name may hold: what the kernel (dev_valid_name:
 * no "/", ":" or whitespace) and systemd (ifname_valid_char: printable
 * ASCII 33-126, no ":", "/" or "%") both accept, minus the ones that would
 * change meaning in networkd's `[Match] Name=`, which is a whitespace
 * separated list of globs with "!" negation and quoting
 * (systemd.network(5)): * ? [ ] ! " ' \ . Everything left is plain ASCII,
 * so bytes and characters are the same count.
 */
const IFNAME_CHAR = /^[\x21-\x7e]+$/;
const IFNAME_BAD_CHAR = /[/:%*?[\]!"'\\]/;

/**
 * An interface name: 1-15 bytes (IFNAMSIZ - 1) of the characters above; not
 * "." or ".." (sysfs paths), not "all" or "default" (the special
 * /proc/sys/net/ipv{4,6}/conf/ directories; systemd refuses them), not all
 * digits (systemd would read it as an ifindex). It also becomes the
 * wireguard-go socket /var/run/wireguard/NAME.sock, which "/" would break.
 */
export function checkInterfaceName(s: string): string | undefined {
  if (s.length === 0 || s.length > IFNAMSIZ - 1) return "interface names are 1 to 15 bytes";
  if (!IFNAME_CHAR.test(s) || IFNAME_BAD_CHAR.test(s))
    return `"${s}" is not a valid interface name (printable ASCII without space / : % * ? [ ] ! " ' \\)`;
  if (s === "." || s === "..") return `"${s}" is not a valid interface name`;
  if (s === "all" || s === "default") return `"${s}" is reserved by the kernel (net/ipv4/conf/${s})`;
  if (/^[0-9]+$/.test(s)) return `"${s}" is not a valid interface name (all digits reads as an ifindex)`;
  return undefined;
}

export const isInterfaceName = (s: string): boolean => checkInterfaceName(s) === undefined;
