// format: nmea — sentences as GPS receivers and marine/weather instruments
// send them: checksums, talker ids, named position fields, numbered fields,
// both hemispheres, no-fix sentences with empty fields, AIS encapsulation;
// then over a real pty (socat) into a device map.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../config/load.js';
import { serialDevice } from '../config/schema.js';
import { SerialDriver } from '../drivers/serial/driver.js';
import { createParser, Fields } from '../drivers/serial/formats.js';
import { FakeClock } from '../gateway/clock.js';
import { TagPipeline } from '../gateway/tags.js';
import { newCounters, type RawValue, type Reading } from '../gateway/types.js';
import { openInstrument, ptyPair, recordingContext } from './helpers/socat.js';
import { requirePeer, runInBackground, tempDir, waitFor } from './helpers/peers.js';

const nmea = createParser(serialDevice.parse({ id: 'gps', driver: 'serial', port: '/dev/null', format: 'nmea' }));

function parse(line: string): Record<string, RawValue> | string {
  const out = new Fields();
  const reason = nmea(line, out);
  if (reason !== undefined) return reason;
  const r: Record<string, RawValue> = {};
  for (let i = 0; i < out.count; i++) r[out.keys[i] as string] = out.values[i] as RawValue;
  return r;
}

test('GGA: named fields, latitude and longitude as signed decimal degrees, the rest by number', () => {
  assert.equal(parse('$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47'), {
    'GGA.time': '123519', 'GGA.lat': 48.1173, 'GGA.lon': 11.51666667, 'GGA.fix': '1', 'GGA.satellites': '08',
    'GGA.hdop': '0.9', 'GGA.altitude': '545.4', 'GGA.10': 'M', 'GGA.11': '46.9', 'GGA.12': 'M',
  });
  // west of Greenwich; a GPS+GLONASS receiver (talker GN) south of the equator: same keys
  const west = parse('$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76') as Record<string, RawValue>;
  assert.equal([west['GGA.lat'], west['GGA.lon']], [53.36133667, -6.50562]);
  const south = parse('$GNGGA,001031.00,3351.52197,S,15112.63295,E,1,12,0.67,42.1,M,21.3,M,,*68') as Record<string, RawValue>;
  assert.equal([south['GGA.time'], south['GGA.lat'], south['GGA.lon'], south['GGA.satellites']], ['001031.00', -33.8586995, 151.21054917, '12']);
});

test('RMC and VTG: named fields; a checksum in lowercase hex is accepted', () => {
  assert.equal(parse('$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6a'), {
    'RMC.time': '123519', 'RMC.status': 'A', 'RMC.lat': 48.1173, 'RMC.lon': 11.51666667, 'RMC.speed_kn': '022.4',
    'RMC.course': '084.4', 'RMC.date': '230394', 'RMC.10': '003.1', 'RMC.11': 'W',
  });
  assert.equal(parse('$GNRMC,001031.00,A,3351.52197,S,15112.63295,E,0.021,,070124,,,A*72'), {
    'RMC.time': '001031.00', 'RMC.status': 'A', 'RMC.lat': -33.8586995, 'RMC.lon': 151.21054917, 'RMC.speed_kn': '0.021',
    'RMC.date': '070124', 'RMC.12': 'A',
  });
  assert.equal(parse('$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48'), {
    'VTG.course': '054.7', 'VTG.2': 'T', 'VTG.3': '034.4', 'VTG.4': 'M', 'VTG.speed_kn': '005.5', 'VTG.6': 'N', 'VTG.speed_kmh': '010.2', 'VTG.8': 'K',
  });
});

test('no fix yet: empty fields are absent, not a parse error', () => {
  assert.equal(parse('$GPGGA,,,,,,0,00,99.99,,,,,,*48'), { 'GGA.fix': '0', 'GGA.satellites': '00', 'GGA.hdop': '99.99' });
  assert.equal(parse('$GPRMC,,V,,,,,,,,,,N*53'), { 'RMC.status': 'V', 'RMC.12': 'N' });
  assert.equal(parse(withSum('$GPGGA,,,,,,,,,,,,,,')), {}, 'a valid sentence with nothing in it yet');
  assert.equal(parse('$GPVTG,,T,,M,0.021,N,0.039,K,A*2A'), { 'VTG.2': 'T', 'VTG.4': 'M', 'VTG.speed_kn': '0.021', 'VTG.6': 'N', 'VTG.speed_kmh': '0.039', 'VTG.8': 'K', 'VTG.9': 'A' });
});

test('other sentences by 1-based field number, talker id dropped; AIS !-sentences too', () => {
  assert.equal(parse('$WIMWV,214.8,R,0.1,K,A*28'), { 'MWV.1': '214.8', 'MWV.2': 'R', 'MWV.3': '0.1', 'MWV.4': 'K', 'MWV.5': 'A' });
  assert.equal(parse('$IIMWV,045.0,T,12.6,N,A*0F'), { 'MWV.1': '045.0', 'MWV.2': 'T', 'MWV.3': '12.6', 'MWV.4': 'N', 'MWV.5': 'A' });
  assert.equal(parse('$SDDBT,7.8,f,2.4,M,1.3,F*0D'), { 'DBT.1': '7.8', 'DBT.2': 'f', 'DBT.3': '2.4', 'DBT.4': 'M', 'DBT.5': '1.3', 'DBT.6': 'F' });
  assert.equal(parse('$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39'), {
    'GSA.1': 'A', 'GSA.2': '3', 'GSA.3': '04', 'GSA.4': '05', 'GSA.6': '09', 'GSA.7': '12', 'GSA.10': '24', 'GSA.15': '2.5', 'GSA.16': '1.3', 'GSA.17': '2.1',
  });
  const gsv = parse('$GPGSV,2,1,08,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45*75') as Record<string, RawValue>;
  assert.equal([gsv['GSV.1'], gsv['GSV.3'], gsv['GSV.19']], ['2', '08', '45']);
  assert.equal(parse('!AIVDM,1,1,,B,177KQJ5000G?tO`K>RA1wUbN0TKH,0*5C'), { 'VDM.1': '1', 'VDM.2': '1', 'VDM.4': 'B', 'VDM.5': '177KQJ5000G?tO`K>RA1wUbN0TKH', 'VDM.6': '0' });
});

test('bad or missing checksums, broken sentences and bad positions are parse errors', () => {
  assert.is(parse('$GNRMC,001031.00,A,3351.52197,S,15112.63295,E,0.021,,070124,,,A*6B'), 'checksum mismatch: line says 6B, data gives 72');
  // one flipped digit in the latitude: the checksum catches it
  assert.match(parse('$GPGGA,123519,4807.039,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47') as string, /^checksum mismatch/);
  assert.is(parse('$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,'), 'missing checksum (*hh)');
  assert.is(parse('$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*4'), 'bad checksum field "*4"');
  assert.is(parse('$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*4G'), 'bad checksum field "*4G"');
  assert.is(parse('GPGGA,123519*47'), 'expected an NMEA sentence starting with "$" or "!"');
  assert.is(parse('T=21.5'), 'expected an NMEA sentence starting with "$" or "!"');
  assert.is(parse('$*00'), 'bad sentence address ""');
  assert.is(parse(withSum('$GPGGA,123519,4807.038,X,01131.000,E,1')), 'GGA latitude needs its hemisphere (N or S), got "X"');
  assert.is(parse(withSum('$GPGGA,123519,4807.038,,01131.000,E,1')), 'GGA latitude needs its hemisphere (N or S), got ""');
  assert.is(parse(withSum('$GPGGA,123519,48O7.038,N,01131.000,E,1')), 'GGA latitude "48O7.038" is not ddmm.mmm');
  assert.is(parse(withSum('$GPRMC,123519,A,4807.038,N,01171.000,E')), 'RMC longitude "01171.000" is out of range');
  assert.equal(parse(withSum('$GPGGA,,,,,,0')), { 'GGA.fix': '0' });
  // trailing CR (a CRLF device with delimiter "\n") and surrounding spaces are fine
  assert.equal(parse('$SDDBT,7.8,f,2.4,M,1.3,F*0D\r'), parse('$SDDBT,7.8,f,2.4,M,1.3,F*0D'));
});

/** appends the right checksum, for sentences made up to test one field */
function withSum(sentence: string): string {
  let sum = 0;
  for (let i = 1; i < sentence.length; i++) sum ^= sentence.charCodeAt(i);
  return `${sentence}*${sum.toString(16).toUpperCase().padStart(2, '0')}`;
}

test('fields stay text until the tag converts them: time as a string keeps its zeros', () => {
  const out: Reading[] = [];
  const p = new TagPipeline({
    tags: { 'GGA.time': { name: 'utc_time', type: 'string' }, 'GGA.lat': { name: 'lat' }, 'GGA.satellites': { name: 'sats', type: 'integer' }, 'GGA.altitude': { name: 'alt', unit: 'm' } },
    passUnknown: false, clock: new FakeClock(0), out: (r) => out.push(r), counters: newCounters(),
  });
  const fields = new Fields();
  assert.is(nmea('$GNGGA,001031.00,3351.52197,S,15112.63295,E,1,12,0.67,42.1,M,21.3,M,,*68', fields), undefined);
  for (let i = 0; i < fields.count; i++) p.input(fields.keys[i]!, fields.values[i]!, 0, 'good');
  assert.equal(Object.fromEntries(out.map((r) => [r.tag, r.value])), { utc_time: '001031.00', lat: -33.8586995, sats: 12, alt: 42.1 });
});

test('config/examples/gps-nmea.yaml is valid', () => {
  const r = loadConfig(fileURLToPath(new URL('../../config/examples/gps-nmea.yaml', import.meta.url)), {});
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  if (r.ok) {
    assert.equal(r.warnings, []);
    assert.is(r.config.devices[0]?.driver === 'serial' && r.config.devices[0].format, 'nmea');
  }
});

if (requirePeer('socat', 'the NMEA stream runs over a socat pty pair')) {
  test('a GPS receiver over a pty: positions emitted, a corrupted sentence counted and skipped', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    const instrument = await openInstrument(pty.instrument);
    const rec = recordingContext('gps');
    const driver = new SerialDriver(serialDevice.parse({ id: 'gps', driver: 'serial', port: pty.device, baud_rate: 9600, format: 'nmea' }));
    const { done, outcome } = runInBackground(driver, rec.ctx);
    try {
      await waitFor(() => rec.lastStatus()?.state === 'connected' || outcome() !== 'running', 5000, 'the driver to connect');
      await instrument.write([
        '$GPGGA,,,,,,0,00,99.99,,,,,,*48',
        '$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*77',
        '$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76',
        '!AIVDM,1,1,,B,177KQJ5000G?tO`K>RA1wUbN0TKH,0*5C',
        '',
      ].join('\r\n'));
      await waitFor(() => rec.emits.some((e) => e.key === 'VDM.5'), 5000, 'the AIS sentence');
      assert.equal(rec.emits.filter((e) => e.key === 'GGA.lat' || e.key === 'GGA.lon').map((e) => e.value), [53.36133667, -6.50562]);
      assert.equal(rec.values('GGA.fix'), [0, 1]);
      assert.equal(rec.parseErrors.map((p) => p.reason), ['checksum mismatch: line says 77, data gives 76']);
    } finally {
      rec.abort();
      await done;
      await instrument.close();
      await pty.stop();
      tmp.remove();
    }
  });
}

test.run();
