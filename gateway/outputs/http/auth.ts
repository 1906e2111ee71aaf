// HTTP basic auth. Both names are compared as SHA-256 digests with
// timingSafeEqual: equal lengths whatever was sent, and no early exit that
// would tell an attacker how much of a guess was right.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export class BasicAuth {
  private readonly user: Buffer;
  private readonly pass: Buffer;

  constructor(username: string, password: string) {
    this.user = digest(username);
    this.pass = digest(password);
  }

  /** the Authorization header carries these credentials */
  check(header: string | undefined): boolean {
    if (header === undefined || !/^basic /i.test(header)) return false;
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const userOk = timingSafeEqual(digest(decoded.slice(0, colon)), this.user);
    const passOk = timingSafeEqual(digest(decoded.slice(colon + 1)), this.pass);
    return userOk && passOk;
  }
}
