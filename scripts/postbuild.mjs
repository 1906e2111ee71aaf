#!/usr/bin/env node
// After tsc: the command line gets its run bit. tsc writes every file 0644,
// and npm sets the bit only where it links the bin (a global or dependent
// install), so ./dist/gateway/cli/main.js in a checkout would not run.
// The status page's static files are copied next to the module that serves them.
import { chmodSync, cpSync } from 'node:fs';

chmodSync(new URL('../dist/gateway/cli/main.js', import.meta.url), 0o755);
cpSync(new URL('../gateway/outputs/http/page/', import.meta.url), new URL('../dist/gateway/outputs/http/page/', import.meta.url), { recursive: true });
