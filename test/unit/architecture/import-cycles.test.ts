import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importCycles, importGraph } from './import-graph.ts';

const root = resolve(import.meta.dirname, '../../..');

describe('module layering', () => {
  it('has no import cycle in main/ or renderer/src/ (type-only and dynamic imports included)', () => {
    const graph = importGraph(root, ['main', 'renderer/src']);
    // the reader sees the code: a graph this small would mean the patterns stopped matching
    expect(graph.size).toBeGreaterThan(150);
    expect([...graph.values()].reduce((n, targets) => n + targets.length, 0)).toBeGreaterThan(500);
    expect(importCycles(graph, root)).toEqual([]);
  });

  it('finds a cycle when there is one (the checker itself)', () => {
    const graph = new Map([
      ['/a.ts', ['/b.ts']],
      ['/b.ts', ['/c.ts']],
      ['/c.ts', ['/a.ts']],
      ['/d.ts', ['/a.ts']],
      ['/e.ts', ['/e.ts']],
    ]);
    expect(importCycles(graph, '/').map((c) => c.join(' '))).toEqual(expect.arrayContaining(['a.ts b.ts c.ts', 'e.ts']));
    expect(importCycles(graph, '/')).toHaveLength(2);
  });
});
