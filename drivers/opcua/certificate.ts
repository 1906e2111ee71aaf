// The client's own certificate: made by the gateway rather than by node-opcua,
// which would give it its author's subject (O=Sterfive, L=Orleans). A
// server's administrator sees whose certificate it is:
// "CN=edgegate line1-pi@raspberrypi, O=edgegate".
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { InMemoryCertificateKeyPairProvider, makeApplicationUrn, type OPCUACertificateManager } from './ua.js';

export const APPLICATION_NAME = 'edgegate';

function identity(gatewayId: string | undefined) {
  const host = hostname();
  // the gateway id's own default (config/load.ts)
  const id = gatewayId ?? (host.replace(/[^A-Za-z0-9_-]/g, '-') || APPLICATION_NAME);
  // a "/"-separated DN: neither a gateway id nor a host name holds "/" or "="; a CN has at most 64 characters
  const cn = `${APPLICATION_NAME} ${id}@${host}`.slice(0, 64);
  return { applicationUri: makeApplicationUrn(host, APPLICATION_NAME), dns: [host], subject: `/CN=${cn}/O=${APPLICATION_NAME}` };
}

/** creates the certificate file unless it exists: an existing one is kept, the servers trust that one */
export async function createOwnCertificate(cm: OPCUACertificateManager, file: string, gatewayId: string | undefined): Promise<void> {
  if (existsSync(file)) return;
  await cm.createSelfSignedCertificate({ ...identity(gatewayId), outputFile: file, startDate: new Date(), validity: 3650 });
}

/** a certificate and key in memory only (security None needs no trust list, so nothing is written) */
export async function inMemoryKeys(gatewayId: string | undefined): Promise<InMemoryCertificateKeyPairProvider> {
  const keys = new InMemoryCertificateKeyPairProvider();
  await keys.ensureCertificateExists({ ...identity(gatewayId), validity: 3650 });
  return keys;
}
