/**
 * The kex slice: pre-shared key epochs per peer (DESIGN §6). Empty until
 * PSK rotation lands; then it owns the epochs, the 15 s revert and its own
 * deadline, and the desired peer set takes the key from here.
 */

/** Per-peer PSK epochs. No fields yet: every peer runs without a PSK. */
export type KexState = Readonly<Record<never, never>>;

export const newKexState = (): KexState => ({});

/** The PSK to configure for a peer now; undefined: none. */
export const presharedKeyOf = (_kex: KexState): string | undefined => undefined;

/** The kex slice's next deadline for a peer (a revert, a rotation); none yet. */
export const kexDeadline = (_kex: KexState): number | undefined => undefined;
