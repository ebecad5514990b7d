// Package dblease leases isolated PostgreSQL and Redis databases from
// dbleased, speaking its NDJSON protocol (proto/PROTOCOL.md) over the Unix
// socket with the standard library only.
//
// In tests, use Postgres(t) and Redis(t); Client is the layer beneath.
package dblease

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Our read timeout must outlast the daemon's wait_ms (PROTOCOL.md §5).
const replyMargin = 30 * time.Second

const defaultWaitMS = 10000

// Error is a failed request. Code is the daemon's error code (PROTOCOL.md §8),
// or "unreachable" (no daemon on the socket), "disconnected" (the connection
// ended) or "protocol" (a reply we could not read).
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Retryable reports pool_exhausted and timeout: try again later.
func (e *Error) Retryable() bool { return e.Code == "pool_exhausted" || e.Code == "timeout" }

// Lease is one isolated database. Never log URL or Password.
type Lease struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Template   string `json:"template"`
	URL        string `json:"url"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	DBName     string `json:"dbname,omitempty"`
	Schema     string `json:"schema,omitempty"`
	DB         *int   `json:"db,omitempty"`
	User       string `json:"user"`
	Password   string `json:"password"`
	ExpiresAt  int64  `json:"expires_at"`
	TTLSeconds int    `json:"ttl_s"`
	Detached   bool   `json:"detached"`
}

// LeaseOptions are the lease op's arguments; zero values take the daemon's defaults.
type LeaseOptions struct {
	Kind     string        // "postgres" (default) or "redis"
	Template string        // default: the empty built-in template
	TTL      time.Duration // whole seconds
	Wait     time.Duration // how long to queue when nothing is ready
	Detach   bool
}

// Event is unsolicited news about a lease (lease_expired, instance_down).
type Event struct {
	Event string `json:"event"`
	Lease string `json:"lease"`
	Kind  string `json:"kind,omitempty"`
}

type reply struct {
	raw map[string]json.RawMessage
	err error
}

// Client is one connection to dbleased, safe for concurrent use: requests
// are pipelined and matched to replies by id. Closing it ends its attached
// leases.
type Client struct {
	conn     net.Conn
	writeMu  sync.Mutex
	mu       sync.Mutex
	nextID   int64
	pending  map[int64]chan reply
	closed   error
	defaults struct {
		WaitMS int `json:"wait_ms"`
	}
	// Events receives lease events; it is never closed and drops events when full.
	Events chan Event
}

// SocketPath is where dbleased listens, by the CLI's rule: DBLEASE_SOCKET,
// $XDG_RUNTIME_DIR/dblease/dblease.sock, /run/dblease/dblease.sock for root,
// else /tmp/dblease-$UID/dblease.sock.
func SocketPath() string {
	if p := os.Getenv("DBLEASE_SOCKET"); p != "" {
		return p
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && x[0] == '/' {
		return x + "/dblease/dblease.sock"
	}
	if os.Getuid() == 0 {
		return "/run/dblease/dblease.sock"
	}
	return fmt.Sprintf("/tmp/dblease-%d/dblease.sock", os.Getuid())
}

// Dial connects to socketPath (SocketPath() when empty) and says hello.
func Dial(ctx context.Context, socketPath, clientName string) (*Client, error) {
	if socketPath == "" {
		socketPath = SocketPath()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, &Error{"unreachable", fmt.Sprintf("cannot connect to dbleased at %s (%v); "+
			"start it (dbleased), or set DBLEASE_SOCKET to where it listens", socketPath, err)}
	}
	c := &Client{conn: conn, pending: map[int64]chan reply{}, Events: make(chan Event, 64)}
	go c.readLoop()
	if clientName == "" {
		clientName = fmt.Sprintf("go pid %d", os.Getpid())
	}
	r, err := c.Do(ctx, "hello", map[string]any{"proto": 1, "client": clientName})
	if err != nil {
		c.Close()
		return nil, err
	}
	if d, ok := r["defaults"]; ok {
		_ = json.Unmarshal(d, &c.defaults)
	}
	return c, nil
}

// Close ends the connection; the daemon ends its attached leases.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) readLoop() {
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 64*1024), 16<<20) // a status reply may be large
	var err error
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err = json.Unmarshal(sc.Bytes(), &m); err != nil {
			err = &Error{"protocol", "dbleased sent a line that is not a JSON object"}
			break
		}
		c.dispatch(m)
	}
	if err == nil {
		err = sc.Err()
	}
	if err == nil || !errors.As(err, new(*Error)) {
		err = &Error{"disconnected", "dbleased closed the connection; is it stopping?"}
	}
	c.conn.Close()
	c.mu.Lock()
	c.closed = err
	for id, ch := range c.pending {
		ch <- reply{err: err}
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

func (c *Client) dispatch(m map[string]json.RawMessage) {
	if _, isReply := m["ok"]; !isReply {
		if _, isEvent := m["event"]; isEvent {
			var ev Event
			if json.Unmarshal(mustJSON(m), &ev) == nil {
				select {
				case c.Events <- ev:
				default:
				}
			}
		}
		return
	}
	var id int64
	if json.Unmarshal(m["id"], &id) != nil {
		return // a reply without our id: nothing waits for it
	}
	c.mu.Lock()
	ch := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- reply{raw: m}
	}
}

func mustJSON(m map[string]json.RawMessage) []byte {
	b, _ := json.Marshal(m)
	return b
}

// Do sends one request and returns the reply's keys; a failed reply is an *Error.
func (c *Client) Do(ctx context.Context, op string, args map[string]any) (map[string]json.RawMessage, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.closed != nil {
		c.mu.Unlock()
		return nil, c.closed
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	msg := map[string]any{"id": id, "op": op}
	for k, v := range args {
		msg[k] = v
	}
	line, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	c.writeMu.Lock()
	_, err = c.conn.Write(append(line, '\n'))
	c.writeMu.Unlock()
	if err != nil {
		return nil, &Error{"disconnected", fmt.Sprintf("lost the connection to dbleased during %s: %v", op, err)}
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		return checkReply(r.raw)
	case <-ctx.Done():
		if op == "lease" {
			go c.releaseLate(ch) // the daemon may still grant it
		} else {
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
		}
		return nil, &Error{"timeout", fmt.Sprintf("no reply to %s from dbleased: %v", op, ctx.Err())}
	}
}

// releaseLate waits for the reply to a lease nobody waits for any more and
// releases what it grants: on a shared connection, it would otherwise live
// until its TTL. It ends when the reply comes or the connection closes.
func (c *Client) releaseLate(ch chan reply) {
	r := <-ch
	if r.err != nil {
		return
	}
	var l struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(r.raw["lease"], &l) == nil && l.ID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), replyMargin)
		defer cancel()
		_ = c.Release(ctx, l.ID, false)
	}
}

func checkReply(m map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	var ok bool
	_ = json.Unmarshal(m["ok"], &ok)
	if ok {
		return m, nil
	}
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(m["error"], &e)
	if e.Code == "" {
		e.Code = "internal"
	}
	return nil, &Error{e.Code, e.Message}
}

// waitContext bounds a request that may queue in the daemon for wait.
func (c *Client) waitContext(ctx context.Context, wait time.Duration) (context.Context, context.CancelFunc) {
	if wait == 0 {
		wait = time.Duration(c.defaults.WaitMS) * time.Millisecond
		if wait == 0 {
			wait = defaultWaitMS * time.Millisecond
		}
	}
	return context.WithTimeout(ctx, wait+replyMargin)
}

// Lease takes an isolated database.
func (c *Client) Lease(ctx context.Context, o LeaseOptions) (*Lease, error) {
	args := map[string]any{}
	if o.Kind != "" {
		args["kind"] = o.Kind
	}
	if o.Template != "" {
		args["template"] = o.Template
	}
	if o.TTL > 0 {
		args["ttl_s"] = int(o.TTL / time.Second)
	}
	if o.Wait > 0 {
		args["wait_ms"] = int(o.Wait / time.Millisecond)
	}
	if o.Detach {
		args["detach"] = true
	}
	ctx, cancel := c.waitContext(ctx, o.Wait)
	defer cancel()
	r, err := c.Do(ctx, "lease", args)
	if err != nil {
		return nil, err
	}
	var l Lease
	if err := json.Unmarshal(r["lease"], &l); err != nil || l.ID == "" || l.URL == "" {
		return nil, &Error{"protocol", "dbleased replied to lease without an id and url"}
	}
	return &l, nil
}

// Release ends a lease now; clean promises the database is unchanged.
func (c *Client) Release(ctx context.Context, id string, clean bool) error {
	args := map[string]any{"lease": id}
	if clean {
		args["clean"] = true
	}
	_, err := c.Do(ctx, "release", args)
	return err
}

// Renew extends a lease to ttl from now and returns the new expiry.
func (c *Client) Renew(ctx context.Context, id string, ttl time.Duration) (time.Time, error) {
	args := map[string]any{"lease": id}
	if ttl > 0 {
		args["ttl_s"] = int(ttl / time.Second)
	}
	r, err := c.Do(ctx, "renew", args)
	if err != nil {
		return time.Time{}, err
	}
	var at int64
	if err := json.Unmarshal(r["expires_at"], &at); err != nil {
		return time.Time{}, &Error{"protocol", "renew reply without expires_at"}
	}
	return time.Unix(at, 0), nil
}

// Status returns the daemon's status object (pools, instances, leases, …).
func (c *Client) Status(ctx context.Context) (map[string]json.RawMessage, error) {
	r, err := c.Do(ctx, "status", nil)
	if err != nil {
		return nil, err
	}
	delete(r, "ok")
	delete(r, "id")
	return r, nil
}
