// Where a heap goes: reads a V8 heap snapshot (node --heapsnapshot-signal or
// v8.writeHeapSnapshot) and prints the self size of its objects by
// constructor, and the retained size (what would be freed with it, from the
// dominator tree) of the objects of the constructors asked for.
//
//   node dist/bench/heap-summary.js FILE [--top N] [--retained NAME,NAME…]
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export interface HeapGroup { name: string; count: number; self: number }
export interface HeapInstance { name: string; count: number; retained: number; largest: number }
export interface HeapSummary { total: number; objects: number; groups: HeapGroup[]; retained: HeapInstance[] }

/** self sizes grouped by constructor (or by kind for strings, arrays, code…), and retained sizes of the named constructors */
export function summarise(file: string, retainedOf: string[] = [], top = 25): HeapSummary {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const meta = snap.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const [fType, fName, fSelf, fEdges] = ['type', 'name', 'self_size', 'edge_count'].map((f) => meta.node_fields.indexOf(f)) as [number, number, number, number];
  const [eType, eTo] = ['type', 'to_node'].map((f) => meta.edge_fields.indexOf(f)) as [number, number];
  const weak = edgeTypes.indexOf('weak');
  const n = snap.snapshot.node_count;
  const nodes = snap.nodes, edges = snap.edges, strings = snap.strings;

  const label = (i: number): string => {
    const type = nodeTypes[nodes[i * nf + fType] as number] as string;
    if (type === 'object' || type === 'native') return strings[nodes[i * nf + fName] as number] as string;
    if (type === 'closure') return '(closure)';
    return `(${type})`;
  };

  // the edges of node i are edges[firstEdge[i] .. firstEdge[i + 1])
  const firstEdge = new Uint32Array(n + 1);
  for (let i = 0, e = 0; i < n; i++) {
    firstEdge[i] = e;
    e += (nodes[i * nf + fEdges] as number) * ef;
  }
  firstEdge[n] = edges.length;

  // post-order by an iterative depth-first walk from the root (node 0), weak edges left out
  const post = new Int32Array(n).fill(-1);
  const order = new Uint32Array(n);
  const visited = new Uint8Array(n);
  const stack = new Uint32Array(n);
  const cursor = new Uint32Array(n);
  let sp = 0, count = 0;
  stack[sp++] = 0;
  visited[0] = 1;
  cursor[0] = firstEdge[0] as number;
  while (sp > 0) {
    const v = stack[sp - 1] as number;
    let pushed = false;
    while ((cursor[v] as number) < (firstEdge[v + 1] as number)) {
      const e = cursor[v] as number;
      cursor[v] = e + ef;
      if (edges[e + eType] === weak) continue;
      const w = (edges[e + eTo] as number) / nf;
      if (visited[w]) continue;
      visited[w] = 1;
      cursor[w] = firstEdge[w] as number;
      stack[sp++] = w;
      pushed = true;
      break;
    }
    if (!pushed) {
      sp--;
      post[v] = count;
      order[count++] = v;
    }
  }

  // predecessors (reachable, strong edges)
  const predCount = new Uint32Array(n + 1);
  for (let v = 0; v < n; v++) {
    if (!visited[v]) continue;
    for (let e = firstEdge[v] as number; e < (firstEdge[v + 1] as number); e += ef) {
      if (edges[e + eType] !== weak) { const w = (edges[e + eTo] as number) / nf; predCount[w] = (predCount[w] as number) + 1; }
    }
  }
  const predStart = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) predStart[i + 1] = (predStart[i] as number) + (predCount[i] as number);
  const preds = new Uint32Array(predStart[n] as number);
  const fill = predStart.slice(0, n);
  for (let v = 0; v < n; v++) {
    if (!visited[v]) continue;
    for (let e = firstEdge[v] as number; e < (firstEdge[v + 1] as number); e += ef) {
      if (edges[e + eType] !== weak) { const w = (edges[e + eTo] as number) / nf; preds[fill[w]!++] = v; }
    }
  }

  // immediate dominators (Cooper, Harvey, Kennedy: "A simple, fast dominance algorithm")
  const idom = new Int32Array(n).fill(-1);
  idom[0] = 0;
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while ((post[a] as number) < (post[b] as number)) a = idom[a] as number;
      while ((post[b] as number) < (post[a] as number)) b = idom[b] as number;
    }
    return a;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let k = count - 2; k >= 0; k--) {
      const v = order[k] as number;
      let d = -1;
      for (let p = predStart[v] as number; p < (predStart[v + 1] as number); p++) {
        const u = preds[p] as number;
        if (idom[u] === -1) continue;
        d = d === -1 ? u : intersect(u, d);
      }
      if (d !== -1 && idom[v] !== d) { idom[v] = d; changed = true; }
    }
  }

  // retained size: own size plus the retained sizes of the nodes it dominates (children before parents in post-order)
  const retained = new Float64Array(n);
  for (let i = 0; i < n; i++) retained[i] = nodes[i * nf + fSelf] as number;
  for (let k = 0; k < count - 1; k++) {
    const v = order[k] as number;
    const d = idom[v] as number;
    retained[d] = (retained[d] as number) + (retained[v] as number);
  }

  const groups = new Map<string, HeapGroup>();
  let total = 0, objects = 0;
  for (let i = 0; i < n; i++) {
    if (!visited[i]) continue;
    const self = nodes[i * nf + fSelf] as number;
    total += self;
    objects++;
    const name = label(i);
    const g = groups.get(name);
    if (g) { g.count++; g.self += self; } else groups.set(name, { name, count: 1, self });
  }
  const wanted = new Map(retainedOf.map((name) => [name, { name, count: 0, retained: 0, largest: 0 }]));
  for (let i = 0; i < n; i++) {
    if (!visited[i]) continue;
    const w = wanted.get(label(i));
    if (!w) continue;
    // an instance dominated by another of the same name is already inside that one's retained size
    let d = idom[i] as number, nested = false;
    while (d !== 0 && d !== -1) {
      if (label(d) === w.name) { nested = true; break; }
      d = idom[d] as number;
    }
    w.count++;
    if (!nested) w.retained += retained[i] as number;
    w.largest = Math.max(w.largest, retained[i] as number);
  }
  return {
    total, objects,
    groups: [...groups.values()].sort((a, b) => b.self - a.self).slice(0, top),
    retained: [...wanted.values()],
  };
}

const mb = (b: number) => (b / 2 ** 20).toFixed(2);

export function formatSummary(s: HeapSummary, perUnit?: { n: number; what: string }): string {
  const per = (b: number) => (perUnit ? `  ${(b / perUnit.n).toFixed(0).padStart(7)} B/${perUnit.what}` : '');
  const lines = [`heap: ${mb(s.total)} MB in ${s.objects.toLocaleString('en-US')} objects`, '', 'self size by constructor:'];
  for (const g of s.groups) lines.push(`  ${g.name.slice(0, 44).padEnd(44)} ${g.count.toString().padStart(9)}  ${mb(g.self).padStart(8)} MB${per(g.self)}`);
  if (s.retained.length > 0) lines.push('', 'retained size (instances not inside another of the same name):');
  for (const r of s.retained) lines.push(`  ${r.name.slice(0, 44).padEnd(44)} ${r.count.toString().padStart(9)}  ${mb(r.retained).padStart(8)} MB${per(r.retained)}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const file = args[0];
  if (!file) {
    console.error('usage: heap-summary.js FILE [--top N] [--retained NAME,NAME…] [--per N]');
    process.exit(2);
  }
  const opt = (name: string) => { const i = args.indexOf(name); return i === -1 ? undefined : args[i + 1]; };
  const s = summarise(file, (opt('--retained') ?? '').split(',').filter(Boolean), Number(opt('--top') ?? 25));
  const perN = Number(opt('--per') ?? 0);
  console.log(formatSummary(s, perN > 0 ? { n: perN, what: 'tag' } : undefined));
}
