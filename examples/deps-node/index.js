'use strict';
// airlock example `deps-node`: a release plan for a handful of packages, computed
// with npm dependencies that the runner provides offline from package-lock.json.

const ms = require('ms');
const semver = require('semver');
const picomatch = require('picomatch');
const debug = require('debug')('deps-node');

const PACKAGES = [
  { name: 'runner', version: '1.4.2', bump: 'minor', cadence: '14d', files: ['src/main.rs', 'README.md'] },
  { name: 'controller', version: '2.0.0-rc.3', bump: 'prerelease', cadence: '7d', files: ['src/api.rs'] },
  { name: 'cli', version: '0.9.12', bump: 'patch', cadence: '36h', files: ['docs/usage.md', 'src/cli.rs'] },
  { name: 'attest', version: '3.1.0', bump: 'major', cadence: '30d', files: ['tests/vectors.json'] },
];

/** Each package's next version, how often it ships, and which of its files are Rust sources. */
function plan(packages = PACKAGES, glob = 'src/**/*.rs') {
  const isSource = picomatch(glob);
  const rows = packages.map((p) => {
    const next = semver.inc(p.version, p.bump, 'rc');
    debug('%s %s -> %s', p.name, p.version, next);
    return {
      name: p.name,
      from: p.version,
      to: next,
      every: ms(ms(p.cadence), { long: true }),
      sources: p.files.filter((f) => isSource(f)),
    };
  });
  rows.sort((a, b) => semver.rcompare(a.to, b.to));
  return rows;
}

/** The plan as plain text, one line per package, highest next version first. */
function render(rows, paint = (s) => s) {
  return rows
    .map((r) => `${paint(r.name.padEnd(10))} ${r.from.padEnd(10)} -> ${r.to.padEnd(10)} every ${r.every.padEnd(8)} sources: ${r.sources.join(',') || '-'}`)
    .join('\n') + '\n';
}

module.exports = { PACKAGES, plan, render };
