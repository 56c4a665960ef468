'use strict';
// `npm test`: node's built-in test runner (Node 18+).
const test = require('node:test');
const assert = require('node:assert');
const { plan, render } = require('./index');

test('next versions, highest first', () => {
  const rows = plan();
  assert.deepStrictEqual(rows.map((r) => `${r.name}@${r.to}`), [
    'attest@4.0.0',
    'controller@2.0.0-rc.4',
    'runner@1.5.0',
    'cli@0.9.13',
  ]);
});

test('cadence and sources', () => {
  const cli = plan().find((r) => r.name === 'cli');
  assert.strictEqual(cli.every, '2 days');
  assert.deepStrictEqual(cli.sources, ['src/cli.rs']);
  assert.match(render(plan()), /^attest {5}3\.1\.0 /);
});
