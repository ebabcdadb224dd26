/**
 * The trainer's phases as spans: `TrainerPhase:load`, `:cache`, `:train`, `:save`, `:export`,
 * each opened by the trainer's `phase` event and ended by the next one or by its exit, under the
 * span that was active when the trainer started (the trainLora activity's). The train phase
 * carries the latest step and loss; checkpoints and a stop are events on the phase they fall in.
 * With tracing off the API's tracer is a no-op, and so is all of this.
 */
import { context, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';

import type { TrainerEvent } from './events.js';

/** A failure message on a span is kept to this many characters. */
const MESSAGE_LIMIT = 500;

/** The attributes that have a value: an event's fields are optional in the protocol. */
function present(attributes: Readonly<Record<string, string | number | null | undefined>>): Attributes {
  return Object.fromEntries(Object.entries(attributes).filter((entry): entry is [string, string | number] => entry[1] !== undefined && entry[1] !== null));
}

export class TrainerSpans {
  private phase: { readonly name: string; readonly span: Span } | null = null;
  /** What the `start` event said: the step it resumes at and the steps in all. */
  private run: Attributes = {};
  private failure: string | null = null;
  private stopped = false;

  constructor(
    private readonly tracer: Tracer = trace.getTracer('selfreward-trainer'),
    private readonly parent: Context = context.active(),
  ) {}

  /** Takes one event off the trainer's stdout. */
  record(event: TrainerEvent): void {
    if (event.event === 'start') this.run = present({ 'trainer.start_step': event.step, 'trainer.total_steps': event.total });
    if (event.event === 'phase' && event.phase !== undefined && event.phase !== this.phase?.name) {
      this.phase?.span.end();
      const attributes = { ...this.run, 'trainer.phase': event.phase };
      this.phase = { name: event.phase, span: this.tracer.startSpan(`TrainerPhase:${event.phase}`, { attributes }, this.parent) };
    }
    const span = this.phase?.span;
    if (event.event === 'step') span?.setAttributes(present({ 'trainer.step': event.step, 'trainer.loss': event.loss }));
    if (event.event === 'checkpoint') span?.addEvent('checkpoint', present({ 'trainer.step': event.step, 'trainer.checkpoint': event.path }));
    if (event.event === 'done') span?.setAttributes(present({ 'trainer.step': event.step, 'trainer.final_loss': event.final_loss }));
    if (event.event === 'error') this.failure = `${event.kind ?? 'failure'}: ${event.message ?? 'no message'}`.slice(0, MESSAGE_LIMIT);
    if (event.event === 'stopped') {
      this.stopped = true;
      span?.addEvent('stopped', present({ 'trainer.step': event.step, 'trainer.checkpoint': event.checkpoint }));
    }
  }

  /** Ends the open phase once the trainer has exited with `code`: an error unless it finished or was stopped. */
  end(code: number | null): void {
    if (this.phase === null) return;
    if (code !== 0 && !this.stopped) this.phase.span.setStatus({ code: SpanStatusCode.ERROR, message: this.failure ?? `trainer exited with ${code}` });
    this.phase.span.end();
    this.phase = null;
  }
}
