'use strict';
// One connection to dbleased: NDJSON over its Unix socket (proto/PROTOCOL.md).
// Requests are pipelined and matched to replies by id; events are emitted.
const net = require('node:net');
const path = require('node:path');
const { EventEmitter } = require('node:events');

const PROTO = 1;
const MAX_REQUEST = 65536; // bytes per request line, not counting "\n"
const MARGIN_MS = 30000; // our read timeout is the daemon's wait plus this

// Where the daemon listens: the same rule as proto/paths.c and the CLI.
function socketPath(env = process.env, uid = process.getuid ? process.getuid() : -1) {
  if (env.DBLEASE_SOCKET) return env.DBLEASE_SOCKET;
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'dblease', 'dblease.sock');
  if (uid === 0) return '/run/dblease/dblease.sock';
  return `/tmp/dblease-${uid}/dblease.sock`;
}

// A failed request. `code` is the daemon's error code (PROTOCOL.md §8), or
// one of ours: `unreachable` (no daemon; the CLI's exit 69), `disconnected`,
// `timeout` (no reply in time), `protocol` (the daemon sent something odd).
class DbleaseError extends Error {
  constructor(code, message, op) {
    super(message);
    this.name = 'DbleaseError';
    this.code = code;
    if (op) this.op = op;
  }
}

// A lease as JavaScript likes it: camelCase, expiresAt as a Date.
function leaseFromWire(l) {
  const out = {
    id: l.id, kind: l.kind, template: l.template, url: l.url, host: l.host, port: l.port,
    user: l.user, password: l.password, expiresAt: new Date(l.expires_at * 1000),
    ttl: l.ttl_s, detached: l.detached,
  };
  if (l.dbname !== undefined) out.dbname = l.dbname;
  if (l.schema !== undefined) out.schema = l.schema;
  if (l.db !== undefined) out.db = l.db;
  return out;
}

// Drop keys left undefined: the daemon reads null as "default", but a clean
// request is easier to read in its log.
function compact(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) out[k] = v;
  return out;
}

class Client extends EventEmitter {
  constructor(opts = {}) {
    super();
    this.socketPath = opts.socket || socketPath();
    this.clientName = opts.clientName || `node ${process.pid}`;
    this.defaults = { wait_ms: 10000, ttl_s: 900, max_ttl_s: 86400 };
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer, op}
    this._buf = '';
    this._sock = null;
    this._connecting = null;
    this._closed = false;
    // A Client you create keeps the process alive until you close() it, as
    // a socket does. The shared ones (lease(), the test-runner entries) let
    // an idle process exit: that ends their attached leases, as intended.
    this._unrefWhenIdle = !!opts.unrefWhenIdle;
  }

  // Connects and says hello once; later calls return the same promise.
  connect() {
    if (!this._connecting) {
      // A daemon that was not up yet may be by the next call: try again then.
      this._connecting = this._open().catch((err) => {
        if (!this._sock) this._connecting = null;
        throw err;
      });
    }
    return this._connecting;
  }

  async _open() {
    await new Promise((resolve, reject) => {
      const sock = net.createConnection(this.socketPath);
      const onError = (err) => {
        reject(new DbleaseError('unreachable',
          `cannot reach dbleased at ${this.socketPath} (${err.code || err.message}); ` +
          'start it (dbleased) or point DBLEASE_SOCKET at its socket'));
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        sock.removeListener('error', onError);
        this._attach(sock);
        resolve();
      });
    });
    const hello = await this.request('hello', { proto: PROTO, client: this.clientName });
    if (hello.proto !== PROTO)
      throw new DbleaseError('proto_version', `dbleased speaks protocol ${hello.proto}, this package ${PROTO}`);
    if (hello.defaults) Object.assign(this.defaults, hello.defaults);
    this.server = hello;
    return this;
  }

  _attach(sock) {
    this._sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (chunk) => this._onData(chunk));
    sock.on('error', (err) => this._fail(new DbleaseError('disconnected', `dbleased connection failed: ${err.message}`)));
    sock.on('close', () => {
      this._fail(new DbleaseError('disconnected', 'dbleased closed the connection; its attached leases are over'));
      this.emit('close');
    });
    this._updateRef();
  }

  _onData(chunk) {
    this._buf += chunk;
    let nl;
    while ((nl = this._buf.indexOf('\n')) >= 0) {
      let line = this._buf.slice(0, nl);
      this._buf = this._buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.trim()) this._onLine(line);
    }
  }

  _onLine(line) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return this.emit('protocol_error', new DbleaseError('protocol', `dbleased sent a line that is not JSON: ${line.slice(0, 200)}`));
    }
    if (msg && typeof msg.event === 'string' && !('ok' in msg)) {
      this.emit('event', msg);
      // Only the events we know get their own name; PROTOCOL.md §7.
      if (msg.event === 'instance_down' || msg.event === 'lease_expired') this.emit(msg.event, msg);
      return;
    }
    const p = msg && msg.id !== undefined ? this._pending.get(msg.id) : undefined;
    if (!p) {
      // A reply without our id: line_too_long (which closes) or a bug.
      const e = msg && msg.error;
      return this.emit('protocol_error', new DbleaseError(e ? e.code : 'protocol', e ? e.message : `unexpected reply: ${line.slice(0, 200)}`));
    }
    this._settle(msg.id);
    if (msg.ok === true) p.resolve(msg);
    else {
      const e = msg.error || {};
      p.reject(new DbleaseError(e.code || 'internal', e.message || 'dbleased refused the request', p.op));
    }
  }

  _settle(id) {
    const p = this._pending.get(id);
    clearTimeout(p.timer);
    this._pending.delete(id);
    this._updateRef();
  }

  _fail(err) {
    this._closed = true;
    for (const [id, p] of [...this._pending]) {
      this._settle(id);
      p.reject(err);
    }
  }

  _updateRef() {
    if (!this._sock) return;
    if (this._pending.size > 0 || !this._unrefWhenIdle) this._sock.ref();
    else this._sock.unref();
  }

  // Sends one request and resolves with the daemon's reply (ok: true), or
  // rejects with a DbleaseError. `timeoutMs` bounds the wait for the reply.
  async request(op, args = {}, { timeoutMs } = {}) {
    if (op !== 'hello') await this.connect();
    if (this._closed || !this._sock)
      throw new DbleaseError('disconnected', 'the connection to dbleased is closed; create a new Client');
    const id = this._nextId++;
    const line = JSON.stringify({ id, op, ...compact(args) });
    if (Buffer.byteLength(line) > MAX_REQUEST)
      throw new DbleaseError('bad_request', `request ${op} is over ${MAX_REQUEST} bytes`, op);
    const limit = timeoutMs ?? this.defaults.wait_ms + MARGIN_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._settle(id);
        reject(new DbleaseError('timeout', `no reply to ${op} from dbleased in ${limit} ms`, op));
      }, limit);
      this._pending.set(id, { resolve, reject, timer, op });
      this._updateRef();
      this._sock.write(line + '\n');
    });
  }

  // Wait for a reply longer than the daemon may queue the request.
  _waitArgs(wait) {
    const w = wait ?? this.defaults.wait_ms;
    return { wait_ms: wait, timeoutMs: w + MARGIN_MS };
  }

  async lease({ kind, template, ttl, wait, detach } = {}) {
    const { wait_ms, timeoutMs } = this._waitArgs(wait);
    const r = await this.request('lease', { kind, template, ttl_s: ttl, wait_ms, detach }, { timeoutMs });
    return leaseFromWire(r.lease);
  }

  async release(id, { clean, force } = {}) {
    await this.request('release', { lease: typeof id === 'object' ? id.id : id, clean, force });
  }

  async renew(id, { ttl } = {}) {
    const r = await this.request('renew', { lease: typeof id === 'object' ? id.id : id, ttl_s: ttl });
    return new Date(r.expires_at * 1000);
  }

  async status() {
    const r = await this.request('status');
    delete r.id;
    delete r.ok;
    return r;
  }

  async templateEnsure(template, hash, { wait } = {}) {
    const { wait_ms, timeoutMs } = this._waitArgs(wait);
    const r = await this.request('template.ensure', { template, hash, wait_ms }, { timeoutMs });
    return r.template;
  }

  async templateFinalize(template, hash, { ok = true } = {}) {
    const r = await this.request('template.finalize', { template, hash, ok });
    return r.template;
  }

  // Closes the connection: every attached lease taken on it ends.
  close() {
    return new Promise((resolve) => {
      if (!this._sock || this._sock.destroyed) return resolve();
      this._sock.once('close', () => resolve());
      this._sock.end();
    });
  }
}

module.exports = { Client, DbleaseError, socketPath, leaseFromWire };
