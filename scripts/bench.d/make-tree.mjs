// Writes a synthetic root filesystem tree for the benchmark images: `files`
// files summing to `megabytes` MB under usr/share/bench/dNNN/ (100 per
// directory, like a distro's /usr). Content compresses like a real layer:
// each file is part pseudo-random (AES-CTR of zeros: incompressible) and part
// word salad (about 3:1 under gzip), so gzip and pull rates mean something.
// Deterministic for the same arguments.
//
//   node make-tree.mjs <dir> <files> <megabytes> [seed]
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, filesArg, mbArg, seedArg = '1'] = process.argv.slice(2);
const files = Number(filesArg);
const total = Number(mbArg) * 1024 * 1024;
const key = createHash('sha256').update(`stowage bench ${seedArg}`).digest().subarray(0, 16);
const prng = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
const random = (n) => prng.update(Buffer.alloc(n));

// 4 MiB of word salad to take slices from.
const words = ('the of and to in is that for it as with was on be by this are or from at an not have which but all ' +
  'function return const value string error import export package module config image layer build step cache ' +
  'registry digest manifest snapshot overlay mount user namespace process file directory path buffer stream ' +
  'if else for while switch case break continue default struct type interface class public private static void int').split(' ');
const salad = Buffer.alloc(4 << 20);
{
  const idx = random(salad.length);
  let at = 0;
  for (let i = 0; at < salad.length; i++) {
    const w = words[idx[i] % words.length] + (idx[i] % 13 === 0 ? '\n' : ' ');
    at += salad.write(w, at);
  }
}

const size = Math.floor(total / files);
const randomPart = Math.floor(size * 0.4);
for (let i = 0; i < files; i++) {
  const d = join(dir, 'usr', 'share', 'bench', `d${String(Math.floor(i / 100)).padStart(4, '0')}`);
  if (i % 100 === 0) mkdirSync(d, { recursive: true });
  const buf = Buffer.allocUnsafe(size);
  random(randomPart).copy(buf, 0);
  for (let at = randomPart; at < size; ) {
    const off = (i * 7919 + at) % (salad.length - 65536);
    at += salad.copy(buf, at, off, off + Math.min(65536, size - at));
  }
  writeFileSync(join(d, `f${String(i).padStart(6, '0')}`), buf, { mode: 0o644 });
}
console.log(JSON.stringify({ dir, files, bytes: size * files }));
