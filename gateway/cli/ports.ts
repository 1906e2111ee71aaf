// `edgegate ports`: serial ports with their stable /dev/serial/by-id names.
import { listPorts } from '../../drivers/serial/ports.js';
import { EXIT, parseArgs } from './args.js';

export async function portsCommand(argv: string[]): Promise<number> {
  const { options } = parseArgs(argv, [], ['json']);
  const ports = await listPorts();
  if (options.has('json')) {
    process.stdout.write(`${JSON.stringify(ports, null, 2)}\n`);
    return EXIT.ok;
  }
  if (ports.length === 0) {
    process.stdout.write('no serial ports found\n');
    return EXIT.ok;
  }
  const rows = ports.map((p) => [
    p.path, p.by_id ?? '-', p.manufacturer ?? '-',
    p.vendor_id || p.product_id ? `${p.vendor_id ?? '?'}:${p.product_id ?? '?'}` : '-', p.serial_number ?? '-',
  ]);
  const head = ['PATH', 'BY-ID', 'MANUFACTURER', 'VID:PID', 'SERIAL'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
  process.stdout.write('\nUse the /dev/serial/by-id path in device maps: it survives USB re-enumeration.\n');
  return EXIT.ok;
}
