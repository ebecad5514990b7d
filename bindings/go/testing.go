package dblease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Tests may queue behind other parallel tests for a ready database.
const testWait = 60 * time.Second

// Option changes what Postgres and Redis lease.
type Option func(*LeaseOptions)

// WithTemplate leases from a template (see Template); default $DBLEASE_TEMPLATE.
func WithTemplate(name string) Option { return func(o *LeaseOptions) { o.Template = name } }

// WithTTL sets the lease's lifetime (whole seconds).
func WithTTL(d time.Duration) Option { return func(o *LeaseOptions) { o.TTL = d } }

// WithWait sets how long to queue for a ready database (default 60 s).
func WithWait(d time.Duration) Option { return func(o *LeaseOptions) { o.Wait = d } }

var (
	sharedMu sync.Mutex
	shared   *Client
)

// testClient is this test binary's one connection; its leases are attached,
// so a test process that dies leaks nothing.
func testClient() (*Client, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.mu.Lock()
		broken := shared.closed != nil
		shared.mu.Unlock()
		if !broken {
			return shared, nil
		}
	}
	c, err := Dial(context.Background(), "", fmt.Sprintf("go test %s pid %d", os.Args[0], os.Getpid()))
	if err != nil {
		return nil, err
	}
	shared = c
	return c, nil
}

// LeaseFor takes a lease for tb and releases it through tb.Cleanup.
func LeaseFor(tb testing.TB, o LeaseOptions) *Lease {
	tb.Helper()
	c, err := testClient()
	if err != nil {
		tb.Fatalf("dblease: %v", err)
	}
	if o.Wait == 0 {
		o.Wait = testWait
	}
	l, err := c.Lease(context.Background(), o)
	if err != nil {
		tb.Fatalf("dblease: could not lease a %s database: %v", o.Kind, err)
	}
	tb.Cleanup(func() {
		err := c.Release(context.Background(), l.ID, false)
		var e *Error
		if err != nil && !(errors.As(err, &e) && e.Code == "not_found") { // not_found: its TTL ended it
			tb.Errorf("dblease: release %s: %v", l.ID, err)
		}
	})
	return l
}

func leaseOptions(kind string, opts []Option) LeaseOptions {
	o := LeaseOptions{Kind: kind}
	if kind == "postgres" {
		o.Template = os.Getenv("DBLEASE_TEMPLATE")
	}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Postgres returns the URL of a fresh PostgreSQL database for this test
// only, released when the test ends. Close your connections (db.Close())
// in an earlier-registered t.Cleanup or before returning.
func Postgres(tb testing.TB, opts ...Option) string {
	tb.Helper()
	return LeaseFor(tb, leaseOptions("postgres", opts)).URL
}

// Redis returns the URL of a fresh Redis database for this test only.
func Redis(tb testing.TB, opts ...Option) string {
	tb.Helper()
	return LeaseFor(tb, leaseOptions("redis", opts)).URL
}

// Template runs EnsureTemplate for a test and returns name, to pass to
// WithTemplate; it fails the test if the migrations fail.
func Template(tb testing.TB, name, dir string, migrate func(url string) error) string {
	tb.Helper()
	if err := EnsureTemplate(context.Background(), name, dir, migrate); err != nil {
		tb.Fatalf("dblease: template %s: %v", name, err)
	}
	return name
}
