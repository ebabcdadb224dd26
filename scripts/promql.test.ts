/** The PromQL reader and evaluator against hand-computed series (figures worked out in the comments). */
import { describe, expect, it } from 'vitest';

import { bucketQuantile, evaluate, parse, parseExposition, rate, selectors, SeriesStore, supportedForm, windowSeconds, type Labels } from './promql.js';

const T0 = 1_700_000_000_000;
const at = (seconds: number) => T0 + seconds * 1000;

/** A store holding `values[i]` at `i * step` seconds for each series. */
function storeOf(series: readonly { readonly labels: Labels; readonly values: readonly number[] }[], step = 10): SeriesStore {
  const store = new SeriesStore();
  for (const { labels, values } of series) values.forEach((v, i) => store.add(labels, { t: at(i * step), v }));
  return store;
}

const run = (expr: string, store: SeriesStore, seconds: number, variables: Record<string, number> = {}) =>
  evaluate(parse(expr), { store, time: at(seconds), variables }).map((p) => ({ labels: p.labels, value: p.value }));

describe('parse', () => {
  it('reads aggregations, matchers, windows and operator precedence', () => {
    const expr = parse('sum by (activity) (rate(a_total{type!~"Retryable|Cancelled", x="1"}[15m])) / sum by (activity) (rate(b_total[15m])) > 0.2');
    expect(expr.kind).toBe('binary');
    if (expr.kind !== 'binary') return;
    expect(expr.op).toBe('>');
    expect(expr.lhs).toMatchObject({ kind: 'binary', op: '/', lhs: { kind: 'aggregate', op: 'sum', grouping: { mode: 'by', labels: ['activity'] } } });
    expect(selectors(expr).map((s) => [s.selector.name, s.selector.range, s.selector.matchers.length, s.groupedBy])).toEqual([
      ['a_total', '15m', 2, ['activity']],
      ['b_total', '15m', 0, ['activity']],
    ]);
    // `and` binds tighter than `or`; the grouping may follow the arguments.
    expect(parse('a or b and c')).toMatchObject({ op: 'or', rhs: { op: 'and' } });
    expect(parse('max(x) by (line)')).toMatchObject({ kind: 'aggregate', op: 'max', grouping: { labels: ['line'] } });
    expect(parse('x[$__rate_interval]')).toMatchObject({ range: '$__rate_interval', offset: null });
    expect(parse('x{a="b"} unless x{a="b"} offset 15m')).toMatchObject({ op: 'unless', rhs: { name: 'x', range: null, offset: '15m' } });
  });

  it('refuses what it does not read', () => {
    expect(() => parse('x @ 1700000000')).toThrow(/@/);
    expect(() => parse('x offset y')).toThrow(/duration after offset/);
    expect(() => parse('a / on (job) b')).toThrow(/on/);
    expect(() => parse('sum(x')).toThrow(/end of expression/);
    expect(() => parse('x{job=1}')).toThrow(/quoted value/);
  });

  it('reads windows as seconds', () => {
    expect(windowSeconds('1h30m', {})).toBe(5400);
    expect(windowSeconds('$__rate_interval', { __rate_interval: 20 })).toBe(20);
    expect(() => windowSeconds('5q', {})).toThrow(/duration/);
  });
});

describe('supportedForm', () => {
  it.each([
    'up',
    'selfreward_trainer_loss{role="gpu"}',
    'max by (line) (x)',
    'sum(rate(x_total[5m]))',
    'sum by (type) (rate(x_total[$__rate_interval]))',
    'histogram_quantile(0.95, sum by (le, op) (rate(x_bucket[5m])))',
    'sum by (stage) (rate(x_sum[5m])) / sum by (stage) (rate(x_count[5m]))',
  ])('accepts %s', (expr) => expect(supportedForm(parse(expr))).toBeNull());

  it.each([
    ['rate(x_total[5m])', 'not one of'],
    ['sum(increase(x_total[5m]))', 'rate'],
    ['x offset 5m', 'not one of'],
    ['sum(rate(x_total[5m] offset 1h))', 'rate'],
    ['count(x)', 'count'],
    ['sum without (job) (x)', 'without'],
    ['histogram_quantile(0.5, sum by (op) (rate(x_bucket[5m])))', 'le'],
    ['histogram_quantile(0.5, sum by (le) (rate(x_total[5m])))', '_bucket'],
    ['x > 0.5', 'operator'],
    ['sum(x) / x', 'ratio'],
  ])('refuses %s', (expr, reason) => expect(supportedForm(parse(expr))).toContain(reason));
});

describe('rate', () => {
  it('extrapolates to the window start, but not past the counter zero', () => {
    // Samples 0, 10, 20, 30 at 0, 10, 20, 30 s; a 30 s window at 30 s holds (0, 30]: 10, 20, 30.
    // Increase 20 over 20 s; the start is 10 s away (< 1.1 x 10 s, so extrapolated fully), and the
    // counter's zero is 10 s back too: 20 x (20 + 10) / 20 = 30 over the 30 s window = 1/s.
    const samples = [0, 10, 20, 30].map((v, i) => ({ t: at(i * 10), v }));
    expect(rate(samples, at(30), 30)).toBeCloseTo(1, 12);
    // Starting from 100 the zero is far: the same 1/s.
    expect(
      rate(
        samples.map((s) => ({ t: s.t, v: s.v + 100 })),
        at(30),
        30,
      ),
    ).toBeCloseTo(1, 12);
    // 5, 15, 25 in the window (the sample at 0 s is on its open edge): the counter's zero is 5 s
    // before the first, nearer than the window's start: 20 x (20 + 5) / 20 = 25 over 30 s.
    expect(
      rate(
        [0, 5, 15, 25].map((v, i) => ({ t: at(i * 10), v })),
        at(30),
        30,
      ),
    ).toBeCloseTo(25 / 30, 12);
  });

  it('adds the value before a counter reset and extrapolates a far edge by half an interval', () => {
    // 0, 10, 3, 13 at 0..30 s in a 40 s window at 30 s: increase 13 + 10 = 23 over 30 s; the start
    // is 10 s before the first sample, but the counter's zero is right there: factor 1; 23 / 40.
    const samples = [0, 10, 3, 13].map((v, i) => ({ t: at(i * 10), v }));
    expect(rate(samples, at(30), 40)).toBeCloseTo(23 / 40, 12);
    // 100, 110, 120 at 0, 10, 20 s, an 80 s window at 50 s: both edges are 30 s away (>= 11 s),
    // each extrapolated by 5 s: 20 x (20 + 5 + 5) / 20 = 30 over 80 s.
    expect(
      rate(
        [100, 110, 120].map((v, i) => ({ t: at(i * 10), v })),
        at(50),
        80,
      ),
    ).toBeCloseTo(30 / 80, 12);
  });

  it('needs two samples in the window', () => {
    expect(rate([{ t: at(0), v: 1 }], at(0), 60)).toBeNull();
    expect(
      rate(
        [0, 1].map((v, i) => ({ t: at(i * 10), v })),
        at(100),
        60,
      ),
    ).toBeNull();
  });
});

describe('bucketQuantile', () => {
  it('interpolates inside the bucket holding the rank', () => {
    // 2 below 1, 4 in (1, 2], 2 above: rank 4 of 8 lies 2 of 4 into (1, 2]: 1.5.
    const buckets = [
      { le: 1, count: 2 },
      { le: 2, count: 6 },
      { le: Infinity, count: 8 },
    ];
    expect(bucketQuantile(0.5, buckets)).toBeCloseTo(1.5, 12);
    // Rank 1 of 8 in the first bucket, from 0: 0.5.
    expect(bucketQuantile(0.125, buckets)).toBeCloseTo(0.5, 12);
    // The +Inf bucket answers the highest finite bound.
    expect(bucketQuantile(0.99, buckets)).toBe(2);
    expect(
      bucketQuantile(
        0.5,
        buckets.map((b) => ({ ...b, count: 0 })),
      ),
    ).toBeNaN();
  });
});

describe('evaluate', () => {
  const store = storeOf([
    { labels: { __name__: 'imgs_total', class: 'circle', instance: 'a' }, values: [0, 10, 20, 30] },
    { labels: { __name__: 'imgs_total', class: 'square', instance: 'b' }, values: [0, 20, 40, 60] },
    { labels: { __name__: 'loss', instance: 'a' }, values: [0.5, 0.4, 0.3, 0.2] },
    { labels: { __name__: 'loss', instance: 'b' }, values: [0.9] },
    { labels: { __name__: 't_sum', stage: 'sample' }, values: [0, 2, 4, 6] },
    { labels: { __name__: 't_count', stage: 'sample' }, values: [0, 4, 8, 12] },
    { labels: { __name__: 't_bucket', stage: 'sample', le: '1' }, values: [0, 1, 2, 3] },
    { labels: { __name__: 't_bucket', stage: 'sample', le: '2' }, values: [0, 3, 6, 9] },
    { labels: { __name__: 't_bucket', stage: 'sample', le: '+Inf' }, values: [0, 4, 8, 12] },
  ]);

  it('sums rates, in all or by a label', () => {
    // 1/s and 2/s (see the rate test).
    expect(run('sum(rate(imgs_total[30s]))', store, 30)).toEqual([{ labels: {}, value: expect.closeTo(3, 12) }]);
    expect(run('sum by (class) (rate(imgs_total{instance=~"a|b"}[30s]))', store, 30)).toEqual([
      { labels: { class: 'circle' }, value: expect.closeTo(1, 12) },
      { labels: { class: 'square' }, value: expect.closeTo(2, 12) },
    ]);
    expect(run('sum(rate(imgs_total{class!="circle"}[$__rate_interval]))', store, 30, { __rate_interval: 30 })).toEqual([
      { labels: {}, value: expect.closeTo(2, 12) },
    ]);
  });

  it('reads the latest sample of a gauge within five minutes', () => {
    expect(run('loss', store, 25)).toEqual([
      { labels: { __name__: 'loss', instance: 'a' }, value: 0.3 },
      { labels: { __name__: 'loss', instance: 'b' }, value: 0.9 },
    ]);
    // b's only sample (at 0 s) is more than 5 minutes old at 301 s; a's last (30 s) is not.
    expect(run('max by (instance) (loss)', store, 301)).toEqual([{ labels: { instance: 'a' }, value: 0.2 }]);
    expect(run('loss{instance="a"}', store, -1)).toEqual([]);
  });

  it('divides sums matched on their labels', () => {
    // 2 s of model time per 4 images in every interval: 0.5 s per image.
    expect(run('sum by (stage) (rate(t_sum[30s])) / sum by (stage) (rate(t_count[30s]))', store, 30)).toEqual([
      { labels: { stage: 'sample' }, value: expect.closeTo(0.5, 12) },
    ]);
    expect(run('sum by (stage) (rate(t_sum[30s])) / sum(rate(t_count[30s]))', store, 30)).toEqual([]);
  });

  it('takes quantiles of bucket rates', () => {
    // Per 10 s: 1 below 1 s, 2 in (1, 2], 1 above. Rank 2 of 4 lies 1 of 2 into (1, 2]: 1.5.
    expect(run('histogram_quantile(0.5, sum by (le, stage) (rate(t_bucket[30s])))', store, 30)).toEqual([
      { labels: { stage: 'sample' }, value: expect.closeTo(1.5, 12) },
    ]);
  });

  it('refuses the other forms', () => {
    expect(() => run('loss > 0.5', store, 30)).toThrow(/operator/);
  });
});

describe('parseExposition', () => {
  it('reads names, escaped labels and special values, skipping comments', () => {
    const text = [
      '# HELP x_total a counter',
      '# TYPE x_total counter',
      'x_total{a="1",b="say \\"hi\\"\\nthere",c="back\\\\slash"} 3',
      'loss NaN',
      'h_bucket{le="+Inf",} +Inf 1700000000000',
      '',
    ].join('\n');
    expect(parseExposition(text)).toEqual([
      { name: 'x_total', labels: { a: '1', b: 'say "hi"\nthere', c: 'back\\slash' }, value: 3 },
      { name: 'loss', labels: {}, value: NaN },
      { name: 'h_bucket', labels: { le: '+Inf' }, value: Infinity },
    ]);
    expect(() => parseExposition('x{a=1} 2')).toThrow(/bad labels/);
  });
});
