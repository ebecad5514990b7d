'use strict';
// dblease for Node: isolated PostgreSQL and Redis databases from dbleased.
// The functions below share one connection per process (see Client for
// your own); the leases they take end when the process exits.
const { Client, DbleaseError, socketPath } = require('./lib/client.cjs');
const { template, hashDir } = require('./lib/template.cjs');
const { endPool } = require('./lib/pg.cjs');

let shared;
function defaultClient() {
  if (!shared || shared._closed) shared = new Client({ unrefWhenIdle: true });
  return shared;
}

module.exports = {
  Client,
  DbleaseError,
  socketPath,
  template,
  hashDir,
  endPool,
  defaultClient,
  lease: (opts) => defaultClient().lease(opts),
  release: (id, opts) => defaultClient().release(id, opts),
  renew: (id, opts) => defaultClient().renew(id, opts),
  status: () => defaultClient().status(),
};
