#!/usr/bin/env node
// After tsc: the command line gets its run bit. tsc writes every file 0644,
// and npm sets the bit only where it links the bin (a global or dependent
// install), so ./dist/gateway/cli/main.js in a checkout would not run.
import { chmodSync } from 'node:fs';

chmodSync(new URL('../dist/gateway/cli/main.js', import.meta.url), 0o755);
