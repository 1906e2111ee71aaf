// The one BatchBuffer contract, passed by the memory queue and by the disk
// buffer in each mode that changes its path: batches in memory, written and
// synced first (always), written and read back from disk (outage, with a
// memory part so small that almost everything comes back from the files).
import { DiskBuffer, type DiskBufferOptions } from '../gateway/buffer/disk-buffer.js';
import { MemoryBuffer } from '../gateway/buffer/memory-buffer.js';
import { bufferContract } from './helpers/buffer-contract.js';
import { captureLog } from './helpers/mqtt-fixtures.js';
import { tempDir } from './helpers/peers.js';

bufferContract('MemoryBuffer', async ({ maxBytes }) => ({
  buffer: new MemoryBuffer({ maxBytes, log: captureLog().log }),
  maxBytes,
  cleanup: async () => undefined,
}));

function disk(name: string, over: Partial<DiskBufferOptions>, online: boolean): void {
  bufferContract(name, async ({ maxBytes }) => {
    const tmp = tempDir('edgegate-buffer-');
    const buffer = await DiskBuffer.open({
      dir: tmp.dir, maxBytes, durability: 'on_outage', fallbackBytes: maxBytes, log: captureLog().log, segmentBytes: Math.max(16 * 1024, maxBytes / 8),
      memoryBytes: Math.min(4 * 1024 * 1024, maxBytes / 8), spillBytes: Math.min(1024 * 1024, maxBytes / 16), ...over,
    });
    buffer.setOnline(online);
    return { buffer, maxBytes, cleanup: async () => { await buffer.close(); tmp.remove(); } };
  });
}

disk('DiskBuffer on_outage, broker up', {}, true);
disk('DiskBuffer always', { durability: 'always' }, true);
disk('DiskBuffer on_outage, broker away, read back from disk', { memoryBytes: 4096 }, false);
