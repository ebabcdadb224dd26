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
}
