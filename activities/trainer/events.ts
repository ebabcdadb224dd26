/** One line of the trainer's JSON-lines progress on stdout (the protocol is in python/loratrain/protocol.py's docstring). */
export interface TrainerEvent {
  readonly event: string;
  readonly step?: number;
  readonly total?: number;
  readonly loss?: number;
  readonly final_loss?: number | null;
  readonly phase?: string;
  /** Of an `error` event: `bad_input`, `bad_checkpoint` or `failure`. */
  readonly kind?: string;
  readonly message?: string;
  /** Of a `checkpoint` event: the folder it was written to. */
  readonly path?: string;
  /** Of a `stopped` event: the checkpoint written on the way out (or resumed from), if any. */
  readonly checkpoint?: string | null;
  /** Of a `meeting` event: the port at which a team's leader waits for the other trainers. */
  readonly port?: number;
  /** Of a `team` event: this trainer's place in the team (0: the leader), null when it was not needed. */
  readonly rank?: number | null;
  /** Of a `team` event: how many trainers train together. */
  readonly size?: number;
}

/**
 * One line of the trainer's stdout as an event; null for a line that is not one. A loss JSON
 * cannot hold (a diverged run's NaN) comes as a string and is read back as the number.
 */
export function readTrainerEvent(line: string): TrainerEvent | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { event?: unknown }).event !== 'string') return null;
  const event = parsed as Record<string, unknown>;
  for (const field of ['loss', 'final_loss']) if (typeof event[field] === 'string') event[field] = Number(event[field]);
  return event as unknown as TrainerEvent;
}
