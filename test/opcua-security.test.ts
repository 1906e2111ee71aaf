// Secure channels and user authentication against a node-opcua server that
// offers only signed and encrypted endpoints and refuses anonymous sessions.
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UntrustedServerError } from '../drivers/opcua/client.js';
import { errorText, statusOfErrChunk } from '../drivers/opcua/errors.js';
import type { SimServer } from '../drivers/opcua/sim-server.js';
import { connected, sim, startDriver, stopAll, tempPki, TEST_GATEWAY_ID, type Rig } from './helpers/opcua.js';
import { freePort, waitFor } from './helpers/peers.js';

let server: SimServer;
const users = { gw: 'correct horse' };
const secure = { security_mode: 'SignAndEncrypt', security_policy: 'Basic256Sha256', username: 'gw', password: users.gw };
const tags = { C: { node: 'ns=1;s=Sim.Counter' } };

test.before(async () => {
  server = await sim({ users, security: { modes: ['Sign', 'SignAndEncrypt'], policies: ['Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'] } });
});
test.after(async () => {
  await stopAll();
});

async function ended(rig: Rig): Promise<unknown> {
  await waitFor(() => rig.outcome() !== 'running', 30_000, 'run() to end');
  return rig.outcome();
}

test('an unknown server certificate is rejected with its thumbprint and the file to move; once moved, SignAndEncrypt + Basic256Sha256 with a user name works', async () => {
  const pki = tempPki();
  const first = startDriver(server.endpoint, { ...secure, tags }, pki);
  const err = await ended(first);
  assert.instance(err, Error);
  assert.match((err as Error).message, /server certificate not trusted/);
  const untrusted = (err as Error).cause as UntrustedServerError;
  assert.instance(untrusted, UntrustedServerError, String(err));
  assert.match(untrusted.thumbprint, /^[0-9a-f]{40}$/);
  assert.ok(untrusted.file && existsSync(untrusted.file), `the rejected certificate is at ${untrusted.file}`);
  assert.is(untrusted.trustedDir, join(pki, 'trusted', 'certs'));
  assert.match(untrusted.message, `move ${untrusted.file} to ${untrusted.trustedDir}/`);
  const line = first.logs.find((l) => l.level === 'error');
  assert.ok(line, 'an error line is logged');
  assert.is(line.obj.thumbprint, untrusted.thumbprint);
  assert.is(line.obj.file, untrusted.file);
  assert.ok(existsSync(join(pki, 'own', 'certs', 'client_certificate.pem')), 'the client certificate was created under pki_dir');
  assert.is(server.sessionCount(), 0);

  // the trust workflow of the README: move the rejected file into trusted/certs
  renameSync(untrusted.file!, join(untrusted.trustedDir, basename(untrusted.file!)));
  const second = startDriver(server.endpoint, { ...secure, tags }, pki);
  try {
    await connected(second);
    await waitFor(() => second.values('C').length >= 3, 10_000, 'data over the encrypted channel');
    assert.is(server.sessionCount(), 1);
  } finally {
    await second.stop();
  }
  await waitFor(() => server.sessionCount() === 0, 5000, 'the session closed');
});

test('a wrong password is refused, and no session stays open', async () => {
  const rig = startDriver(server.endpoint, { ...secure, password: 'wrong', auto_accept_server_certificate: true, tags });
  const err = await ended(rig);
  assert.instance(err, Error);
  assert.match((err as Error).message, /BadUserAccessDenied|BadIdentityTokenRejected|BadIdentityTokenInvalid/);
  assert.is(server.sessionCount(), 0);
});

test('Sign with Aes256_Sha256_RsaPss and auto_accept_server_certificate: accepted with a warning; the client certificate names edgegate, the gateway and the host', async () => {
  const pki = tempPki();
  const rig = startDriver(server.endpoint, { ...secure, security_mode: 'Sign', security_policy: 'Aes256_Sha256_RsaPss', auto_accept_server_certificate: true, tags }, pki);
  try {
    await connected(rig);
    await waitFor(() => rig.values('C').length >= 2, 10_000, 'data over the signed channel');
    const warn = rig.logs.find((l) => l.level === 'warn' && /accepted an unknown server certificate/.test(l.msg));
    assert.ok(warn, 'the acceptance is logged as a warning');
    assert.match(String(warn.obj.thumbprint), /^[0-9a-f]{40}$/);
    // the client certificate says whose it is: edgegate, the gateway id and the host
    const own = new X509Certificate(readFileSync(join(pki, 'own', 'certs', 'client_certificate.pem')));
    assert.equal(own.subject.split('\n').sort(), [`CN=edgegate ${TEST_GATEWAY_ID}@${hostname()}`, 'O=edgegate']);
    assert.match(own.subjectAltName ?? '', `DNS:${hostname()}`);
  } finally {
    await rig.stop();
  }
  await waitFor(() => server.sessionCount() === 0, 5000, 'the session closed');
});

test('a server that does not trust the gateway: the status names BadSecurityChecksFailed and the certificate to give it; once trusted there, it connects', async () => {
  const strict = await sim({ trustClients: false, security: { modes: ['SignAndEncrypt'], policies: ['Basic256Sha256'] } });
  const pki = tempPki();
  const own = join(pki, 'own', 'certs', 'client_certificate.pem');
  const device = { security_mode: 'SignAndEncrypt', security_policy: 'Basic256Sha256', auto_accept_server_certificate: true, tags };
  const first = startDriver(strict.endpoint, device, pki);
  const err = await ended(first);
  assert.instance(err, Error);
  const message = (err as Error).message;
  assert.match(message, 'BadSecurityChecksFailed', message);
  assert.match(message, `have the server trust ${own}`, message);
  assert.not.match(message, /\n|may have been rejected/, message);

  // what the message says to do: the server's administrator trusts that file (node-opcua keeps a
  // copy in its rejected/ folder, which must go: a certificate found there stays rejected)
  const rejected = join(strict.pkiDir, 'server', 'rejected');
  for (const f of readdirSync(rejected)) rmSync(join(rejected, f));
  copyFileSync(own, join(strict.pkiDir, 'server', 'trusted', 'certs', 'edgegate.pem'));
  await strict.reloadTrust();
  const second = startDriver(strict.endpoint, device, pki);
  try {
    await connected(second);
    await waitFor(() => second.values('C').length >= 2, 10_000, 'data once the server trusts the gateway');
  } finally {
    await second.stop();
  }
});

test('nothing listening: the reason keeps its cause (ECONNREFUSED)', async () => {
  const port = await freePort();
  const rig = startDriver(`opc.tcp://127.0.0.1:${port}`, { tags }, tempPki());
  const err = await ended(rig);
  assert.match((err as Error).message, `opc.tcp://127.0.0.1:${port}: cannot connect (connect ECONNREFUSED 127.0.0.1:${port})`);
});

test("ERR chunks: the spec's TCP error message (open62541's form) and node-opcua's ServiceFault; anything else is no status", () => {
  const reason = Buffer.from('certificate untrusted');
  const spec = Buffer.alloc(16 + reason.length);
  spec.write('ERRF', 0, 'latin1');
  spec.writeUInt32LE(spec.length, 4);
  spec.writeUInt32LE(0x80130000, 8);
  spec.writeInt32LE(reason.length, 12);
  reason.copy(spec, 16);
  assert.is(statusOfErrChunk(spec), 0x80130000);
  // node-opcua: channel id, security header (policy, certificate, thumbprint), sequence header, ServiceFault
  const str = (b: Buffer) => Buffer.concat([Buffer.from(Int32Array.of(b.length).buffer), b]);
  const body = Buffer.concat([
    Buffer.from(Uint32Array.of(2).buffer), str(Buffer.from('http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256')), str(Buffer.alloc(30, 7)), Buffer.from(Int32Array.of(-1).buffer),
    Buffer.from(Uint32Array.of(1, 1).buffer), Buffer.from([1, 0, 0x8d, 1]), Buffer.alloc(8), Buffer.from(Uint32Array.of(1, 0x801a0000).buffer), Buffer.alloc(12),
  ]);
  const header = Buffer.alloc(8);
  header.write('ERRF', 0, 'latin1');
  header.writeUInt32LE(8 + body.length, 4);
  assert.is(statusOfErrChunk(Buffer.concat([header, body])), 0x801a0000);
  assert.is(statusOfErrChunk(Buffer.concat([header, body.subarray(0, 40)])), undefined, 'truncated');
  assert.is(statusOfErrChunk(Buffer.from('MSGF0000000000000000')), undefined);
  assert.is(errorText(new Error('The connection cannot be established with server opc.tcp://h:4840 .\nPlease check that the server is up and running or your network configuration.\nErr = (connect ECONNREFUSED 10.0.0.5:4840)')),
    'cannot connect (connect ECONNREFUSED 10.0.0.5:4840)');
});

test.run();
