// node-opcua 2.182 (its node-opcua-debug) loads `hexy`, an ES-module-only
// package, with require(). Node.js does that only since 20.19 and 22.12
// (process.features.require_module); older Node 20 releases — 20.11 is the
// newest official armv7 build — throw ERR_REQUIRE_ESM the moment the OPC UA
// client loads. There, hexy is imported as the ES module it is and put into
// require()'s cache under its own file name, so require("hexy") finds it
// loaded. Nothing changes on a Node.js that can require() ES modules.
import { createRequire, Module } from 'node:module';
import { pathToFileURL } from 'node:url';

let done: Promise<void> | undefined;

/** makes node-opcua loadable on Node.js < 20.19; call it before node-opcua is imported */
export function allowOpcuaOnOlderNode(): Promise<void> {
  done ??= (process.features as { require_module?: boolean }).require_module ? Promise.resolve() : preloadHexy();
  return done;
}

async function preloadHexy(): Promise<void> {
  let file: string;
  try {
    const here = createRequire(import.meta.url);
    const debug = createRequire(here.resolve('node-opcua-client')).resolve('node-opcua-debug');
    file = createRequire(debug).resolve('hexy');
  } catch {
    return; // node-opcua is not installed: nothing will require hexy
  }
  const cache = createRequire(import.meta.url).cache;
  if (cache[file]) return;
  const module = new Module(file);
  module.filename = file;
  module.exports = await import(pathToFileURL(file).href);
  module.loaded = true;
  cache[file] = module;
}
