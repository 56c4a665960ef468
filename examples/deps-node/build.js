'use strict';
// `npm run build`: writes dist/out.txt (deterministic) and prints it, coloured on a terminal.
//   node build.js [--out DIR] [--glob PATTERN]

const fs = require('node:fs');
const path = require('node:path');
const mri = require('mri');
const kleur = require('kleur');
const once = require('@tootallnate/once').default;
const { plan, render } = require('./index');

async function main() {
  const args = mri(process.argv.slice(2), { string: ['out', 'glob'], default: { out: 'dist', glob: 'src/**/*.rs' } });
  const rows = plan(undefined, args.glob);
  const outDir = path.resolve(__dirname, args.out);
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, 'out.txt');
  const stream = fs.createWriteStream(file);
  stream.end(render(rows));
  await once(stream, 'finish');
  process.stdout.write(render(rows, (s) => kleur.bold().cyan(s)));
  process.stderr.write(`wrote ${path.relative(process.cwd(), file)} (${fs.statSync(file).size} bytes)\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
