// What npm users get: no runtime dependencies, every documented entry resolves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const require = createRequire(import.meta.url);

test('no runtime dependencies, Node >= 18', () => {
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.engines.node, '>=18');
});

test('every entry resolves (self-reference through exports)', () => {
  for (const sub of ['dblease', 'dblease/jest', 'dblease/jest/global'])
    assert.ok(fs.existsSync(require.resolve(sub)), sub);
  // import.meta.resolve is Node >= 20.6; the ESM-only entries are checked below too.
  if (typeof import.meta.resolve === 'function')
    for (const sub of ['dblease', 'dblease/vitest', 'dblease/vitest/global'])
      assert.ok(fs.existsSync(new URL(import.meta.resolve(sub))), sub);
  for (const [, entry] of Object.entries(pkg.exports))
    if (typeof entry === 'object') for (const f of Object.values(entry)) assert.ok(fs.existsSync(new URL(`../${f}`, import.meta.url)), f);
});
