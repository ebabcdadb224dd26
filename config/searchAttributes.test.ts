import { describe, expect, it } from 'vitest';

import { classesAttribute } from './searchAttributes.js';

describe('the classes search attribute', () => {
  it('holds the classes sorted and once each', () => {
    expect(classesAttribute(['square', 'circle', 'square'])).toEqual(['circle', 'square']);
  });

  it('stays under the server’s size limit whatever the number of classes', () => {
    const classes = Array.from({ length: 1000 }, (_, i) => `class-number-${String(i).padStart(4, '0')}`);
    const kept = classesAttribute(classes);
    expect(new TextEncoder().encode(JSON.stringify(kept)).length).toBeLessThanOrEqual(1000);
    expect(kept.length).toBeGreaterThan(10);
    expect(kept).toEqual(classes.slice(0, kept.length));
  });
});
