// The npm package as a user gets it: `npm pack` holds what runs and nothing
// of the tests or the bench; installed globally from the tarball into a
// fresh prefix (its dependencies from the registry), its `edgegate` runs the
// demo with nothing of this checkout in reach; its installer stages the
// program from there. Runs when EDGEGATE_TEST_PACKAGES=1 (.ci/run).
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers/gateway.js';
import { demoDelivers, PACKAGE_VERSION, PACKAGES_ENABLED, run, skipPackagesLoudly } from './helpers/packages.js';
import { requirePeer, tempDir } from './helpers/peers.js';

if (!PACKAGES_ENABLED) {
  skipPackagesLoudly(test);
} else {
  const tmp = tempDir('edgegate-npm-');
  const tarball = join(tmp.dir, `edgegate-${PACKAGE_VERSION}.tgz`);
  const prefix = join(tmp.dir, 'prefix');
  const bin = join(prefix, 'bin', 'edgegate');
  test.after(() => tmp.remove());

  test('npm pack: dist, the unit and installer, examples, READMEs, CHANGELOG, LICENSE; no tests, bench or source maps', () => {
    // --ignore-scripts: dist/ is built already (the tests run from it); a release's `npm pack` builds it through prepare
    const r = run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp.dir]);
    assert.is(r.code, 0, r.stderr);
    const [info] = JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }>; size: number; unpackedSize: number; entryCount: number }>;
    const files = info!.files.map((f) => f.path);
    console.log(`npm package: ${info!.entryCount} files, ${(info!.size / 1024).toFixed(0)} kB packed, ${(info!.unpackedSize / 1024).toFixed(0)} kB unpacked`);
    for (const f of ['package.json', 'dist/gateway/cli/main.js', 'dist/gateway/version.js', 'dist/drivers/opcua/sim-server.js', 'systemd/edgegate.service',
      'systemd/install.sh', 'config/examples/raspberry-pi.yaml', 'README.md', 'CHANGELOG.md', 'LICENSE', 'drivers/modbus/README.md', 'drivers/opcua/README.md']) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    const stray = files.filter((f) => /^dist\/(test|bench)\//.test(f) || f.endsWith('.map') || f.endsWith('.ts') || /^(test|bench|scripts)\//.test(f));
    assert.equal(stray, []);
    assert.ok(existsSync(tarball), tarball);
  });

  test('npm install -g from the tarball into a fresh prefix: --version, and the demo delivers data', async () => {
    if (!requirePeer('socat', 'the demo\'s serial instrument is a socat pty')) return;
    // cwd outside the checkout, so that nothing resolves through it
    const r = run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: tmp.dir, timeoutMs: 600_000 });
    assert.is(r.code, 0, r.stderr);
    const main = realpathSync(bin);
    assert.ok(main.startsWith(join(prefix, 'lib', 'node_modules', 'edgegate')), main);
    assert.not.ok(main.startsWith(ROOT), main);
    const v = run(bin, ['--version'], { cwd: tmp.dir });
    assert.is(v.code, 0, v.stderr);
    assert.is(v.stdout.trim(), PACKAGE_VERSION);
    const batches = await demoDelivers([bin], { cwd: tmp.dir, timeoutMs: 90_000 });
    console.log(`npm package: demo delivered ${batches} batches`);
  });

  test('the installer from the npm package stages the program (no lock file there)', () => {
    const from = join(prefix, 'lib', 'node_modules', 'edgegate');
    if (!existsSync(from)) throw new Error('the npm package is not installed (the test before failed)');
    const image = join(tmp.dir, 'image');
    const r = run('bash', [join(from, 'systemd', 'install.sh'), '--root', image, '--from', from], { cwd: tmp.dir, timeoutMs: 600_000 });
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, 'npm install --omit=dev');
    for (const f of ['usr/local/lib/edgegate/dist/gateway/cli/main.js', 'usr/local/lib/edgegate/node_modules/mqtt/package.json', 'usr/local/bin/edgegate',
      'etc/systemd/system/edgegate.service', 'etc/edgegate/config.yaml']) {
      assert.ok(existsSync(join(image, f)), f);
    }
  });
}

test.run();
