// Benchmark of a pull (P4): RegistryClient.pull of one image into a fresh
// content store (index → manifest → config → layers, 3 at a time, digests
// verified while streaming, fsync + rename), as `stowage build` pulls a base.
//
//   node pull.mjs <store-dir> <reference>
// Prints one JSON line: { seconds, bytes (manifest + config + layers, compressed) }.
// The registry client comes from STOWAGE_REGISTRY_MODULE (a bundle of packages/registry-client).
import { performance } from 'node:perf_hooks';

const [storeDir, ref] = process.argv.slice(2);
const { ContentStore, RegistryClient } = await import(process.env.STOWAGE_REGISTRY_MODULE);
const store = await ContentStore.open(storeDir);
const client = new RegistryClient({ store });
const t0 = performance.now();
const image = await client.pull(ref);
const seconds = (performance.now() - t0) / 1000;
const layers = image.manifest.layers.reduce((s, l) => s + l.size, 0);
console.log(JSON.stringify({ seconds, bytes: layers + image.manifest.config.size, layers: image.manifest.layers.length }));
