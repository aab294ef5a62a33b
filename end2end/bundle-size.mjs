// Fails when the first load (wasm + js + css, brotli) exceeds the budget; prints the figures.
// Usage: node bundle-size.mjs <site pkg dir> [budget KB] [hash file]
// With the hash file cargo-leptos writes beside the server (`hash-files`), the hashed names.
import { existsSync, readFileSync } from 'node:fs';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dir = process.argv[2] ?? '../target/site/pkg';
const budgetKb = Number(process.argv[3] ?? 200);
const hashFile = process.argv[4];
const hashes = hashFile && existsSync(hashFile)
  ? Object.fromEntries(readFileSync(hashFile, 'utf8').split('\n').filter((line) => line.includes(':')).map((line) => line.split(':').map((part) => part.trim())))
  : {};
const named = (kind) => (hashes[kind] ? `ndn.${hashes[kind]}.${kind}` : `ndn.${kind}`);
let total = 0;
for (const name of [named('wasm'), named('js'), named('css')]) {
  const bytes = readFileSync(`${dir}/${name}`);
  const brotli = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  total += brotli;
  console.log(`${name.padEnd(14)} raw ${(bytes.length / 1000).toFixed(1).padStart(6)} KB  gzip ${(gzipSync(bytes, { level: 9 }).length / 1000).toFixed(1).padStart(6)} KB  brotli ${(brotli / 1000).toFixed(1).padStart(6)} KB`);
}
console.log(`first load, brotli: ${(total / 1000).toFixed(1)} KB (budget ${budgetKb} KB)`);
if (total > budgetKb * 1000) {
  console.error(`bundle over budget: ${(total / 1000).toFixed(1)} KB > ${budgetKb} KB`);
  process.exit(1);
}
