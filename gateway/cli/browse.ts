// `edgegate browse opc.tcp://HOST:PORT`: the Variables of an OPC UA server
// (node id, browse path, data type, access), or with --yaml a device map that
// `edgegate validate` accepts as it is. node-opcua is loaded only here.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { device, type OpcuaDeviceConfig } from '../../config/schema.js';
import { createLogger } from '../logger.js';
import type { BrowseProgress } from '../../drivers/opcua/browse.js';
import { EXIT, parseArgs, UsageError } from './args.js';

const USAGE = `usage: edgegate browse opc.tcp://HOST:PORT [--depth N] [--root NODE] [--yaml] [--id DEVICE]
       [--security-mode None|Sign|SignAndEncrypt] [--security-policy None|Basic256Sha256|Aes128_Sha256_RsaOaep|Aes256_Sha256_RsaPss]
       [--username NAME --password-file FILE] [--pki-dir DIR] [--accept-server-certificate]

The password may also come from the environment variable EDGEGATE_OPCUA_PASSWORD.
--pki-dir defaults to the gateway's: $STATE_DIRECTORY/pki, else ./data/pki. With
--security-mode None (the default) and no --pki-dir nothing is written to disk.
--yaml writes pki_dir into the map when --pki-dir is given, so the gateway uses the
server certificate trusted there. Progress goes to stderr.
`;

/** progressEveryMs: how often progress goes to stderr (default 1 s) */
export async function browseCommand(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr, { progressEveryMs }: { progressEveryMs?: number } = {}): Promise<number> {
  const { options, positional } = parseArgs(argv,
    ['depth', 'root', 'id', 'security-mode', 'security-policy', 'username', 'password-file', 'pki-dir'],
    ['yaml', 'accept-server-certificate', 'help'], 1);
  if (options.has('help')) {
    out.write(USAGE);
    return EXIT.ok;
  }
  const [endpoint] = positional;
  if (endpoint === undefined) throw new UsageError('browse needs the server endpoint, opc.tcp://HOST:PORT');
  const text = (name: string) => (typeof options.get(name) === 'string' ? (options.get(name) as string) : undefined);
  const depth = Number(text('depth') ?? 10);
  if (!Number.isInteger(depth) || depth < 1) throw new UsageError('--depth needs a whole number ≥ 1');
  const passwordFile = text('password-file');
  const password = passwordFile !== undefined ? readSecret(passwordFile) : process.env.EDGEGATE_OPCUA_PASSWORD;
  const id = text('id') ?? 'opcua1';
  // the same checks as a device map, so what is browsed here connects the same way under `run`
  const parsed = device.safeParse({
    id, driver: 'opcua', endpoint,
    ...(text('security-mode') ? { security_mode: text('security-mode') } : {}),
    ...(text('security-policy') ? { security_policy: text('security-policy') } : {}),
    ...(text('username') !== undefined ? { username: text('username') } : {}),
    ...(password !== undefined && text('username') !== undefined ? { password } : {}),
    auto_accept_server_certificate: options.has('accept-server-certificate'),
  });
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((i) => `${i.path.join('.') || 'endpoint'}: ${i.message}`).join('; '));
  const config = parsed.data as OpcuaDeviceConfig;
  const pkiDir = text('pki-dir') !== undefined ? resolve(text('pki-dir') as string) : undefined;
  // security None checks no certificate: without --pki-dir the client's own lives in memory only
  const defaultPki = config.security_mode === 'None' ? undefined : resolve(process.env.STATE_DIRECTORY?.split(':')[0] || './data', 'pki');
  const settings = { ...config, pki_dir: pkiDir ?? defaultPki };

  const log = createLogger({ level: 'warn', destination: err, name: 'edgegate-browse' });
  const { routeOpcuaLogs } = await import('../../drivers/opcua/ua.js');
  const { openSession } = await import('../../drivers/opcua/client.js');
  const { errorText } = await import('../../drivers/opcua/errors.js');
  const { browseVariables, deviceMapYaml } = await import('../../drivers/opcua/browse.js');
  routeOpcuaLogs(log);
  let open: Awaited<ReturnType<typeof openSession>>;
  try {
    open = await openSession(settings, log, { clientName: 'edgegate-browse', acceptHint: 'run browse with --accept-server-certificate' });
  } catch (e) {
    err.write(`edgegate browse: cannot connect to ${endpoint}: ${errorText(e)}\n`);
    return EXIT.runtime;
  }
  try {
    const root = text('root');
    const onProgress = (p: BrowseProgress) => err.write(p.phase === 'walk'
      ? `edgegate browse: ${p.done ? 'walked' : 'walking'} ${p.nodes.toLocaleString('en')} nodes to depth ${p.depth}, ${p.variables.toLocaleString('en')} variables${p.done ? '' : '…'}\n`
      : `edgegate browse: read data types and access of ${p.read.toLocaleString('en')} of ${p.variables.toLocaleString('en')} variables\n`);
    const { variables, truncated } = await browseVariables(open.session, { depth, onProgress, ...(root ? { root } : {}), ...(progressEveryMs !== undefined ? { progressEveryMs } : {}) });
    const where = `${root ?? 'Objects'}, depth ${depth}`;
    if (options.has('yaml')) {
      out.write(deviceMapYaml(variables, { ...settings, pki_dir: pkiDir, id, header: `edgegate browse ${endpoint}: ${variables.length} variables under ${where}${truncated ? ' (truncated)' : ''}` }));
    } else {
      const rows = variables.map((v) => [v.nodeId, v.path, `${v.dataType}${v.array ? '[]' : ''}`, `${v.read ? 'r' : '-'}${v.write ? 'w' : '-'}`]);
      const head = ['NODE ID', 'BROWSE PATH', 'DATA TYPE', 'ACCESS'];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [head, ...rows]) out.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
      out.write(`\n${variables.length} variables under ${where}${truncated ? ' (stopped at 50,000)' : ''}. --yaml prints them as a device map.\n`);
    }
    return EXIT.ok;
  } catch (e) {
    err.write(`edgegate browse: ${errorText(e)}\n`);
    return EXIT.runtime;
  } finally {
    await open.close();
  }
}

function readSecret(file: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new UsageError(`cannot read --password-file ${file} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
}
