/**
 * A small PromQL reader and evaluator, so that the dashboard's queries can be drawn from scrapes
 * taken during a real round (`dashboard-snapshot.ts`) without a Prometheus server, and so that a
 * test can read which metrics and labels the dashboard and the alert rules use.
 *
 * `parse` reads the PromQL the deployment's files use: selectors with label matchers, range
 * windows and offsets, function calls, aggregations (`sum`, `min`, `max`, `avg`, `count`) with
 * `by` or `without`, and binary operators (arithmetic, comparisons, `and`, `or`, `unless`) with
 * their precedence. Subqueries, `@`, `bool`, `on`/`ignoring` and `group_left` are refused.
 *
 * `evaluate` computes only the forms the dashboard's panels are restricted to (`supportedForm`
 * says why an expression is not one of them):
 *
 *   metric{...}                                         the latest sample within 5 minutes
 *   AGG [by (labels)] (metric{...})                     AGG one of sum, min, max, avg
 *   AGG [by (labels)] (rate(metric{...}[window]))
 *   histogram_quantile(q, sum by (le, labels) (rate(metric_bucket{...}[window])))
 *   A / B                                               A and B aggregations as above, matched on
 *                                                       their identical label sets
 *
 * `rate` follows Prometheus: the increase between the first and last samples in the window,
 * counter resets corrected, extrapolated to the window's edges where the samples come within 1.1
 * mean intervals of them (else by half a mean interval) but never back past the counter's zero,
 * divided by the window. `histogram_quantile`
 * interpolates linearly inside the bucket that holds the rank, as Prometheus does. A window may
 * be Grafana's `$__rate_interval`, whose value the caller gives.
 */

export type Labels = Readonly<Record<string, string>>;

export interface Matcher {
  readonly label: string;
  readonly op: '=' | '!=' | '=~' | '!~';
  readonly value: string;
}

export type Expr =
  | { readonly kind: 'number'; readonly value: number }
  | {
      readonly kind: 'selector';
      readonly name: string;
      readonly matchers: readonly Matcher[];
      readonly range: string | null;
      readonly offset: string | null;
    }
  | { readonly kind: 'call'; readonly fn: string; readonly args: readonly Expr[] }
  | {
      readonly kind: 'aggregate';
      readonly op: string;
      readonly grouping: { readonly mode: 'by' | 'without'; readonly labels: readonly string[] } | null;
      readonly expr: Expr;
    }
  | { readonly kind: 'binary'; readonly op: string; readonly lhs: Expr; readonly rhs: Expr };

export class PromqlError extends Error {
  override name = 'PromqlError';
}

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'count']);
const PRECEDENCE = new Map<string, number>([
  ['or', 1],
  ['and', 2],
  ['unless', 2],
  ['==', 3],
  ['!=', 3],
  ['>', 3],
  ['<', 3],
  ['>=', 3],
  ['<=', 3],
  ['+', 4],
  ['-', 4],
  ['*', 5],
  ['/', 5],
  ['%', 5],
  ['^', 6],
]);
const REFUSED = new Set(['bool', 'on', 'ignoring', 'group_left', 'group_right', '@']);

type Token =
  | { readonly type: 'name'; readonly text: string }
  | { readonly type: 'number'; readonly value: number }
  | { readonly type: 'string'; readonly text: string }
  | { readonly type: 'range'; readonly text: string }
  | { readonly type: 'op'; readonly text: string };

function tokens(source: string): Token[] {
  const found: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const rest = source.slice(i);
    const space = /^\s+/.exec(rest);
    if (space) {
      i += space[0].length;
      continue;
    }
    const range = /^\[([^\]]*)\]/.exec(rest);
    if (range) {
      found.push({ type: 'range', text: range[1]!.trim() });
      i += range[0].length;
      continue;
    }
    // Outside a window: an offset's.
    const duration = /^\d+(?:ms|s|m|h|d|w|y)\b/.exec(rest);
    if (duration) {
      found.push({ type: 'range', text: duration[0] });
      i += duration[0].length;
      continue;
    }
    const number = /^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?(?![\w:])/i.exec(rest);
    if (number) {
      found.push({ type: 'number', value: Number(number[0]) });
      i += number[0].length;
      continue;
    }
    const name = /^[a-zA-Z_:][\w:]*/.exec(rest);
    if (name) {
      found.push({ type: 'name', text: name[0] });
      i += name[0].length;
      continue;
    }
    if (rest[0] === '"' || rest[0] === "'") {
      const quote = rest[0];
      let text = '';
      let j = 1;
      for (; j < rest.length && rest[j] !== quote; j++) {
        if (rest[j] === '\\') {
          j++;
          const escaped = rest[j];
          text += escaped === 'n' ? '\n' : escaped === 't' ? '\t' : (escaped ?? '');
        } else text += rest[j];
      }
      if (j >= rest.length) throw new PromqlError(`unterminated string at ${i}`);
      found.push({ type: 'string', text });
      i += j + 1;
      continue;
    }
    const op = /^(==|!=|=~|!~|>=|<=|[(){},=<>+\-*/%^@])/.exec(rest);
    if (!op) throw new PromqlError(`unexpected "${rest[0]}" at ${i}`);
    found.push({ type: 'op', text: op[0] });
    i += op[0].length;
  }
  return found;
}

class Parser {
  private at = 0;

  constructor(private readonly input: readonly Token[]) {}

  private peek(): Token | undefined {
    return this.input[this.at];
  }

  private next(): Token {
    const token = this.input[this.at++];
    if (token === undefined) throw new PromqlError('unexpected end of expression');
    return token;
  }

  private isOp(text: string): boolean {
    const token = this.peek();
    return token?.type === 'op' && token.text === text;
  }

  private expectOp(text: string): void {
    const token = this.next();
    if (token.type !== 'op' || token.text !== text) throw new PromqlError(`expected "${text}", got ${describe(token)}`);
  }

  parseAll(): Expr {
    const expr = this.expression(1);
    const left = this.peek();
    if (left !== undefined) throw new PromqlError(`unexpected ${describe(left)} after the expression`);
    return expr;
  }

  /** Precedence climbing; `^` is right-associative, every other operator left-associative. */
  private expression(minimum: number): Expr {
    let lhs = this.unary();
    for (;;) {
      const token = this.peek();
      const op = token?.type === 'op' || token?.type === 'name' ? token.text : undefined;
      const precedence = op === undefined ? undefined : PRECEDENCE.get(op);
      if (op === undefined || precedence === undefined || precedence < minimum) return lhs;
      this.next();
      const modifier = this.peek();
      if (modifier?.type === 'name' && REFUSED.has(modifier.text)) throw new PromqlError(`"${modifier.text}" is not supported`);
      const rhs = this.expression(op === '^' ? precedence : precedence + 1);
      lhs = { kind: 'binary', op, lhs, rhs };
    }
  }

  private unary(): Expr {
    if (this.isOp('-') || this.isOp('+')) {
      const sign = this.next();
      const operand = this.next();
      if (operand.type !== 'number') throw new PromqlError('a sign is supported only before a number');
      return { kind: 'number', value: sign.type === 'op' && sign.text === '-' ? -operand.value : operand.value };
    }
    return this.primary();
  }

  private primary(): Expr {
    const token = this.next();
    if (token.type === 'number') return { kind: 'number', value: token.value };
    if (token.type === 'op' && token.text === '(') {
      const inner = this.expression(1);
      this.expectOp(')');
      return inner;
    }
    if (token.type !== 'name') throw new PromqlError(`unexpected ${describe(token)}`);
    if (REFUSED.has(token.text)) throw new PromqlError(`"${token.text}" is not supported`);
    if (token.text === 'NaN' || token.text === 'Inf') return { kind: 'number', value: token.text === 'NaN' ? NaN : Infinity };
    if (AGGREGATIONS.has(token.text) && (this.isOp('(') || this.peekName('by') || this.peekName('without'))) return this.aggregate(token.text);
    if (this.isOp('(')) return { kind: 'call', fn: token.text, args: this.arguments() };
    return this.selector(token.text);
  }

  private peekName(text: string): boolean {
    const token = this.peek();
    return token?.type === 'name' && token.text === text;
  }

  private arguments(): Expr[] {
    this.expectOp('(');
    const args: Expr[] = [];
    if (this.isOp(')')) {
      this.next();
      return args;
    }
    for (;;) {
      args.push(this.expression(1));
      if (this.isOp(',')) this.next();
      else break;
    }
    this.expectOp(')');
    return args;
  }

  private grouping(): { mode: 'by' | 'without'; labels: string[] } | null {
    const mode = this.peekName('by') ? 'by' : this.peekName('without') ? 'without' : null;
    if (mode === null) return null;
    this.next();
    this.expectOp('(');
    const labels: string[] = [];
    while (!this.isOp(')')) {
      const label = this.next();
      if (label.type !== 'name') throw new PromqlError(`expected a label name, got ${describe(label)}`);
      labels.push(label.text);
      if (this.isOp(',')) this.next();
    }
    this.next();
    return { mode, labels };
  }

  private aggregate(op: string): Expr {
    const before = this.grouping();
    const args = this.arguments();
    const after = this.grouping();
    if (before !== null && after !== null) throw new PromqlError(`${op}: grouping given twice`);
    if (args.length !== 1) throw new PromqlError(`${op}: expected one argument, got ${args.length}`);
    return { kind: 'aggregate', op, grouping: before ?? after, expr: args[0]! };
  }

  private selector(name: string): Expr {
    const matchers: Matcher[] = [];
    if (this.isOp('{')) {
      this.next();
      while (!this.isOp('}')) {
        const label = this.next();
        if (label.type !== 'name') throw new PromqlError(`expected a label name in ${name}{...}, got ${describe(label)}`);
        const op = this.next();
        if (op.type !== 'op' || !['=', '!=', '=~', '!~'].includes(op.text)) throw new PromqlError(`expected a matcher after ${label.text}`);
        const value = this.next();
        if (value.type !== 'string') throw new PromqlError(`expected a quoted value for ${label.text}`);
        matchers.push({ label: label.text, op: op.text as Matcher['op'], value: value.text });
        if (this.isOp(',')) this.next();
      }
      this.next();
    }
    let range: string | null = null;
    const token = this.peek();
    if (token?.type === 'range') {
      this.next();
      range = token.text;
    }
    let offset: string | null = null;
    if (this.peekName('offset')) {
      this.next();
      const duration = this.next();
      if (duration.type !== 'range') throw new PromqlError(`${name}: expected a duration after offset`);
      offset = duration.text;
    }
    if (this.isOp('@')) throw new PromqlError(`${name}: "@" is not supported`);
    return { kind: 'selector', name, matchers, range, offset };
  }
}

function describe(token: Token): string {
  if (token.type === 'number') return String(token.value);
  return `"${token.text}"`;
}

export function parse(source: string): Expr {
  return new Parser(tokens(source)).parseAll();
}

/** Every selector in an expression, with the labels each enclosing aggregation groups by. */
export function selectors(
  expr: Expr,
  grouped: readonly string[] = [],
): { readonly selector: Extract<Expr, { kind: 'selector' }>; readonly groupedBy: readonly string[] }[] {
  switch (expr.kind) {
    case 'number':
      return [];
    case 'selector':
      return [{ selector: expr, groupedBy: grouped }];
    case 'call':
      return expr.args.flatMap((arg) => selectors(arg, grouped));
    case 'aggregate':
      return selectors(expr.expr, [...grouped, ...(expr.grouping?.labels ?? [])]);
    case 'binary':
      return [...selectors(expr.lhs, grouped), ...selectors(expr.rhs, grouped)];
  }
}

const UNITS: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400, w: 604_800, y: 31_536_000 };

/** A window in seconds: a duration such as `5m` or `1h30m`, or a variable of `variables` (`$__rate_interval`). */
export function windowSeconds(text: string, variables: Readonly<Record<string, number>>): number {
  if (text.startsWith('$')) {
    const value = variables[text.slice(1)];
    if (value === undefined) throw new PromqlError(`no value for ${text}`);
    return value;
  }
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new PromqlError(`not a duration: ${text}`);
  return parts.reduce((total, p) => total + Number(p[1]) * UNITS[p[2]!]!, 0);
}

type Selector = Extract<Expr, { kind: 'selector' }>;
type Aggregate = Extract<Expr, { kind: 'aggregate' }>;

const EVALUATED_AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg']);

function instantSelector(expr: Expr): expr is Selector {
  return expr.kind === 'selector' && expr.range === null && expr.offset === null;
}

function rateOfRange(expr: Expr): boolean {
  const [selector] = expr.kind === 'call' && expr.fn === 'rate' && expr.args.length === 1 ? expr.args : [];
  return selector?.kind === 'selector' && selector.range !== null && selector.offset === null;
}

function aggregationReason(expr: Expr): string | null {
  if (expr.kind !== 'aggregate') return 'expected an aggregation';
  if (!EVALUATED_AGGREGATIONS.has(expr.op)) return `the aggregation ${expr.op} is not evaluated`;
  if (expr.grouping?.mode === 'without') return '`without` is not evaluated';
  if (!instantSelector(expr.expr) && !rateOfRange(expr.expr)) return `${expr.op}(...) must hold a selector or rate(selector[window])`;
  return null;
}

/** Null when `evaluate` computes this expression, else why not. */
export function supportedForm(expr: Expr): string | null {
  if (instantSelector(expr)) return null;
  if (expr.kind === 'aggregate') return aggregationReason(expr);
  if (expr.kind === 'call' && expr.fn === 'histogram_quantile') {
    const [q, inner] = expr.args;
    if (expr.args.length !== 2 || q?.kind !== 'number') return 'histogram_quantile takes a number and an aggregation';
    if (inner?.kind !== 'aggregate' || inner.op !== 'sum' || inner.grouping?.mode !== 'by' || !inner.grouping.labels.includes('le')) {
      return 'histogram_quantile must hold sum by (le, ...) (rate(metric_bucket[window]))';
    }
    if (!rateOfRange(inner.expr)) return 'histogram_quantile must hold sum by (le, ...) (rate(metric_bucket[window]))';
    const bucket = (inner.expr as Extract<Expr, { kind: 'call' }>).args[0] as Selector;
    return bucket.name.endsWith('_bucket') ? null : `${bucket.name} is not a histogram's _bucket series`;
  }
  if (expr.kind === 'binary') {
    if (expr.op !== '/') return `the operator ${expr.op} is not evaluated`;
    const reason = aggregationReason(expr.lhs) ?? aggregationReason(expr.rhs);
    return reason === null ? null : `a ratio's sides: ${reason}`;
  }
  return 'not one of the evaluated forms';
}

export interface Sample {
  /** Milliseconds since the epoch. */
  readonly t: number;
  readonly v: number;
}

export interface Series {
  /** With `__name__`. */
  readonly labels: Labels;
  readonly samples: Sample[];
}

/** Series in time order, as scrapes add them. */
export class SeriesStore {
  private readonly series = new Map<string, Series>();

  add(labels: Labels, sample: Sample): void {
    const key = labelKey(labels);
    let found = this.series.get(key);
    if (found === undefined) {
      found = { labels, samples: [] };
      this.series.set(key, found);
    }
    found.samples.push(sample);
  }

  select(name: string, matchers: readonly Matcher[]): Series[] {
    return [...this.series.values()].filter((s) => s.labels['__name__'] === name && matchers.every((m) => matches(m, s.labels[m.label] ?? '')));
  }
}

function matches(matcher: Matcher, value: string): boolean {
  switch (matcher.op) {
    case '=':
      return value === matcher.value;
    case '!=':
      return value !== matcher.value;
    case '=~':
      return new RegExp(`^(?:${matcher.value})$`).test(value);
    case '!~':
      return !new RegExp(`^(?:${matcher.value})$`).test(value);
  }
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export interface Point {
  readonly labels: Labels;
  readonly value: number;
}

export interface EvaluationContext {
  readonly store: SeriesStore;
  /** Milliseconds since the epoch. */
  readonly time: number;
  /** Values of `$name` windows, in seconds. */
  readonly variables: Readonly<Record<string, number>>;
}

/** How far back an instant selector looks for a series' latest sample, as Prometheus's default. */
const LOOKBACK_MS = 5 * 60_000;

function withoutName(labels: Labels): Labels {
  const { __name__: _name, ...rest } = labels;
  return rest;
}

function instant(selector: Selector, context: EvaluationContext): Point[] {
  return context.store.select(selector.name, selector.matchers).flatMap((series) => {
    const latest = series.samples.filter((s) => s.t <= context.time).at(-1);
    return latest === undefined || latest.t <= context.time - LOOKBACK_MS ? [] : [{ labels: series.labels, value: latest.v }];
  });
}

/** Prometheus's extrapolated rate of the samples in (time - window, time]. */
export function rate(samples: readonly Sample[], time: number, windowSeconds: number): number | null {
  const start = time - windowSeconds * 1000;
  const inside = samples.filter((s) => s.t > start && s.t <= time);
  if (inside.length < 2) return null;
  const first = inside[0]!;
  const last = inside[inside.length - 1]!;
  let increase = last.v - first.v;
  for (let i = 1; i < inside.length; i++) if (inside[i]!.v < inside[i - 1]!.v) increase += inside[i - 1]!.v;
  const sampled = (last.t - first.t) / 1000;
  const averageInterval = sampled / (inside.length - 1);
  const threshold = averageInterval * 1.1;
  let toStart = (first.t - start) / 1000;
  let toEnd = (time - last.t) / 1000;
  if (toStart >= threshold) toStart = averageInterval / 2;
  if (toEnd >= threshold) toEnd = averageInterval / 2;
  // A counter is never negative: extrapolate back no further than where it would reach zero.
  if (increase > 0 && first.v >= 0) toStart = Math.min(toStart, sampled * (first.v / increase));
  return (increase * ((sampled + toStart + toEnd) / sampled)) / windowSeconds;
}

function rates(selector: Selector, context: EvaluationContext): Point[] {
  const window = windowSeconds(selector.range ?? '', context.variables);
  return context.store.select(selector.name, selector.matchers).flatMap((series) => {
    const value = rate(series.samples, context.time, window);
    return value === null ? [] : [{ labels: withoutName(series.labels), value }];
  });
}

function aggregate(expr: Aggregate, context: EvaluationContext): Point[] {
  const inner = expr.expr.kind === 'call' ? rates(expr.expr.args[0] as Selector, context) : instant(expr.expr as Selector, context);
  const by = expr.grouping?.labels ?? [];
  const groups = new Map<string, { labels: Labels; values: number[] }>();
  for (const point of inner) {
    const labels = Object.fromEntries(by.flatMap((l) => (point.labels[l] === undefined ? [] : [[l, point.labels[l]]])));
    const key = labelKey(labels);
    const group = groups.get(key) ?? { labels, values: [] };
    group.values.push(point.value);
    groups.set(key, group);
  }
  return [...groups.values()].map(({ labels, values }) => {
    const sum = values.reduce((a, b) => a + b, 0);
    const value = expr.op === 'sum' ? sum : expr.op === 'avg' ? sum / values.length : expr.op === 'max' ? Math.max(...values) : Math.min(...values);
    return { labels, value };
  });
}

/** Prometheus's histogram_quantile over one group's cumulative buckets (upper bound, count). */
export function bucketQuantile(q: number, buckets: readonly { readonly le: number; readonly count: number }[]): number {
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  if (sorted.length < 2 || sorted[sorted.length - 1]!.le !== Infinity) return NaN;
  // Counts read at slightly different times can dip; cumulative counts never do.
  const counts = sorted.map((b) => b.count);
  for (let i = 1; i < counts.length; i++) counts[i] = Math.max(counts[i]!, counts[i - 1]!);
  const total = counts[counts.length - 1]!;
  if (total === 0) return NaN;
  const rank = q * total;
  const index = counts.findIndex((c) => c >= rank);
  if (index === sorted.length - 1) return sorted[sorted.length - 2]!.le;
  const upper = sorted[index]!.le;
  if (index === 0 && upper <= 0) return upper;
  const lower = index === 0 ? 0 : sorted[index - 1]!.le;
  const below = index === 0 ? 0 : counts[index - 1]!;
  return lower + (upper - lower) * ((rank - below) / (counts[index]! - below));
}

function quantile(expr: Extract<Expr, { kind: 'call' }>, context: EvaluationContext): Point[] {
  const q = (expr.args[0] as Extract<Expr, { kind: 'number' }>).value;
  const groups = new Map<string, { labels: Labels; buckets: { le: number; count: number }[] }>();
  for (const point of aggregate(expr.args[1] as Aggregate, context)) {
    const { le, ...labels } = point.labels;
    if (le === undefined) continue;
    const key = labelKey(labels);
    const group = groups.get(key) ?? { labels, buckets: [] };
    group.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), count: point.value });
    groups.set(key, group);
  }
  return [...groups.values()].map(({ labels, buckets }) => ({ labels, value: bucketQuantile(q, buckets) }));
}

/** One of the supported forms at one instant; throws for any other expression. */
export function evaluate(expr: Expr, context: EvaluationContext): Point[] {
  const reason = supportedForm(expr);
  if (reason !== null) throw new PromqlError(reason);
  if (expr.kind === 'selector') return instant(expr, context);
  if (expr.kind === 'aggregate') return aggregate(expr, context);
  if (expr.kind === 'call') return quantile(expr, context);
  const binary = expr as Extract<Expr, { kind: 'binary' }>;
  const denominators = new Map(aggregate(binary.rhs as Aggregate, context).map((p) => [labelKey(p.labels), p.value]));
  return aggregate(binary.lhs as Aggregate, context).flatMap((p) => {
    const denominator = denominators.get(labelKey(p.labels));
    return denominator === undefined ? [] : [{ labels: p.labels, value: p.value / denominator }];
  });
}

/** One sample of the Prometheus text format. */
export interface ScrapedSample {
  readonly name: string;
  readonly labels: Labels;
  readonly value: number;
}

function sampleValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return text === 'NaN' ? NaN : Number(text);
}

/** The labels of a sample line from `{`: the labels and the index after `}`. */
function exposedLabels(line: string, open: number): [Labels, number] {
  const labels: Record<string, string> = {};
  let i = open + 1;
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i++;
    if (line[i] === '}') return [labels, i + 1];
    const label = /^([a-zA-Z_]\w*)="/.exec(line.slice(i));
    if (!label) throw new PromqlError(`bad labels in: ${line}`);
    i += label[0].length;
    let value = '';
    for (; line[i] !== '"'; i++) {
      if (i >= line.length) throw new PromqlError(`unterminated label value in: ${line}`);
      if (line[i] === '\\') {
        i++;
        value += line[i] === 'n' ? '\n' : line[i];
      } else value += line[i];
    }
    labels[label[1]!] = value;
    i++;
  }
}

/** The samples of a `/metrics` page (Prometheus text format 0.0.4); comments and timestamps are ignored. */
export function parseExposition(text: string): ScrapedSample[] {
  const samples: ScrapedSample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const name = /^[a-zA-Z_:][\w:]*/.exec(line)?.[0];
    if (name === undefined) throw new PromqlError(`not a sample line: ${line}`);
    const [labels, end] = line[name.length] === '{' ? exposedLabels(line, name.length) : [{}, name.length];
    const value = line.slice(end).trim().split(/\s+/)[0] ?? '';
    samples.push({ name, labels, value: sampleValue(value) });
  }
  return samples;
}
