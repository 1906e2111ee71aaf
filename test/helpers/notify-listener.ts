// The systemd side of sd_notify for tests: a unix datagram socket bound by a
// small Python script (an independent implementation of the receiving end),
// which prints each datagram as one JSON line. It exits when its stdin closes,
// so it never outlives the test process, however that ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { IN_CI, which } from './peers.js';

const SCRIPT = `
import json, os, select, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
addr = sys.argv[1]
s.bind("\\0" + addr[1:] if addr.startswith("@") else addr)
print(json.dumps({"listening": True}), flush=True)
while True:
    ready, _, _ = select.select([s, sys.stdin], [], [])
    if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
        break
    if s in ready:
        data = s.recv(65536)
        print(json.dumps({"message": data.decode("utf-8", "replace")}), flush=True)
`;

export interface NotifyMessage {
  /** the datagram as received */
  text: string;
  fields: Record<string, string>;
  at: number;
}

export interface NotifyListener {
  path: string;
  messages: NotifyMessage[];
  /** the messages that carry a field, e.g. "WATCHDOG" */
  with(field: string): NotifyMessage[];
  close(): Promise<void>;
}

/** /usr/bin/python3 (Debian's) or whatever python3 is on PATH */
export function python3(): string | undefined {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : which('python3');
}

/** true when python3 is there; missing under CI: throws; elsewhere: warns loudly, false */
export function requirePython(why: string): boolean {
  if (python3()) return true;
  const msg = `python3 not found: ${why}. Install it (apt-get install python3).`;
  if (IN_CI) throw new Error(`required peer missing under CI: ${msg}`);
  console.warn(`\n!!! SKIPPING: ${msg}\n`);
  return false;
}

/** listens on dir/notify.sock, or on an abstract address given as "@name" */
export async function notifyListener(dir: string, name = 'notify.sock'): Promise<NotifyListener> {
  const path = name.startsWith('@') ? name : join(dir, name);
  const child: ChildProcess = spawn(python3() ?? 'python3', ['-c', SCRIPT, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  const messages: NotifyMessage[] = [];
  let buffered = '';
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('notify listener did not start within 5 s')), 5000);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`notify listener exited (${code})`)); });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl)) as { listening?: boolean; message?: string };
        buffered = buffered.slice(nl + 1);
        if (line.listening) { clearTimeout(timer); resolve(); }
        if (line.message !== undefined) messages.push({ text: line.message, fields: parseFields(line.message), at: Date.now() });
      }
    });
  });
  try {
    await listening;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    path,
    messages,
    with: (field) => messages.filter((m) => field in m.fields),
    close: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.stdin!.end();
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    }),
  };
}

function parseFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}
