#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1
// edgegate's entry point (the `edgegate` bin, `npm start`, the systemd unit).
// It checks the Node.js version and only then loads the command line: on a
// Node.js that is too old the code behind it would stop with a SyntaxError or
// a missing export instead of saying what is wrong. So nothing imported here
// statically may need more than the oldest Node.js that can load this file.
import { EXIT_NODE_TOO_OLD, nodeVersionProblem } from './node-version.js';

const problem = nodeVersionProblem(process.versions.node, process.execPath);
if (problem !== undefined) {
  process.stderr.write(problem);
  process.exitCode = EXIT_NODE_TOO_OLD;
} else {
  import('./commands.js').catch((err: unknown) => {
    process.stderr.write(`edgegate: ${err instanceof Error ? (err.stack || err.message) : String(err)}\n`);
    process.exit(1);
  });
}
