// NMEA 0183 sentences (GPS receivers, marine and weather instruments):
// `$GPGGA,…*hh` and the encapsulated `!AIVDM,…*hh`. The checksum is required,
// since a serial line that flips a bit would otherwise publish a wrong
// position. Keys are `<sentence>.<field>` without the talker id, so a
// receiver that says GN instead of GP (GPS+GLONASS) keeps its device map:
// names for the common position sentences, 1-based field numbers otherwise.
// Fields stay text for the tag's type to convert; latitude and longitude are
// computed as signed decimal degrees. An empty field (no fix yet) is absent.
import type { Fields } from './formats.js';

/** per sentence: field number (1-based) → name; "lat"/"lon" take the hemisphere from the next field */
const NAMED: Record<string, Record<number, string>> = {
  GGA: { 1: 'time', 2: 'lat', 4: 'lon', 6: 'fix', 7: 'satellites', 8: 'hdop', 9: 'altitude' },
  RMC: { 1: 'time', 2: 'status', 3: 'lat', 5: 'lon', 7: 'speed_kn', 8: 'course', 9: 'date' },
  VTG: { 1: 'course', 5: 'speed_kn', 7: 'speed_kmh' },
};

/** per sentence type, built once: the key of each field and which fields are positions */
interface Layout {
  keys: string[];
  /** 0 a plain field, 1 latitude, 2 longitude (the next field is the hemisphere) */
  kinds: Uint8Array;
}

/** bounded, so a stream of odd addresses cannot grow it */
const MAX_CACHED_SENTENCES = 64;
const layouts = new Map<string, Layout>();

function layoutOf(sentence: string, count: number): Layout {
  const cached = layouts.get(sentence);
  if (cached !== undefined && cached.keys.length >= count) return cached;
  const names = NAMED[sentence];
  const keys: string[] = [];
  const kinds = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const name = names?.[i];
    keys.push(`${sentence}.${name ?? i}`);
    kinds[i] = name === 'lat' ? 1 : name === 'lon' ? 2 : 0;
  }
  const layout = { keys, kinds };
  if (layouts.size < MAX_CACHED_SENTENCES || cached !== undefined) layouts.set(sentence, layout);
  return layout;
}

export function parseNmea(line: string, out: Fields): string | undefined {
  const text = line.trim();
  const start = text.charCodeAt(0);
  if (start !== 0x24 /* $ */ && start !== 0x21 /* ! */) return 'expected an NMEA sentence starting with "$" or "!"';
  const star = text.lastIndexOf('*');
  if (star === -1) return 'missing checksum (*hh)';
  const given = star === text.length - 3 ? (hexDigit(text.charCodeAt(star + 1)) << 4) | hexDigit(text.charCodeAt(star + 2)) : -1;
  if (given < 0) return `bad checksum field "*${text.slice(star + 1, star + 4)}"`;
  let sum = 0;
  for (let i = 1; i < star; i++) sum ^= text.charCodeAt(i);
  if (given !== sum) return `checksum mismatch: line says ${hex(given)}, data gives ${hex(sum)}`;

  const parts = text.slice(1, star).split(',');
  const address = parts[0] as string;
  if (!/^[A-Z0-9]{3,}$/.test(address)) return `bad sentence address "${address.slice(0, 12)}"`;
  // proprietary sentences (PGRME, PUBX) have no talker id; the others drop theirs (GP, GN, II, AI)
  const sentence = address.startsWith('P') || address.length < 5 ? address : address.slice(2);
  const { keys, kinds } = layoutOf(sentence, parts.length);
  for (let i = 1; i < parts.length; i++) {
    const value = parts[i] as string;
    const kind = kinds[i];
    if (kind === 0) {
      if (value !== '') out.add(keys[i] as string, value);
      continue;
    }
    const hemisphere = parts[i + 1] ?? '';
    if (value !== '' || hemisphere !== '') {
      const degrees = toDegrees(value, hemisphere, kind === 1 ? 'lat' : 'lon');
      if (typeof degrees === 'string') return `${sentence} ${degrees}`;
      out.add(keys[i] as string, degrees);
    }
    i++;
  }
  return undefined;
}

/** 0-15, or a negative number (so that a bad digit makes the whole checksum negative) */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -256;
}

function hex(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}

const LAT = /^(\d{2})(\d{2}(?:\.\d+)?)$/;
const LON = /^(\d{3})(\d{2}(?:\.\d+)?)$/;

/** "4807.038","N" → 48.1173; ddmm.mmm (latitude) or dddmm.mmm (longitude), negative south and west */
function toDegrees(value: string, hemisphere: string, which: 'lat' | 'lon'): number | string {
  const m = (which === 'lat' ? LAT : LON).exec(value);
  const word = which === 'lat' ? 'latitude' : 'longitude';
  if (m === null) return `${word} "${value.slice(0, 16)}" is not ${which === 'lat' ? 'ddmm.mmm' : 'dddmm.mmm'}`;
  const minutes = Number(m[2]);
  const degrees = Number(m[1]) + minutes / 60;
  if (minutes >= 60 || degrees > (which === 'lat' ? 90 : 180)) return `${word} "${value}" is out of range`;
  const sign = hemisphere === (which === 'lat' ? 'N' : 'E') ? 1 : hemisphere === (which === 'lat' ? 'S' : 'W') ? -1 : undefined;
  if (sign === undefined) return `${word} needs its hemisphere (${which === 'lat' ? 'N or S' : 'E or W'}), got "${hemisphere.slice(0, 4)}"`;
  // to 1e-8 degree (about 1 mm): what a receiver resolves, without the float noise of the division
  return (sign * Math.round(degrees * 1e8)) / 1e8;
}
