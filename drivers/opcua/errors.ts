// node-opcua's connection errors made readable in one line. Its messages put
// the cause on a later line ("…\n Err = (connect ECONNREFUSED …)"), and when a
// server refuses the secure channel the status it sends (an ERR message:
// BadSecurityChecksFailed, BadCertificateUntrusted, …) never reaches the
// error at all: node-opcua drops it and reports the closed socket. The ERR
// chunk is read here instead, so the status can be named.
import { StatusCodes } from './ua.js';

const MAX = 300;
// the ServiceFault's binary encoding id: node-opcua's server sends its refusal as one
const SERVICE_FAULT_ENCODING = 397;

let names: Map<number, string> | undefined;
export function statusName(code: number): string {
  names ??= new Map(Object.values(StatusCodes).filter((s) => typeof s?.value === 'number').map((s) => [s.value as number, s.name as string]));
  return names.get(code) ?? `0x${code.toString(16).padStart(8, '0')}`;
}

/**
 * The status a server's ERR chunk carries, or undefined. Two forms: the
 * TCP error message of the spec (status, reason), which open62541 and most
 * servers send, and node-opcua's ServiceFault after an asymmetric security
 * header. Malformed input gives undefined, never an exception.
 */
export function statusOfErrChunk(chunk: Buffer): number | undefined {
  if (chunk.length < 16 || chunk.toString('latin1', 0, 3) !== 'ERR') return undefined;
  const code = chunk.readUInt32LE(8);
  const reasonLength = chunk.readInt32LE(12);
  if (code >= 0x80000000 && 16 + Math.max(reasonLength, 0) === chunk.length) return code;
  try {
    let o = 12;
    // security policy URI, sender certificate, receiver thumbprint: each length-prefixed (-1: null)
    for (let i = 0; i < 3; i++) o += 4 + Math.max(chunk.readInt32LE(o), 0);
    o += 8; // sequence number, request id
    if (chunk[o] !== 1 || chunk[o + 1] !== 0 || chunk.readUInt16LE(o + 2) !== SERVICE_FAULT_ENCODING) return undefined;
    o += 4 + 8 + 4; // node id, response timestamp, request handle
    const result = chunk.readUInt32LE(o);
    return result >= 0x80000000 ? result : undefined;
  } catch {
    return undefined;
  }
}

/** the server refused the secure channel with a status; for a certificate problem, what to give the server */
export class ServerRefusedError extends Error {
  constructor(readonly status: string, readonly ownCertificate: string | undefined) {
    const certificate = status === 'BadSecurityChecksFailed' || status.startsWith('BadCertificate');
    super(certificate && ownCertificate
      ? `the server refused the secure channel (${status}): it does not trust the gateway's certificate; ` +
        `have the server trust ${ownCertificate} (most servers list it as rejected)`
      : `the server refused the connection (${status})`);
  }
}

/** node-opcua's error in one line, its cause kept: "cannot connect (connect ECONNREFUSED 10.0.0.5:4840)" */
export function errorText(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  const first = (m.split('\n').find((l) => l.trim() !== '') ?? m).trim();
  const cause = /Err = \(([^]*)\)\s*$/.exec(m)?.[1]?.replace(/\s+/g, ' ').trim();
  let text = first;
  if (/connection cannot be established/i.test(first)) text = `cannot connect${cause ? ` (${cause})` : ''}`;
  else if (/may have been rejected by server/i.test(first)) text = `the server closed the connection${cause ? ` (${cause})` : ''}`;
  else if (cause && !first.includes(cause)) text = `${first.replace(/[,.:]\s*$/, '')} (${cause})`;
  return text.slice(0, MAX);
}
