// Browsing a server's address space for its Variables, and turning them into
// a device map that `edgegate validate` accepts as it is.
import {
  AttributeIds, BrowseDirection, browseAll, coerceNodeId, DataType, findBasicDataType, NodeClass, NodeClassMask,
  ObjectIds, ReferenceTypeIds, resolveNodeId, type ClientSession, type NodeId, type ReferenceDescription,
} from './ua.js';
import type { ClientSettings } from './client.js';

export interface BrowsedVariable {
  nodeId: string;
  /** browse names from the root, "/"-separated */
  path: string;
  /** the built-in type name (Double, Int16, String, …), or the data type's id when it has none */
  dataType: string;
  builtin: DataType | undefined;
  array: boolean;
  read: boolean;
  write: boolean;
}

export interface BrowseOptions {
  /** default: the Objects folder */
  root?: string;
  depth?: number;
  /** stop after this many variables */
  max?: number;
  /** how the walk goes, at most once per progressEveryMs (default 1 s), and once at the end of the walk */
  onProgress?: (p: BrowseProgress) => void;
  progressEveryMs?: number;
}

export interface BrowseProgress {
  /** 'walk': following references; 'read': reading data types and access of the variables found */
  phase: 'walk' | 'read';
  depth: number;
  nodes: number;
  variables: number;
  /** variables described so far (phase 'read') */
  read: number;
  done: boolean;
}

const LEVEL_BATCH = 200;
const READ_BATCH = 500;
const HAS_PROPERTY = resolveNodeId(ReferenceTypeIds.HasProperty).toString();
// the Server object's diagnostics are of the server, not of the plant
const SERVER_OBJECT = resolveNodeId(ObjectIds.Server).toString();
const ACCESS_READ = 0x01;
const ACCESS_WRITE = 0x02;

export async function browseVariables(session: ClientSession, opts: BrowseOptions = {}): Promise<{ variables: BrowsedVariable[]; truncated: boolean }> {
  const root = opts.root === undefined ? resolveNodeId(ObjectIds.ObjectsFolder) : coerceNodeId(opts.root);
  const depth = opts.depth ?? 10;
  const max = opts.max ?? 50_000;
  const seen = new Set<string>([root.toString()]);
  const found: Array<{ nodeId: NodeId; path: string }> = [];
  let level: Array<{ nodeId: NodeId; path: string }> = [{ nodeId: root, path: '' }];
  let truncated = false;
  let nodes = 0;
  let reached = 0;
  const progress = throttled(opts);
  for (let d = 0; d < depth && level.length > 0 && !truncated; d++) {
    const next: typeof level = [];
    reached = d + 1;
    for (let i = 0; i < level.length && !truncated; i += LEVEL_BATCH) {
      const batch = level.slice(i, i + LEVEL_BATCH);
      const results = await browseAll(session, batch.map((n) => ({
        nodeId: n.nodeId, browseDirection: BrowseDirection.Forward, referenceTypeId: ReferenceTypeIds.HierarchicalReferences,
        includeSubtypes: true, nodeClassMask: NodeClassMask.Object | NodeClassMask.Variable, resultMask: 0x3f,
      })));
      results.forEach((r, k) => {
        const parent = batch[k] as { nodeId: NodeId; path: string };
        for (const ref of r.references ?? []) {
          if (!visit(ref, seen)) continue;
          const child = { nodeId: ref.nodeId as unknown as NodeId, path: parent.path ? `${parent.path}/${ref.browseName.name}` : String(ref.browseName.name) };
          if (ref.nodeClass === NodeClass.Variable) {
            if (found.length >= max) { truncated = true; break; }
            found.push(child);
          }
          next.push(child);
          nodes++;
        }
      });
      progress({ phase: 'walk', depth: d + 1, nodes, variables: found.length, read: 0, done: false });
    }
    level = next;
  }
  progress({ phase: 'walk', depth: reached, nodes, variables: found.length, read: 0, done: true });
  const variables = await describe(session, found, (read) => progress({ phase: 'read', depth: reached, nodes, variables: found.length, read, done: read === found.length }));
  return { variables, truncated };
}

/** the progress callback, called at most once per interval, and always when done */
function throttled(opts: BrowseOptions): (p: BrowseProgress) => void {
  const every = opts.progressEveryMs ?? 1000;
  let last = Date.now();
  return (p) => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!p.done && now - last < every) return;
    last = now;
    opts.onProgress(p);
  };
}

function visit(ref: ReferenceDescription, seen: Set<string>): boolean {
  if (ref.referenceTypeId.toString() === HAS_PROPERTY) return false;
  const id = ref.nodeId.toString();
  if (id === SERVER_OBJECT || seen.has(id)) return false;
  seen.add(id);
  return true;
}

/** data type, array-ness and what this user may do, read in batches */
async function describe(session: ClientSession, nodes: Array<{ nodeId: NodeId; path: string }>, progress: (read: number) => void): Promise<BrowsedVariable[]> {
  const out: BrowsedVariable[] = [];
  const builtins = new Map<string, DataType | undefined>();
  for (let i = 0; i < nodes.length; i += READ_BATCH) {
    const batch = nodes.slice(i, i + READ_BATCH);
    const reads = batch.flatMap((n) => [
      { nodeId: n.nodeId, attributeId: AttributeIds.DataType },
      { nodeId: n.nodeId, attributeId: AttributeIds.ValueRank },
      { nodeId: n.nodeId, attributeId: AttributeIds.UserAccessLevel },
    ]);
    const values = await session.read(reads);
    for (let k = 0; k < batch.length; k++) {
      const [dt, rank, access] = [values[3 * k], values[3 * k + 1], values[3 * k + 2]];
      const typeId = dt?.statusCode.isGood() ? (dt.value.value as NodeId) : undefined;
      const key = typeId?.toString() ?? '';
      if (typeId && !builtins.has(key)) builtins.set(key, await findBasicDataType(session, typeId).catch(() => undefined));
      const builtin = builtins.get(key);
      const level = access?.statusCode.isGood() ? Number(access.value.value) : 0;
      const valueRank = rank?.statusCode.isGood() ? Number(rank.value.value) : -1;
      const node = batch[k] as { nodeId: NodeId; path: string };
      out.push({
        nodeId: node.nodeId.toString(), path: node.path,
        dataType: builtin !== undefined ? (DataType[builtin] ?? String(builtin)) : key || 'unknown',
        builtin, array: valueRank >= 0, read: (level & ACCESS_READ) !== 0, write: (level & ACCESS_WRITE) !== 0,
      });
    }
    progress(out.length);
  }
  return out;
}

/** the gateway's tag type for a built-in type; undefined: a value the gateway cannot carry */
export function tagTypeOf(t: DataType | undefined): 'number' | 'integer' | 'boolean' | 'string' | undefined {
  switch (t) {
    case DataType.Boolean: return 'boolean';
    case DataType.String: return 'string';
    case DataType.SByte: case DataType.Byte: case DataType.Int16: case DataType.UInt16: case DataType.Int32:
    case DataType.UInt32: case DataType.Int64: case DataType.UInt64: case DataType.DateTime: return 'integer';
    case DataType.Float: case DataType.Double: return 'number';
    default: return undefined;
  }
}

/** a tag key from a browse path: a valid MQTT topic level, unique within the map */
function tagKey(path: string, used: Set<string>): string {
  const base = path.replace(/\//g, '.').replace(/[^A-Za-z0-9_.-]/g, '_') || 'tag';
  let key = base;
  for (let n = 2; used.has(key); n++) key = `${base}_${n}`;
  used.add(key);
  return key;
}

const q = (s: string) => JSON.stringify(s);

/** a config with one device holding every variable the gateway can read; the others as comments */
export function deviceMapYaml(variables: BrowsedVariable[], s: Omit<ClientSettings, 'password' | 'auto_accept_server_certificate'> & { id: string; header: string }): string {
  const lines = [`# ${s.header}`, 'devices:', `  - id: ${q(s.id)}`, '    driver: opcua', `    endpoint: ${q(s.endpoint)}`,
    `    security_mode: ${s.security_mode}`, `    security_policy: ${s.security_policy}`];
  if (s.username !== undefined) lines.push(`    username: ${q(s.username)}`, '    # password_file: /etc/edgegate/<this device>.secret');
  // the PKI folder browse used holds the server certificate it trusted: the gateway must use the same.
  // --accept-server-certificate is not carried over: that certificate is in trusted/ now
  if (s.pki_dir !== undefined) lines.push(`    pki_dir: ${q(s.pki_dir)}`);
  const used = new Set<string>();
  const tags: string[] = [];
  const skipped: string[] = [];
  for (const v of variables) {
    const type = tagTypeOf(v.builtin);
    if (!v.read || type === undefined) {
      skipped.push(`      # ${v.path}: ${v.nodeId} (${v.dataType}${v.array ? '[]' : ''}) ${v.read ? 'is a type the gateway does not read' : 'is not readable'}`);
      continue;
    }
    const fields = [`node: ${q(v.nodeId)}`, `type: ${type}`];
    if (v.write && !v.array) fields.push('writable: true');
    tags.push(`      ${q(tagKey(v.path, used))}: { ${fields.join(', ')} }`);
  }
  lines.push(tags.length > 0 ? '    tags:' : '    tags: {}', ...tags, ...skipped);
  return `${lines.join('\n')}\n`;
}
