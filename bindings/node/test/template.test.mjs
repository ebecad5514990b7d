import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { template, hashDir, lease, release } from '../index.mjs';

function sql(url, q) {
  return execFileSync('psql', [url, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', q], { encoding: 'utf8' }).trim();
}

// New template names on every run: a template outlives this process.
const users = `node_users_${process.pid}`;
const broken = `node_broken_${process.pid}`;

function migrations(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dblease-mig-'));
  for (const [name, body] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), body);
  return dir;
}

test('hashDir depends on names and contents, not on listing order', () => {
  const a = migrations({ '001.sql': 'create table a();', '002.sql': 'create table b();' });
  const b = migrations({ '002.sql': 'create table b();', '001.sql': 'create table a();' });
  const c = migrations({ '001.sql': 'create table a();', '003.sql': 'create table b();' });
  assert.equal(hashDir(a), hashDir(b));
  assert.notEqual(hashDir(a), hashDir(c));
  assert.match(hashDir(a), /^[0-9a-f]{64}$/);
});

test('template migrates once across concurrent callers; leases are clones', async () => {
  const dir = migrations({ '001.sql': 'create table users (email text unique);' });
  let runs = 0;
  const migrate = async (url) => {
    runs++;
    sql(url, fs.readFileSync(path.join(dir, '001.sql'), 'utf8'));
  };
  // Two "workers": separate processes would do the same through the daemon.
  const [a, b] = await Promise.all([
    template(users, { dir }, migrate),
    template(users, { dir }, migrate),
  ]);
  assert.deepEqual(a, b);
  assert.equal(runs, 1);
  const l = await lease({ template: users });
  sql(l.url, "insert into users values ('a@example.com')");
  assert.equal(sql(l.url, 'select count(*) from users'), '1');
  await release(l.id);
});

test('a failing migration is abandoned and can be retried', async () => {
  await assert.rejects(template(broken, { hash: 'v1' }, async () => { throw new Error('boom'); }), /boom/);
  let ran = false;
  await template(broken, { hash: 'v1' }, async () => { ran = true; });
  assert.ok(ran, 'the retry got the claim');
});
