// The binding against a real dbleased (tests/integration/test_node.sh starts
// it and sets DBLEASE_SOCKET). Run alone: node --test bindings/node/test
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dblease, { Client, DbleaseError, lease, release, renew, status, socketPath } from '../index.mjs';
import cjs from '../index.cjs';

// psql is what the integration suite uses to prove a URL works.
function sql(url, q) {
  return execFileSync('psql', [url, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', q], { encoding: 'utf8' }).trim();
}

test('ESM and CommonJS give the same objects', () => {
  assert.equal(cjs.lease, lease);
  assert.equal(cjs.Client, Client);
  assert.equal(dblease.status, status);
});

test('socket path follows the CLI rule', () => {
  assert.equal(socketPath({ DBLEASE_SOCKET: '/x/s' }, 1000), '/x/s');
  assert.equal(socketPath({ DBLEASE_SOCKET: '', XDG_RUNTIME_DIR: '/run/user/7' }, 7), '/run/user/7/dblease/dblease.sock');
  assert.equal(socketPath({ XDG_RUNTIME_DIR: 'relative' }, 0), '/run/dblease/dblease.sock');
  assert.equal(socketPath({}, 1000), '/tmp/dblease-1000/dblease.sock');
});

test('lease gives a working postgres URL; release ends it', async () => {
  const l = await lease({ ttl: 60 });
  assert.match(l.id, /^L-[0-9a-f]{16}$/);
  assert.equal(l.kind, 'postgres');
  assert.ok(l.dbname && l.user && l.password && l.port > 0);
  assert.ok(l.expiresAt instanceof Date && l.expiresAt > new Date());
  assert.equal(sql(l.url, 'select current_database()'), l.dbname);
  const st = await status();
  assert.ok(st.leases.some((x) => x.id === l.id), 'status lists the lease');
  await release(l.id);
  await assert.rejects(release(l.id), (e) => e instanceof DbleaseError && e.code === 'not_found');
});

test('renew moves expiresAt; errors carry the daemon code', async () => {
  const l = await lease({ ttl: 5 });
  const at = await renew(l.id, { ttl: 600 });
  assert.ok(at.getTime() - l.expiresAt.getTime() > 500_000);
  await assert.rejects(renew(l.id, { ttl: -1 }), { code: 'bad_request' });
  await assert.rejects(lease({ template: 'no-such-template' }), { code: 'unknown_template' });
  await release(l, { clean: true });
});

test('requests are pipelined: a waiting request does not hold up status', async (t) => {
  // One connection holds a template claim; another's ensure of it waits.
  const holder = new Client();
  const waiter = new Client();
  t.after(() => Promise.all([holder.close(), waiter.close()]));
  const name = `node_pipe_${process.pid}`; // a new template on every run
  const claim = await holder.templateEnsure(name, 'v1');
  assert.equal(claim.state, 'migrate');
  const waiting = waiter.templateEnsure(name, 'v1', { wait: 20000 });
  const t0 = Date.now();
  const st = await waiter.status();
  assert.ok(Date.now() - t0 < 2000, 'status answered while ensure waits');
  assert.ok(st.templates.some((x) => x.name === name && x.state === 'building'));
  await holder.templateFinalize(name, 'v1');
  assert.equal((await waiting).state, 'ready');
});

test('closing the connection ends its attached leases', async () => {
  const c = new Client();
  const l = await c.lease();
  await c.close();
  const deadline = Date.now() + 10000;
  while ((await status()).leases.some((x) => x.id === l.id)) {
    assert.ok(Date.now() < deadline, 'lease still listed 10 s after close');
    await new Promise((r) => setTimeout(r, 20));
  }
  await assert.rejects(c.status(), { code: 'disconnected' });
});

test('lease_expired arrives as an event', async (t) => {
  const c = new Client();
  t.after(() => c.close());
  const got = new Promise((resolve) => c.once('lease_expired', resolve));
  const l = await c.lease({ ttl: 1 });
  const ev = await got;
  assert.equal(ev.lease, l.id);
});

test('an unreachable daemon is a DbleaseError with code unreachable', async () => {
  const c = new Client({ socket: '/nonexistent/dblease.sock' });
  await assert.rejects(c.status(), (e) => e.code === 'unreachable' && /DBLEASE_SOCKET/.test(e.message));
});

test('a client that found no daemon connects once there is one', async () => {
  const real = socketPath();
  const c = new Client({ socket: '/nonexistent/dblease.sock' });
  await assert.rejects(c.status(), { code: 'unreachable' });
  c.socketPath = real; // as if the daemon had come up there
  assert.ok(Array.isArray((await c.status()).leases));
  await c.close();
});
