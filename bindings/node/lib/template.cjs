'use strict';
// Client-driven template migrations (PROTOCOL.md "Templates"): the first
// worker to ask migrates, the others wait for it, all then lease clones.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Client, DbleaseError } = require('./client.cjs');

// Every file under dir, as sorted relative paths ('/'-separated), so that
// the hash does not depend on the order the file system lists them in.
function listFiles(dir, rel = '') {
  const out = [];
  for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${ent.name}` : ent.name;
    if (ent.isDirectory()) out.push(...listFiles(dir, r));
    else if (ent.isFile()) out.push(r);
  }
  return out.sort();
}

// SHA-256 of the names and contents of a migration directory: renaming,
// adding or editing a migration makes a new template version.
function hashDir(dir) {
  const h = crypto.createHash('sha256');
  const files = listFiles(dir);
  if (files.length === 0) throw new Error(`dblease.template: ${dir} has no files to hash; pass {hash} or a directory of migrations`);
  for (const f of files) {
    h.update(f).update('\0');
    h.update(fs.readFileSync(path.join(dir, f))).update('\0');
  }
  return h.digest('hex');
}

// Per process: one ensure per name + hash, however many test files ask.
const done = new Map();

// Makes sure template `name` exists at this version; runs `migrate(url)`
// if this process got the claim. Resolves with {name, hash}; leases then
// take `template: name`.
function template(name, { hash, dir, wait = 120000, socket } = {}, migrate) {
  if (!hash && !dir) throw new TypeError('dblease.template(name, {hash} or {dir}, migrate): give a hash or a migration directory');
  if (typeof migrate !== 'function') throw new TypeError('dblease.template(name, opts, migrate): migrate(url) must be a function');
  const h = hash || hashDir(dir);
  const key = `${name}\0${h}`;
  if (!done.has(key)) {
    const p = ensure(name, h, wait, socket, migrate);
    done.set(key, p);
    p.catch(() => done.delete(key)); // a failed attempt may be retried
  }
  return done.get(key);
}

// The claim belongs to the connection, so it gets its own and closes it.
async function ensure(name, hash, wait, socket, migrate) {
  const c = new Client({ socket, clientName: `node template ${name}` });
  try {
    const t = await c.templateEnsure(name, hash, { wait });
    if (t.state === 'ready') return { name, hash };
    if (t.state !== 'migrate')
      throw new DbleaseError('protocol', `template.ensure answered state "${t.state}", which this package does not know`);
    try {
      await migrate(t.url, t);
    } catch (err) {
      await c.templateFinalize(name, hash, { ok: false }).catch(() => {});
      throw err;
    }
    await c.templateFinalize(name, hash, { ok: true });
    return { name, hash };
  } finally {
    await c.close();
  }
}

module.exports = { template, hashDir };
