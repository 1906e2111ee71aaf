// The build as npm runs it: `npm run build` (and `prepare`, which runs on
// `npm install`) leaves dist/gateway/cli/main.js executable, so a checkout's
// command line runs as ./dist/gateway/cli/main.js, and puts the status page's
// static files next to the module that serves them. The package's own scripts
// run in a copy whose tsc is a stand-in (the real one takes a minute here).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers/gateway.js';
import { tempDir } from './helpers/peers.js';

/** a copy of package.json and scripts/ with a tsc that writes main.js as tsc does: 0644, a shebang */
function project(): { dir: string; remove: () => void } {
  const tmp = tempDir();
  copyFileSync(join(ROOT, 'package.json'), join(tmp.dir, 'package.json'));
  mkdirSync(join(tmp.dir, 'scripts'));
  copyFileSync(join(ROOT, 'scripts', 'postbuild.mjs'), join(tmp.dir, 'scripts', 'postbuild.mjs'));
  cpSync(join(ROOT, 'gateway', 'outputs', 'http', 'page'), join(tmp.dir, 'gateway', 'outputs', 'http', 'page'), { recursive: true });
  mkdirSync(join(tmp.dir, 'node_modules', '.bin'), { recursive: true });
  const tsc = join(tmp.dir, 'node_modules', '.bin', 'tsc');
  writeFileSync(tsc, `#!/bin/sh\nmkdir -p dist/gateway/cli && rm -f dist/gateway/cli/main.js\nprintf '#!/usr/bin/env node\\nconsole.log("edgegate ran")\\n' > dist/gateway/cli/main.js\nchmod 0644 dist/gateway/cli/main.js\n`);
  chmodSync(tsc, 0o755);
  return tmp;
}

for (const script of ['build', 'prepare']) {
  test(`npm run ${script}: dist/gateway/cli/main.js is executable and runs`, () => {
    const p = project();
    try {
      const r = spawnSync('npm', ['run', '--silent', script], { cwd: p.dir, encoding: 'utf8', timeout: 60_000 });
      assert.is(r.status, 0, `${r.stdout}${r.stderr}`);
      const main = join(p.dir, 'dist', 'gateway', 'cli', 'main.js');
      assert.is(statSync(main).mode & 0o111, 0o111, `mode ${(statSync(main).mode & 0o777).toString(8)}`);
      const run = spawnSync(main, [], { encoding: 'utf8' });
      assert.is(run.stdout, 'edgegate ran\n', run.stderr);
      for (const f of ['index.html', 'app.js', 'style.css']) assert.ok(existsSync(join(p.dir, 'dist', 'gateway', 'outputs', 'http', 'page', f)), f);
    } finally {
      p.remove();
    }
  });
}

test('npm test builds the same way before it runs the tests', () => {
  const scripts = (JSON.parse(spawnSync('npm', ['pkg', 'get', 'scripts'], { cwd: ROOT, encoding: 'utf8' }).stdout) as Record<string, string>);
  assert.match(scripts.test!, /^npm run build && /);
});

test.run();
