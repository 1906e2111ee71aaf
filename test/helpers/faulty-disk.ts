// A segment file whose writes fail on cue, through the disk buffer's open
// hook: short writes (what a filling filesystem returns without an error),
// ENOSPC, failed syncs. Files are numbered in the order they are opened, from
// 1; the probe file of a buffer in memory mode counts as a file too.
import { openForAppend, type OpenForAppend } from '../../gateway/buffer/segments.js';

/** what the next write does: a number of bytes written (a short write when below the length), or an error */
export type WriteFault = number | 'enospc' | undefined;

export interface WriteAt { file: number; write: number; path: string; length: number }

export const enospc = (): Error => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

export class FaultyDisk {
  /** every write and sync fails with ENOSPC */
  full = false;
  syncFails = false;
  truncateFails = false;
  /** decides each write that `full` does not */
  rule: (w: WriteAt) => WriteFault = () => undefined;
  files = 0;
  /** writes that were short, and writes that failed */
  shortWrites = 0;
  failedWrites = 0;

  readonly open: OpenForAppend = async (path) => {
    const f = await openForAppend(path);
    const file = ++this.files;
    let write = 0;
    return {
      write: async (buf, offset, length, position) => {
        const fault = this.full ? 'enospc' : this.rule({ file, write: write++, path, length });
        if (fault === 'enospc') { this.failedWrites++; throw enospc(); }
        if (fault !== undefined && fault < length) {
          this.shortWrites++;
          return f.write(buf, offset, fault, position);
        }
        return f.write(buf, offset, length, position);
      },
      datasync: () => (this.full || this.syncFails ? Promise.reject(enospc()) : f.datasync()),
      truncate: (len) => (this.truncateFails ? Promise.reject(enospc()) : f.truncate(len)),
      close: () => f.close(),
    };
  };
}
