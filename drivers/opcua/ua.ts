// The one place that imports node-opcua for the driver and the browser. It is
// loaded only through the driver registry (or `edgegate browse`), never by the
// core: node-opcua costs ~60 MB the moment it is loaded.
//
// The driver needs the client half only: node-opcua-client and its certificate
// manager are the packages node-opcua itself is built from (pinned exactly by
// node-opcua 2.182.0, so the lock file fixes them), and leaving the server,
// address space and nodesets unloaded saves ~10 MB of RSS per gateway.
//
// node-opcua writes its own warnings and errors with console.log, which would
// interleave with the gateway's pino JSON on stdout. Its loggers are global to
// the process, so they are routed once, here, to whichever logger the latest
// driver or command handed to routeOpcuaLogs().
import { format } from 'node:util';
import { setDebugLogger, setErrorLogger, setWarningLogger } from 'node-opcua-client';
import type { Logger } from '../../gateway/types.js';
import { installFastDateTime } from './datetime.js';

export * from 'node-opcua-client';
export { OPCUACertificateManager } from 'node-opcua-certificate-manager';
export { InMemoryCertificateKeyPairProvider } from 'node-opcua-common';

// every OPC UA timestamp decoded from here on is made without 64-bit Longs (see datetime.ts)
installFastDateTime();

let sink: Logger | undefined;
const ANSI = /\u001b\[[0-9;]*m/g;

function text(args: unknown[]): string {
  return format(...args).replace(ANSI, '').replace(/\s+/g, ' ').trim();
}

// the first argument is node-opcua's call-site context ({ filename, callerline })
type Context = { filename?: string };
const where = (ctx: unknown) => (ctx as Context | undefined)?.filename ?? '?';

// its warnings are chatty (every reconnection attempt, every certificate it
// creates): the driver logs what matters itself, so they go to debug
setWarningLogger((ctx: unknown, ...args: unknown[]) => sink?.debug({ component: 'node-opcua', at: where(ctx) }, text(args)));
setErrorLogger((ctx: unknown, ...args: unknown[]) => sink?.warn({ component: 'node-opcua', at: where(ctx) }, text(args)));
setDebugLogger((ctx: unknown, ...args: unknown[]) => sink?.trace({ component: 'node-opcua', at: where(ctx) }, text(args)));

/** where node-opcua's own log lines go from now on (process-wide) */
export function routeOpcuaLogs(log: Logger): void {
  sink = log;
}
