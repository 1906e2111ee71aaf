// The oldest Node.js edgegate runs on. main.ts asks before it loads anything
// else, so this file must parse and run on any Node.js that can load an ES
// module: no syntax or API newer than Node 12.
export const MIN_NODE_MAJOR = 20;
/** sysexits' EX_UNAVAILABLE: a program edgegate needs is not there (in a usable version) */
export const EXIT_NODE_TOO_OLD = 69;

/** the message for a Node.js older than MIN_NODE_MAJOR, or undefined when `version` is supported */
export function nodeVersionProblem(version: string, execPath: string): string | undefined {
  const major = Number(String(version).split('.')[0]);
  if (major >= MIN_NODE_MAJOR) return undefined;
  return `edgegate needs Node.js ${MIN_NODE_MAJOR} or newer; this is Node.js ${version} (${execPath}).\n` +
    'Install Node.js 20, 22 or 24: on Raspberry Pi OS / Debian, NodeSource\'s nodejs package or the\n' +
    'official Linux build (x64, arm64 or armv7l) under /usr/local. See the README, "Supported platforms".\n';
}

/**
 * aedes 1.2, the embedded broker (`mqtt.url: embedded`, the demo), imports
 * JSON with import attributes, which Node.js parses only since 20.10; the rest
 * of edgegate runs on 20.0. The message, or undefined when `version` has them.
 */
export function embeddedBrokerProblem(version: string): string | undefined {
  const [major = 0, minor = 0] = String(version).split('.').map(Number);
  if (major > 20 || (major === 20 && minor >= 10)) return undefined;
  return `the embedded MQTT broker needs Node.js 20.10 or newer; this is Node.js ${version}: ` +
    'name a broker in mqtt.url, or update Node.js';
}
