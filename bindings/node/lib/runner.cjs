'use strict';
// What dblease/vitest and dblease/jest share: lease the databases a test
// file (or a worker) needs, put their URLs in process.env, give them back.
//
// Environment:
//   DBLEASE_SCOPE     file (default): a database per test file, released after it;
//                     worker: one per runner worker (VITEST_POOL_ID / JEST_WORKER_ID),
//                     shared by the files that worker runs, released by the global
//                     teardown (dblease/vitest/global) or when its TTL ends
//   DBLEASE_REDIS=1   also lease a Redis database: REDIS_URL
//   DBLEASE_TEMPLATE  lease postgres from this template (see dblease.template)
//   DBLEASE_TTL       lease lifetime in seconds (file: 900, worker: 3600)
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { isMainThread } = require('node:worker_threads');
const { Client } = require('./client.cjs');

function options(env = process.env) {
  const scope = env.DBLEASE_SCOPE || 'file';
  if (scope !== 'file' && scope !== 'worker')
    throw new Error(`DBLEASE_SCOPE=${scope}: use "file" (a database per test file) or "worker" (one per worker)`);
  const ttl = env.DBLEASE_TTL ? Number(env.DBLEASE_TTL) : scope === 'file' ? 900 : 3600;
  if (!Number.isInteger(ttl) || ttl < 1) throw new Error(`DBLEASE_TTL=${env.DBLEASE_TTL}: give a whole number of seconds`);
  return {
    scope,
    ttl,
    redis: env.DBLEASE_REDIS === '1' || env.DBLEASE_REDIS === 'true',
    template: env.DBLEASE_TEMPLATE || undefined,
  };
}

// The kinds to lease, each with the variable it fills.
function wants(opts) {
  const w = [{ kind: 'postgres', variable: 'DATABASE_URL', template: opts.template }];
  if (opts.redis) w.push({ kind: 'redis', variable: 'REDIS_URL' });
  return w;
}

// The test run this worker belongs to: the runner's main process is our
// parent (child-process workers, which have an IPC channel) or ourselves
// (worker threads; tests run in the main process, as jest --runInBand).
function runId() {
  return isMainThread && process.channel ? process.ppid : process.pid;
}

function stateDir() {
  const uid = process.getuid ? process.getuid() : 'u';
  const dir = path.join(os.tmpdir(), `dblease-runner-${uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function stateFile(run, worker) {
  return path.join(stateDir(), `${run}-${worker}.json`);
}

function workerId(env = process.env) {
  return env.VITEST_POOL_ID || env.JEST_WORKER_ID || '1';
}

let shared; // one connection per worker process
function client() {
  if (!shared || shared._closed) shared = new Client({ unrefWhenIdle: true, clientName: `node test ${process.pid} worker ${workerId()}` });
  return shared;
}

function setEnv(env, leases) {
  for (const l of leases) env[l.variable] = l.url;
}

// Per file: attached leases on this worker's connection, released after.
async function acquireFile(opts, env) {
  const c = client();
  const got = await Promise.allSettled(wants(opts).map(async (w) => ({ ...w, ...(await c.lease({ kind: w.kind, template: w.template, ttl: opts.ttl })) })));
  const leases = got.filter((g) => g.status === 'fulfilled').map((g) => g.value);
  const failed = got.find((g) => g.status === 'rejected');
  if (failed) {
    // Give back the half we got: this worker's connection lives on.
    await Promise.all(leases.map((l) => c.release(l.id).catch(() => {})));
    throw failed.reason;
  }
  setEnv(env, leases);
  return {
    leases,
    async release() {
      // A lease that already ended (TTL, instance_down) has nothing to give back.
      await Promise.all(leases.map((l) => c.release(l.id).catch((e) => { if (e.code !== 'not_found') throw e; })));
      for (const l of leases) if (env[l.variable] === l.url) delete env[l.variable];
    },
  };
}

// Per worker: detached leases recorded in a file, so that the next test
// file on the same worker (often a fresh process) finds and renews them.
async function acquireWorker(opts, env) {
  const c = client();
  const file = stateFile(runId(), workerId(env));
  let leases = null;
  try {
    leases = JSON.parse(fs.readFileSync(file, 'utf8'));
    await Promise.all(leases.map((l) => c.renew(l.id, { ttl: opts.ttl })));
  } catch (e) {
    if (e.code !== 'ENOENT' && e.code !== 'not_found' && !(e instanceof SyntaxError)) throw e;
    leases = null;
  }
  if (!leases) {
    leases = await Promise.all(wants(opts).map(async (w) => {
      const l = await c.lease({ kind: w.kind, template: w.template, ttl: opts.ttl, detach: true });
      return { variable: w.variable, kind: l.kind, id: l.id, url: l.url };
    }));
    fs.writeFileSync(file, JSON.stringify(leases), { mode: 0o600 });
  }
  setEnv(env, leases);
  return { leases, async release() {} }; // the global teardown or the TTL ends them
}

async function acquire(env = process.env) {
  const opts = options(env);
  return opts.scope === 'file' ? acquireFile(opts, env) : acquireWorker(opts, env);
}

// Global teardown: release the worker leases of this run (we are its main process).
async function releaseWorkers(run = process.pid) {
  let dir;
  try { dir = stateDir(); } catch { return; }
  const mine = fs.readdirSync(dir).filter((f) => f.startsWith(`${run}-`) && f.endsWith('.json'));
  if (mine.length === 0) return;
  const c = new Client({ clientName: `node test ${process.pid} teardown` });
  try {
    for (const f of mine) {
      const p = path.join(dir, f);
      let leases = [];
      try { leases = JSON.parse(fs.readFileSync(p, 'utf8')); } catch { /* half-written: nothing to release */ }
      await Promise.all(leases.map((l) => c.release(l.id).catch((e) => { if (e.code !== 'not_found') throw e; })));
      fs.rmSync(p, { force: true });
    }
  } finally {
    await c.close();
  }
}

module.exports = { acquire, options, releaseWorkers, workerId, runId, stateFile };
