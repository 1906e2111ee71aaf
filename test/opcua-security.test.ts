// Secure channels and user authentication against a node-opcua server that
// offers only signed and encrypted endpoints and refuses anonymous sessions.
import { existsSync, renameSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UntrustedServerError } from '../drivers/opcua/client.js';
import type { SimServer } from '../drivers/opcua/sim-server.js';
import { connected, sim, startDriver, stopAll, tempPki, type Rig } from './helpers/opcua.js';
import { waitFor } from './helpers/peers.js';

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

test('Sign with Aes256_Sha256_RsaPss and auto_accept_server_certificate: accepted with a warning', async () => {
  const rig = startDriver(server.endpoint, { ...secure, security_mode: 'Sign', security_policy: 'Aes256_Sha256_RsaPss', auto_accept_server_certificate: true, tags }, tempPki());
  try {
    await connected(rig);
    await waitFor(() => rig.values('C').length >= 2, 10_000, 'data over the signed channel');
    const warn = rig.logs.find((l) => l.level === 'warn' && /accepted an unknown server certificate/.test(l.msg));
    assert.ok(warn, 'the acceptance is logged as a warning');
    assert.match(String(warn.obj.thumbprint), /^[0-9a-f]{40}$/);
  } finally {
    await rig.stop();
  }
  await waitFor(() => server.sessionCount() === 0, 5000, 'the session closed');
});

test.run();
