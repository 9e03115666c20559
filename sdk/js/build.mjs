// build.mjs: the ESM bundle (minified, no dependencies) and the .d.ts files.
// The bundle is also written into ../../webassets/, which the Go server
// embeds, so `go build` needs no npm; `node build.mjs --check` only
// compares a fresh build with that committed copy (exit 1 when stale).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const committed = join(here, '../../webassets/synckairos.js');

export async function bundle() {
  const r = await build({
    entryPoints: [join(here, 'src/index.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: true,
    write: false,
    legalComments: 'none',
    banner: { js: '// @synckairos/client (built from sdk/js/src by sdk/js/build.mjs)' },
  });
  return r.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const js = await bundle();
  if (process.argv.includes('--check')) {
    const old = readFileSync(committed, 'utf8');
    if (old !== js) {
      console.error('webassets/synckairos.js is stale: run `npm --prefix sdk/js run build` and commit it');
      process.exit(1);
    }
    console.log('webassets/synckairos.js matches a fresh build');
  } else {
    mkdirSync(join(here, 'dist'), { recursive: true });
    writeFileSync(join(here, 'dist/synckairos.js'), js);
    writeFileSync(committed, js);
    execFileSync(process.execPath, [join(here, 'node_modules/typescript/bin/tsc'), '-p', here], { stdio: 'inherit' });
    console.log(`built dist/ and webassets/synckairos.js (${js.length} bytes)`);
  }
}
