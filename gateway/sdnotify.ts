// sd_notify(3): readiness, reload, stop, status and watchdog messages to
// systemd, which listens on the unix datagram socket named by NOTIFY_SOCKET.
//
// Node 20 cannot send such a datagram (node:dgram is UDP only, node:net is
// streams only), so the message goes out through libc's socket() and sendto(),
// called through koffi: an FFI whose prebuilt binaries come as per-platform
// npm packages (linux arm, arm64, x64, ...), so nothing is compiled and no
// install script has to run, on a Pi neither. Sending from this process keeps
// the sender the unit's main PID, so the unit can say NotifyAccess=main. The
// alternatives were worse: the systemd-notify binary needs NotifyAccess=all and
// a fork of this ~100 MB process per watchdog ping (exactly what fails under
// memory pressure); native addons such as unix-dgram need a compiler and an
// install script. Without NOTIFY_SOCKET nothing is loaded and nothing is sent.
import { endianness } from 'node:os';
import { getSystemErrorName } from 'node:util';
import type { Logger } from './types.js';

export interface NotifySocket {
  /** sends one datagram; a full socket queue drops it (EAGAIN), other failures throw */
  send(message: string): void;
  close(): void;
}

// Linux values (the same on x86, arm, arm64, riscv; not on mips, sparc, alpha)
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const EAGAIN = 11;
const SUN_PATH_MAX = 108;

/** struct sockaddr_un for a path, or for an abstract name written "@name" */
export function sockaddrUn(address: string): Buffer {
  const abstract = address.startsWith('@');
  const path = Buffer.from(abstract ? address.slice(1) : address);
  if (path.length === 0 || path.length + (abstract ? 1 : 0) >= SUN_PATH_MAX) throw new Error(`NOTIFY_SOCKET: not a usable socket address: "${address}"`);
  // an abstract name starts with a NUL and has no terminator; a path ends with one
  const addr = Buffer.alloc(2 + (abstract ? 1 : 0) + path.length + (abstract ? 0 : 1));
  if (endianness() === 'LE') addr.writeUInt16LE(AF_UNIX, 0);
  else addr.writeUInt16BE(AF_UNIX, 0);
  path.copy(addr, abstract ? 3 : 2);
  return addr;
}

/** a datagram socket towards address, through libc */
export async function openNotifySocket(address: string): Promise<NotifySocket> {
  const addr = sockaddrUn(address);
  const koffi = (await import('koffi')).default;
  const libc = koffi.load('libc.so.6');
  const socket = libc.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number;
  const sendto = libc.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)') as
    (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number) => number;
  const close = libc.func('int close(int fd)') as (fd: number) => number;
  const fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket(AF_UNIX, SOCK_DGRAM): ${errnoName(koffi.errno())}`);
  let open = true;
  return {
    send(message) {
      if (!open) return;
      const buf = Buffer.from(message);
      if (sendto(fd, buf, buf.length, MSG_NOSIGNAL, addr, addr.length) >= 0) return;
      const errno = koffi.errno();
      if (errno !== EAGAIN) throw new Error(`sendto ${address}: ${errnoName(errno)}`);
    },
    close() {
      if (open) close(fd);
      open = false;
    },
  };
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

export type NotifyOpener = (address: string) => Promise<NotifySocket>;

/**
 * The messages of sd_notify(3). Silent (every method a no-op) when the
 * process was not started by systemd with a notify socket.
 */
export class SdNotify {
  #failed = new Set<string>();

  constructor(
    private readonly socket: NotifySocket | undefined,
    /** WatchdogSec= in ms, when systemd expects WATCHDOG=1 from this process */
    readonly watchdogMs: number | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, and removes them from
   * the environment so that child processes do not speak for this one.
   */
  static async fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env, open: NotifyOpener = openNotifySocket): Promise<SdNotify> {
    const address = env.NOTIFY_SOCKET;
    const usec = Number(env.WATCHDOG_USEC);
    const pid = env.WATCHDOG_PID;
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
    const forUs = pid === undefined || pid === '' || Number(pid) === process.pid;
    const watchdogMs = forUs && Number.isSafeInteger(usec) && usec > 0 ? Math.max(1, Math.floor(usec / 1000)) : undefined;
    if (!address) return new SdNotify(undefined, undefined, log);
    try {
      return new SdNotify(await open(address), watchdogMs, log);
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'sd_notify unavailable: systemd will not hear READY=1 or WATCHDOG=1');
      return new SdNotify(undefined, undefined, log);
    }
  }

  get active(): boolean {
    return this.socket !== undefined;
  }

  ready(status?: string): void {
    this.send({ READY: 1, STATUS: status });
  }

  /** before a reload; READY=1 follows when it is done, whatever the outcome */
  reloading(status = 'reloading the configuration'): void {
    this.send({ RELOADING: 1, MONOTONIC_USEC: process.hrtime.bigint() / 1000n, STATUS: status });
  }

  stopping(status = 'stopping'): void {
    this.send({ STOPPING: 1, STATUS: status });
  }

  watchdog(status?: string): void {
    this.send({ WATCHDOG: 1, STATUS: status });
  }

  status(status: string): void {
    this.send({ STATUS: status });
  }

  close(): void {
    this.socket?.close();
  }

  private send(fields: Record<string, string | number | bigint | undefined>): void {
    if (!this.socket) return;
    let message = '';
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) message += `${key}=${String(value).replace(/\n/g, ' ')}\n`;
    }
    try {
      this.socket.send(message);
    } catch (err) {
      // warned once per kind of failure: a notify socket that went away stays away
      const text = err instanceof Error ? err.message : String(err);
      if (!this.#failed.has(text)) this.log.warn({ err: text }, 'sd_notify message not sent');
      this.#failed.add(text);
    }
  }
}
