// The version edgegate reports (--version, the status topic, the stats, the
// start log line) is package.json's, read once at start: the release is
// numbered in one place, and every install (checkout, npm package, Debian
// package) ships package.json beside dist/.
import { readFileSync } from 'node:fs';

function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  const version: unknown = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== 'string' || version === '') throw new Error('package.json has no version');
  return version;
}

export const VERSION = packageVersion();
