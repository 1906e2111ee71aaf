// The status page in a real browser: Debian's chromium, driven headless by
// puppeteer-core, opens the page `edgegate demo` prints and must show the
// devices, their states and values that change, live, without a reload. The
// README's screenshot comes from here: UPDATE_SCREENSHOT=1 writes it to
// docs/status-page.png, otherwise it goes to a temp dir (a CI clone stays clean).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runCli, type CliProcess } from './helpers/gateway.js';
import { requirePeer, tempDir, waitFor, which } from './helpers/peers.js';

const enabled = requirePeer('chromium', 'the status page is checked in a real browser');

let demo: CliProcess | undefined;
let browser: Browser | undefined;
const tmp = tempDir('edgegate-page-');
test.after(async () => {
  await browser?.close().catch(() => undefined);
  await demo?.stop();
  tmp.remove();
});

// run in the page (strings: this project compiles without the DOM's types)
/** each device card's name, state badge and whether it is open */
const CARDS = `[...document.querySelectorAll('details.device')].map((d) => ({
  id: d.getAttribute('data-device'), state: d.querySelector('summary .badge')?.textContent, open: d.open }))`;
const BOTH_CONNECTED = `['sensor1', 'plc1'].every((id) =>
  document.querySelector('details[data-device="' + id + '"] summary .badge')?.textContent === 'connected')`;
const COUNTER = 'details[data-device="sensor1"] tr[data-tag="counter"] td.value';
const counterAbove = (v: number) => `Number(document.querySelector('${COUNTER}')?.textContent) > ${v}`;
const COUNTER_CHART = `(document.querySelector('details[data-device="sensor1"] tr[data-tag="counter"] polyline')
  ?.getAttribute('points') ?? '').split(' ').length >= 3`;
const PLC_CHARTS = `document.querySelectorAll('details[data-device="plc1"] polyline').length >= 2`;

if (enabled) {
  test('the demo\'s page shows the devices, their states and live values, and draws charts', async () => {
    demo = runCli(['demo', '--duration', '180']);
    await waitFor(() => /Status page: (http:\/\/\S+\/)/.test(demo!.stdout()), 60_000, 'the demo banner with the page URL');
    const url = /Status page: (http:\/\/\S+\/)/.exec(demo.stdout())![1]!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);

    browser = await puppeteer.launch({
      executablePath: which('chromium')!,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1000, height: 1000 });
    await page.goto(url, { waitUntil: 'domcontentloaded' });

    // both devices appear and connect (the OPC UA session takes a moment)
    await page.waitForFunction(BOTH_CONNECTED, { timeout: 60_000 });
    const seen = await page.evaluate(CARDS) as Array<{ id: string; state: string; open: boolean }>;
    assert.equal(seen.map((c) => [c.id, c.state, c.open]), [['sensor1', 'connected', true], ['plc1', 'connected', true]]);
    assert.is(await page.$eval('#live', (e) => e.textContent), 'live');
    assert.is(await page.$eval('#gw-id', (e) => e.textContent), 'demo');
    assert.match(await page.$eval('#gw-broker', (e) => e.textContent ?? ''), /^connected mqtt:\/\/127\.0\.0\.1:\d+$/);

    // values change without a reload: the serial counter moves, the page is the same document
    await page.waitForSelector(COUNTER, { timeout: 30_000 });
    const first = Number(await page.$eval(COUNTER, (e) => e.textContent));
    await page.waitForFunction(counterAbove(first), { timeout: 30_000 });
    assert.is(await page.evaluate(`performance.getEntriesByType('navigation').length`), 1);
    for (const tag of ['temperature', 'humidity', 'counter']) {
      assert.ok(await page.$(`details[data-device="sensor1"] tr[data-tag="${tag}"]`), `sensor1 shows ${tag}`);
    }
    assert.match(await page.$eval('details[data-device="sensor1"] tr[data-tag="temperature"] td.value', (e) => e.textContent ?? ''), /^\d+(\.\d+)? °C$/);
    assert.match(await page.$eval('details[data-device="sensor1"] .dev-meta', (e) => e.textContent ?? ''), /serial · since .* · [\d.]+ readings\/s · 0 parse errors/);
    // a chart of the counter once a few points are there (one per 2 s step)
    await page.waitForFunction(COUNTER_CHART, { timeout: 30_000 });
    await page.waitForFunction(PLC_CHARTS, { timeout: 30_000 });

    // the README's picture deserves a minute of history in its charts
    if (process.env.UPDATE_SCREENSHOT === '1') await new Promise((r) => setTimeout(r, 60_000));
    const shot = process.env.UPDATE_SCREENSHOT === '1' ? join(ROOT, 'docs', 'status-page.png') : join(tmp.dir, 'status-page.png');
    await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, `a screenshot in ${shot}`);

    // on a phone's width nothing runs off the side
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await page.waitForFunction(PLC_CHARTS, { timeout: 10_000 });
    assert.ok(await page.evaluate('document.documentElement.scrollWidth <= 390'), 'no horizontal scrolling at 390 px');
  });
}

test.run();
