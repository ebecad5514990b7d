import { EventEmitter } from 'node:events';

export type Kind = 'postgres' | 'redis';

export interface LeaseOptions {
  /** "postgres" (default) or "redis" */
  kind?: Kind;
  /** template name; the empty built-in "default" when left out */
  template?: string;
  /** lifetime in seconds (daemon default 900) */
  ttl?: number;
  /** how long to queue when nothing is ready, in ms (daemon default 10000) */
  wait?: number;
  /** outlive this connection (released by release() or the TTL) */
  detach?: boolean;
}

export interface Lease {
  id: string;
  kind: Kind;
  template: string;
  /** postgresql://… or redis://… ready to use */
  url: string;
  host: string;
  port: number;
  /** postgres only */
  dbname?: string;
  /** postgres with schema isolation only */
  schema?: string;
  /** redis only */
  db?: number;
  user: string;
  password: string;
  expiresAt: Date;
  ttl: number;
  detached: boolean;
}

export interface LeaseEvent {
  event: 'instance_down' | 'lease_expired' | string;
  lease: string;
  kind?: Kind;
}

/** A failed request; `code` is the daemon's error code (PROTOCOL.md §8) or
 *  unreachable | disconnected | timeout | protocol. */
export class DbleaseError extends Error {
  code: string;
  op?: string;
}

export interface TemplateState {
  name: string;
  hash: string;
  state: 'ready' | 'migrate' | 'abandoned' | string;
  url?: string;
  host?: string;
  port?: number;
  dbname?: string;
  user?: string;
  password?: string;
}

export interface ClientOptions {
  /** socket path; default as the CLI finds it (DBLEASE_SOCKET first) */
  socket?: string;
  /** shown in `dblease status` */
  clientName?: string;
}

/** One connection to dbleased; requests are pipelined. Attached leases end
 *  when it closes. Emits 'instance_down', 'lease_expired', 'event', 'close'. */
export class Client extends EventEmitter {
  constructor(opts?: ClientOptions);
  readonly socketPath: string;
  connect(): Promise<this>;
  request(op: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<Record<string, any>>;
  lease(opts?: LeaseOptions): Promise<Lease>;
  release(id: string | Lease, opts?: { clean?: boolean; force?: boolean }): Promise<void>;
  renew(id: string | Lease, opts?: { ttl?: number }): Promise<Date>;
  status(): Promise<Record<string, any>>;
  templateEnsure(name: string, hash: string, opts?: { wait?: number }): Promise<TemplateState>;
  templateFinalize(name: string, hash: string, opts?: { ok?: boolean }): Promise<TemplateState>;
  close(): Promise<void>;
  on(event: 'instance_down' | 'lease_expired' | 'event', listener: (e: LeaseEvent) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export function socketPath(env?: NodeJS.ProcessEnv, uid?: number): string;
export function lease(opts?: LeaseOptions): Promise<Lease>;
export function release(id: string | Lease, opts?: { clean?: boolean }): Promise<void>;
export function renew(id: string | Lease, opts?: { ttl?: number }): Promise<Date>;
export function status(): Promise<Record<string, any>>;
export function defaultClient(): Client;

/** Ensure template `name` at a version (a hash, or the SHA-256 of `dir`'s
 *  file names and contents); runs migrate(url) once across all workers. */
export function template(
  name: string,
  opts: { hash?: string; dir?: string; wait?: number; socket?: string },
  migrate: (url: string, t: TemplateState) => unknown | Promise<unknown>,
): Promise<{ name: string; hash: string }>;
export function hashDir(dir: string): string;

/** End a pg Pool (or Client) and wait until every socket is closed. */
export function endPool(pool: { end(): Promise<void> }, opts?: { timeoutMs?: number }): Promise<void>;

declare const dblease: {
  Client: typeof Client; DbleaseError: typeof DbleaseError; socketPath: typeof socketPath;
  lease: typeof lease; release: typeof release; renew: typeof renew; status: typeof status;
  template: typeof template; hashDir: typeof hashDir; endPool: typeof endPool; defaultClient: typeof defaultClient;
};
export default dblease;
