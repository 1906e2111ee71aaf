// One OPC UA client and session: security mode and policy, the client's own
// certificate under the PKI folder (created on first use, then reused; in
// memory only for browsing with security None and no folder), the
// trust decision about the server's certificate, and the user identity.
// Shared by the driver and `edgegate browse`.
import type { EventEmitter } from 'node:events';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { OpcuaDeviceConfig } from '../../config/schema.js';
import type { Logger } from '../../gateway/types.js';
import { APPLICATION_NAME, createOwnCertificate, inMemoryKeys } from './certificate.js';
import { errorText, ServerRefusedError, statusName, statusOfErrChunk } from './errors.js';
import {
  crypto_utils, DataTypeExtractStrategy, MessageSecurityMode, OPCUACertificateManager, OPCUAClient, SecurityPolicy,
  UserTokenType, type ClientSession, type StatusCode, type UserIdentityInfo,
} from './ua.js';

export type ClientSettings = Pick<OpcuaDeviceConfig,
  'endpoint' | 'security_mode' | 'security_policy' | 'username' | 'password' | 'auto_accept_server_certificate'> & {
  /** absent (security None only): a certificate in memory, nothing written to disk */
  pki_dir: string | undefined;
  /** named in the client certificate's subject; default: the host name, as gateway.id's default */
  gateway_id?: string;
};

/** a server that accepts the TCP connection but never answers must not hold the device forever */
const CONNECT_TIMEOUT_MS = 20_000;
const CLOSE_TIMEOUT_MS = 3_000;

const DEFAULT_ACCEPT_HINT = 'set auto_accept_server_certificate: true';

/** the server's certificate is not trusted: what to copy where, in the message itself */
export class UntrustedServerError extends Error {
  constructor(readonly thumbprint: string, readonly file: string | undefined, readonly trustedDir: string, acceptHint = DEFAULT_ACCEPT_HINT) {
    // moved, not copied: a certificate that is also in rejected/ stays rejected
    super(`server certificate not trusted (SHA-1 thumbprint ${thumbprint}): to trust it, move ${file ?? 'it'} to ${trustedDir}/, or ${acceptHint}`);
  }
}

/** the PKI folders, as node-opcua lays them out */
export function pkiPaths(root: string) {
  return {
    root,
    ownCertificate: join(root, 'own', 'certs', 'client_certificate.pem'),
    trusted: join(root, 'trusted', 'certs'),
    rejected: join(root, 'rejected'),
  };
}

// two devices sharing a PKI folder must not both create the client certificate
const initializing = new Map<string, Promise<unknown>>();

async function trustStore(root: string, s: ClientSettings, log: Logger, acceptHint: string): Promise<{ cm: OPCUACertificateManager; rejected: () => UntrustedServerError | undefined }> {
  mkdirSync(root, { recursive: true });
  // file watchers are off: a certificate copied into trusted/ is seen at the next connection attempt
  const cm = new OPCUACertificateManager({ rootFolder: root, automaticallyAcceptUnknownCertificate: s.auto_accept_server_certificate, disableFileWatchers: true, name: APPLICATION_NAME });
  const before = initializing.get(root) ?? Promise.resolve();
  const mine = before.then(async () => {
    await cm.initialize();
    await createOwnCertificate(cm, pkiPaths(root).ownCertificate, s.gateway_id);
  });
  initializing.set(root, mine.catch(() => undefined));
  await mine;
  const paths = pkiPaths(root);
  let untrusted: UntrustedServerError | undefined;
  const check = cm.checkCertificate.bind(cm) as (chain: Buffer | Buffer[]) => Promise<StatusCode>;
  // wraps the manager's own check to learn which certificate it judged, and how
  const checkCertificate = async (chain: Buffer | Buffer[], callback?: (err: Error | null, status?: StatusCode) => void) => {
    const leaf = (Array.isArray(chain) ? chain : crypto_utils.split_der(chain))[0] as Buffer;
    const thumbprint = crypto_utils.makeSHA1Thumbprint(leaf).toString('hex');
    const known = listing(paths.trusted).some((f) => f.includes(`[${thumbprint}]`));
    try {
      const status = await check(chain);
      if (status.isGood() && !known && s.auto_accept_server_certificate) {
        log.warn({ endpoint: s.endpoint, thumbprint, trusted_dir: paths.trusted }, 'accepted an unknown server certificate (auto_accept_server_certificate: true) and stored it as trusted');
      } else if (!status.isGood()) {
        const file = listing(paths.rejected).find((f) => f.includes(`[${thumbprint}]`));
        untrusted = new UntrustedServerError(thumbprint, file && join(paths.rejected, file), paths.trusted, acceptHint);
        log.error({ endpoint: s.endpoint, thumbprint, status: status.name, file: file && join(paths.rejected, file), trusted_dir: paths.trusted }, untrusted.message);
      }
      callback?.(null, status);
      return status;
    } catch (err) {
      if (!callback) throw err;
      callback(err as Error);
    }
  };
  Object.assign(cm, { checkCertificate });
  return { cm, rejected: () => untrusted };
}

function listing(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function identityOf(s: ClientSettings): UserIdentityInfo {
  if (s.username === undefined) return { type: UserTokenType.Anonymous };
  return { type: UserTokenType.UserName, userName: s.username, password: s.password ?? '' };
}

export interface OpenSession {
  client: OPCUAClient;
  session: ClientSession;
  /** closes the session (deleting its subscriptions) and the connection; bounded in time, never rejects */
  close(): Promise<void>;
  /** the status with which the server last refused a secure channel (while node-opcua reconnects) */
  refusal(): ServerRefusedError | undefined;
}

/**
 * Connects once (no retries of its own: the caller decides when to try again)
 * and opens a session. Rejects on failure, on timeout, or when the signal aborts.
 */
export async function openSession(s: ClientSettings, log: Logger, opts: { signal?: AbortSignal; clientName?: string; acceptHint?: string } = {}): Promise<OpenSession> {
  if (s.pki_dir === undefined && s.security_mode !== 'None') throw new Error(`security_mode ${s.security_mode} needs a PKI folder`);
  const store = s.pki_dir === undefined ? undefined : await trustStore(s.pki_dir, s, log, opts.acceptHint ?? DEFAULT_ACCEPT_HINT);
  const keys = store ? { clientCertificateManager: store.cm } : { certificateKeyPairProvider: await inMemoryKeys(s.gateway_id) };
  const ownCertificate = s.pki_dir === undefined || s.security_mode === 'None' ? undefined : pkiPaths(s.pki_dir).ownCertificate;
  const client = OPCUAClient.create({
    applicationName: APPLICATION_NAME,
    clientName: opts.clientName ?? APPLICATION_NAME,
    endpointMustExist: false,
    securityMode: MessageSecurityMode[s.security_mode],
    securityPolicy: SecurityPolicy[s.security_policy],
    ...keys,
    // maxRetry 0: one attempt. The driver turns node-opcua's reconnection on once connected.
    connectionStrategy: { maxRetry: 0, initialDelay: 1000, maxDelay: 30_000, randomisationFactor: 0.5 },
    requestedSessionTimeout: 60_000,
    dataTypeExtractStrategy: DataTypeExtractStrategy.Lazy,
  });
  const refusal = watchRefusals(client, ownCertificate);
  let session: ClientSession | undefined;
  const close = async (): Promise<void> => {
    const s1 = session;
    session = undefined;
    if (s1) await bounded(s1.close(true), CLOSE_TIMEOUT_MS).catch(() => undefined);
    await bounded(client.disconnect(), CLOSE_TIMEOUT_MS).catch(() => undefined);
  };
  try {
    await abortable(client.connect(s.endpoint), opts.signal, CONNECT_TIMEOUT_MS, `no answer from ${s.endpoint}`);
    session = await abortable(client.createSession(identityOf(s)), opts.signal, CONNECT_TIMEOUT_MS, 'no session created');
    return { client, session, close, refusal };
  } catch (err) {
    await close();
    throw store?.rejected() ?? refusal() ?? closedWhileSecuring(err, ownCertificate);
  }
}

/**
 * node-opcua drops the status of a server's ERR message and reports only the
 * closed socket: the chunks of each new secure channel are looked at until it
 * is open (not after: data chunks never pay for this), and the latest refusal
 * is kept.
 */
function watchRefusals(client: OPCUAClient, ownCertificate: string | undefined): () => ServerRefusedError | undefined {
  let status: number | undefined;
  client.on('secure_channel_created', (channel: EventEmitter) => {
    status = undefined;
    const onChunk = (chunk: Buffer) => {
      if (chunk[0] === 0x45 /* E */) status = statusOfErrChunk(chunk) ?? status;
    };
    channel.on('receive_chunk', onChunk);
    channel.once('security_token_created', () => channel.off('receive_chunk', onChunk));
  });
  return () => (status === undefined ? undefined : new ServerRefusedError(statusName(status), ownCertificate));
}

/** a server that closes a signed channel without a word most likely does not trust the gateway's certificate */
function closedWhileSecuring(err: unknown, ownCertificate: string | undefined): unknown {
  if (ownCertificate === undefined || !(err instanceof Error) || !/may have been rejected by server/.test(err.message)) return err;
  return new Error(`${errorText(err)}; if the server does not trust the gateway's certificate, have it trust ${ownCertificate}`, { cause: err });
}

function bounded<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); })]).finally(() => clearTimeout(timer));
}

/** p, unless the signal aborts or ms pass first */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => finish(() => reject(new Error('aborted')));
    const timer = setTimeout(() => finish(() => reject(new Error(`${what} within ${ms / 1000} s`))), ms);
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then((v) => finish(() => resolve(v)), (e: unknown) => finish(() => reject(e)));
  });
}
