// The serial ports of this machine: how they are opened, what
// `edgegate ports` lists, and a readable reason when one cannot be opened.
// serialport's list() needs udevadm, which minimal images and containers
// lack, so the stable /dev/serial/by-id links are read as well and merged in.
import { read } from 'node:fs';
import { readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { getSystemErrorMap, promisify } from 'node:util';
// pinned with serialport 13.0.0; the only way to hand it a read that treats EOF as the end
import { unixRead } from '@serialport/bindings-cpp/dist/unix-read.js';
// the binding itself, not the serialport package: that one loads a dozen stream parsers nobody here uses
import { autoDetect } from '@serialport/bindings-cpp';

const readAsync = promisify(read);

/**
 * A read of 0 bytes from a non-blocking tty means it was hung up (USB
 * unplugged, pty master gone), but serialport's unixRead retries it
 * forever: a busy loop that never reports the disconnect. Thrown as an
 * error instead, it closes the port with err.disconnected === true.
 */
async function readEofAsHangup(...args: Parameters<typeof readAsync>): ReturnType<typeof readAsync> {
  const result = await readAsync(...args);
  if (result.bytesRead === 0) throw Object.assign(new Error('the device hung up (end of file)'), { code: 'EOF', disconnect: true });
  return result;
}

type UnixPort = Parameters<typeof unixRead>[0]['binding'];
interface OsPort {
  read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }>;
}
// the platform's binding, seen through the part of it that is used here
const platform = autoDetect() as unknown as { list(): Promise<PortInfo[]>; open(options: object): Promise<OsPort> };
type PortInfo = { path: string; manufacturer?: string; vendorId?: string; productId?: string; serialNumber?: string };

/** the OS binding of serialport, with a hung-up tty reported as a disconnect */
export const osBinding = {
  list: () => platform.list(),
  async open(options: object): Promise<OsPort> {
    const port = await platform.open(options);
    if (process.platform !== 'win32') {
      const unixPort = port as unknown as UnixPort;
      port.read = (buffer, offset, length) => unixRead({ binding: unixPort, buffer, offset, length, fsReadAsync: readEofAsHangup });
    }
    return port;
  },
};

export interface PortListing {
  path: string;
  /** the /dev/serial/by-id link: stable across reboots and replugging, the one to put in a config */
  by_id?: string;
  manufacturer?: string;
  vendor_id?: string;
  product_id?: string;
  serial_number?: string;
}

export interface ListPortsOptions {
  /** where the by-id links live (tests point it elsewhere) */
  byIdDir?: string;
  /** the detailed listing; default the binding's list */
  list?: () => Promise<PortInfo[]>;
}

/** every port found by either source, sorted by path; never throws */
export async function listPorts(options: ListPortsOptions = {}): Promise<PortListing[]> {
  const list = options.list ?? (() => platform.list());
  const [detailed, links] = await Promise.all([
    list().catch(() => []),
    byIdLinks(options.byIdDir ?? '/dev/serial/by-id'),
  ]);
  const ports = new Map<string, PortListing>();
  for (const p of detailed) {
    const entry: PortListing = { path: p.path };
    if (p.manufacturer) entry.manufacturer = p.manufacturer;
    if (p.vendorId) entry.vendor_id = p.vendorId;
    if (p.productId) entry.product_id = p.productId;
    if (p.serialNumber) entry.serial_number = p.serialNumber;
    ports.set(p.path, entry);
  }
  for (const [link, target] of links) {
    const entry = ports.get(target) ?? { path: target };
    entry.by_id ??= link;
    ports.set(target, entry);
  }
  return [...ports.values()].sort((a, b) => a.path.localeCompare(b.path));
}

/** [link, resolved target] for each symlink in dir; none when dir is absent */
async function byIdLinks(dir: string): Promise<Array<[string, string]>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: Array<[string, string]> = [];
  for (const name of names.sort()) {
    const link = join(dir, name);
    try {
      out.push([link, await realpath(link)]);
    } catch {
      // a dangling link: the device went away between readdir and realpath
    }
  }
  return out;
}

const HINTS: Record<string, string> = {
  ENOENT: 'no such port',
  EACCES: 'permission denied; is the user in the dialout group?',
  EAGAIN: 'locked by another program',
  EBUSY: 'in use by another program',
};
// where the OS message differs from the libuv one
const EXTRA_MESSAGES: [string, string][] = [['device or resource busy', 'EBUSY'], ['input/output error', 'EIO']];

/** the serialport binding reports strerror() text only: recover the errno name from it */
export function openError(path: string, err: Error): Error {
  const msg = err.message.toLowerCase();
  let found: [string, string] | undefined;
  const candidates: [string, string][] = [...EXTRA_MESSAGES];
  for (const [name, text] of getSystemErrorMap().values()) candidates.push([text.toLowerCase(), name]);
  // the longest match wins: "no such device" is also part of "no such device or address"
  for (const c of candidates) if (msg.includes(c[0]) && c[0].length > (found?.[0].length ?? 0)) found = c;
  const detail = found === undefined ? err.message : `${found[1]} (${HINTS[found[1]] ?? found[0]})`;
  return new Error(`cannot open ${path}: ${detail}`, { cause: err });
}

/**
 * A port closed by a hangup (err.disconnected): a USB adapter pulled out, a
 * pty whose other end went away. The errno text the binding gives (EBADF, end
 * of file) says nothing useful to whoever reads the status.
 */
export function removedError(path: string, cause: Error): Error {
  return new Error(`${path}: device removed`, { cause });
}

/**
 * The port as a file the supervisor can wait for while it is missing; none
 * behind an injected binding (the demo's mock ports are no files) or on
 * Windows, where COM3 is not a path.
 */
export function portFile(path: string, binding: unknown): string | undefined {
  return binding === undefined && process.platform !== 'win32' ? path : undefined;
}
