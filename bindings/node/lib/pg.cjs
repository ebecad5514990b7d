'use strict';
// Ending a `pg` Pool so that nothing is left when the lease is released.
//
// pg-pool's end() resolves once it has *asked* each client to end, before
// their sockets have closed. A release right after it makes the daemon end
// those sessions: the server sends 57P01 ("terminating connection due to
// administrator command"), which the already-removed client emits as an
// 'error' nobody listens to, and the test run fails. endPool waits until
// every socket is closed, and swallows errors that arrive while ending.

const ENDED = Symbol('dblease.ended');

function socketOf(client) {
  return client && client.connection && client.connection.stream;
}

function closed(client, timeoutMs) {
  const s = socketOf(client);
  if (!s || s.destroyed || s.readyState === 'closed') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => { s.destroy(); resolve(); }, timeoutMs);
    s.once('close', () => { clearTimeout(timer); resolve(); });
  });
}

function quiet(client) {
  if (typeof client.on === 'function') client.on('error', () => {});
}

// Ends a pg.Pool (or a single pg.Client) and resolves when all of its
// connections are closed. Safe to call twice.
async function endPool(pool, { timeoutMs = 5000 } = {}) {
  if (!pool || pool[ENDED]) return;
  pool[ENDED] = true;
  // pg-pool keeps its clients in _clients; a lone pg.Client is its own.
  const clients = Array.isArray(pool._clients) ? [...pool._clients] : [pool];
  clients.forEach(quiet);
  quiet(pool); // a pool re-emits its idle clients' errors
  await pool.end();
  await Promise.all(clients.map((c) => closed(c, timeoutMs)));
}

module.exports = { endPool };
