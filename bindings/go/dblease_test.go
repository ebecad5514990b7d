package dblease

// These tests need a running dbleased (tests/integration/test_go.sh starts
// one) and check connectivity with psql and redis-cli through os/exec: the
// module has no third-party dependencies, so no database driver.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func needDaemon(t *testing.T) {
	t.Helper()
	c, err := testClient()
	if err == nil {
		_ = c
		return
	}
	if os.Getenv("DBLEASE_SOCKET") != "" { // asked for one: its absence is a failure
		t.Fatal(err)
	}
	t.Skipf("no dbleased: %v", err)
}

func psql(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	out, err := exec.Command("psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustSQL(t *testing.T, url, sql string) string {
	t.Helper()
	out, err := psql(t, url, sql)
	if err != nil {
		t.Fatalf("psql %q: %v: %s", sql, err, out)
	}
	return out
}

func TestSocketPath(t *testing.T) {
	t.Setenv("DBLEASE_SOCKET", "/x/y.sock")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/7")
	if p := SocketPath(); p != "/x/y.sock" {
		t.Errorf("DBLEASE_SOCKET: %s", p)
	}
	t.Setenv("DBLEASE_SOCKET", "")
	if p := SocketPath(); p != "/run/user/7/dblease/dblease.sock" {
		t.Errorf("XDG: %s", p)
	}
	t.Setenv("XDG_RUNTIME_DIR", "relative")
	want := fmt.Sprintf("/tmp/dblease-%d/dblease.sock", os.Getuid())
	if os.Getuid() == 0 {
		want = "/run/dblease/dblease.sock"
	}
	if p := SocketPath(); p != want {
		t.Errorf("fallback: %s, want %s", p, want)
	}
}

func TestHashDirMatchesThePythonPackage(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "a.sql"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(d, ".hidden"), []byte("ignored"), 0o644)
	os.Mkdir(filepath.Join(d, "sub"), 0o755)
	os.WriteFile(filepath.Join(d, "sub", "b.sql"), nil, 0o644)
	os.Mkdir(filepath.Join(d, "__pycache__"), 0o755)
	os.WriteFile(filepath.Join(d, "__pycache__", "a.pyc"), []byte("varies"), 0o644)
	got, err := HashDir(d)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("a.sql\x00x\x00" + "sub/b.sql\x00\x00"))
	if want := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("HashDir = %s, want %s", got, want)
	}
}

func TestEachPostgresIsItsOwnDatabase(t *testing.T) {
	needDaemon(t)
	a, b := Postgres(t), Postgres(t)
	mustSQL(t, a, "CREATE TABLE t (x int)")
	if n := mustSQL(t, b, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"); n != "0" {
		t.Errorf("b sees a's table: %s", n)
	}
}

func TestParallelTestsAreIsolated(t *testing.T) {
	needDaemon(t)
	for i := 0; i < 8; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			url := Postgres(t)
			mustSQL(t, url, "CREATE TABLE users (email text UNIQUE); INSERT INTO users VALUES ('ada@example.org')")
		})
	}
}

func leaseIDs(t *testing.T) []string {
	c, _ := testClient()
	s, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var leases []struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(s["leases"], &leases)
	var ids []string
	for _, l := range leases {
		ids = append(ids, l.ID)
	}
	return ids
}

func TestLeaseIsReleasedWhenTheTestEnds(t *testing.T) {
	needDaemon(t)
	var l *Lease
	t.Run("inner", func(t *testing.T) { l = LeaseFor(t, LeaseOptions{TTL: time.Minute}) })
	for _, id := range leaseIDs(t) {
		if id == l.ID {
			t.Fatalf("lease %s still live after its test ended", l.ID)
		}
	}
	if out, err := psql(t, l.URL, "SELECT 1"); err == nil {
		t.Errorf("released lease still connects: %s", out)
	}
}

func TestRedis(t *testing.T) {
	needDaemon(t)
	url := Redis(t)
	out, err := exec.Command("redis-cli", "--no-auth-warning", "-u", url, "SET", "k", "1", "NX").Output()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("redis-cli: %v: %s", err, out)
	}
}

func TestErrorsCarryTheDaemonCode(t *testing.T) {
	needDaemon(t)
	c, _ := testClient()
	_, err := c.Lease(context.Background(), LeaseOptions{Template: "no_such_template"})
	var e *Error
	if !errors.As(err, &e) || e.Code != "unknown_template" {
		t.Fatalf("want unknown_template, got %v", err)
	}
	if err := c.Release(context.Background(), "L-0000000000000000", false); !errors.As(err, &e) || e.Code != "not_found" {
		t.Fatalf("want not_found, got %v", err)
	}
	if _, err := Dial(context.Background(), filepath.Join(t.TempDir(), "none.sock"), ""); !errors.As(err, &e) ||
		e.Code != "unreachable" || !strings.Contains(e.Message, "DBLEASE_SOCKET") {
		t.Fatalf("want unreachable with a hint, got %v", err)
	}
}

func TestRenew(t *testing.T) {
	needDaemon(t)
	l := LeaseFor(t, LeaseOptions{TTL: time.Minute})
	c, _ := testClient()
	at, err := c.Renew(context.Background(), l.ID, 10*time.Minute)
	if err != nil || at.Unix() < l.ExpiresAt+500 {
		t.Fatalf("renew: %v %v", at, err)
	}
}

func TestTemplateMigratesOnceAndAbandonsOnFailure(t *testing.T) {
	needDaemon(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "001.sql"), []byte("CREATE TABLE users (email text UNIQUE)"), 0o644)
	name := fmt.Sprintf("go_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if err := EnsureTemplate(context.Background(), name, dir, func(string) error {
		return errors.New("migrations said no")
	}); err == nil || !strings.Contains(err.Error(), "migrations said no") {
		t.Fatalf("failed migrate: %v", err)
	}
	var runs int32
	migrate := func(url string) error {
		atomic.AddInt32(&runs, 1)
		_, err := psql(t, url, "CREATE TABLE users (email text UNIQUE)")
		return err
	}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); Template(t, name, dir, migrate) }()
	}
	wg.Wait()
	if runs != 1 {
		t.Fatalf("migrate ran %d times", runs)
	}
	url := Postgres(t, WithTemplate(name))
	if n := mustSQL(t, url, "SELECT count(*) FROM users"); n != "0" {
		t.Errorf("users: %s", n)
	}
}

// claim takes the migration claim on a new template (hash "h1") on a
// connection of its own, closed when the test ends.
func claim(t *testing.T, prefix string) (string, *Client, *TemplateInfo) {
	t.Helper()
	name := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano()%1e9)
	c, err := Dial(context.Background(), "", prefix+" owner")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ti, err := c.TemplateEnsure(context.Background(), name, "h1", 0)
	if err != nil || ti.State != "migrate" || ti.URL == "" {
		t.Fatalf("ensure %s: %+v %v", name, ti, err)
	}
	return name, c, ti
}

func TestTemplateClaimIsSharedAcrossConnections(t *testing.T) {
	needDaemon(t)
	ctx := context.Background()
	name, a, ta := claim(t, "go_claim")
	b, err := Dial(ctx, "", "claim b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan *TemplateInfo)
	go func() { tb, _ := b.TemplateEnsure(ctx, name, "h1", 30*time.Second); done <- tb }()
	mustSQL(t, ta.URL, "CREATE TABLE x (y int)")
	if _, err := a.TemplateFinalize(ctx, name, "h1", true); err != nil {
		t.Fatal(err)
	}
	if tb := <-done; tb == nil || tb.State != "ready" {
		t.Fatalf("waiter: %+v", tb)
	}
}

func releasedCount(t *testing.T, c *Client) (released int64, leasedOf func(string) int) {
	s, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var counters struct {
		Released int64 `json:"leases_released"`
	}
	var pools []struct {
		Template string `json:"template"`
		Leased   int    `json:"leased"`
	}
	_ = json.Unmarshal(s["counters"], &counters)
	_ = json.Unmarshal(s["pools"], &pools)
	return counters.Released, func(name string) int {
		for _, p := range pools {
			if p.Template == name {
				return p.Leased
			}
		}
		return -1
	}
}

func TestLeaseGivenUpIsReleasedWhenItArrives(t *testing.T) {
	needDaemon(t)
	ctx := context.Background()
	name, owner, _ := claim(t, "go_late")
	c, _ := testClient()
	before, _ := releasedCount(t, c)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	// Waits in the daemon for the template while our context gives up.
	if _, err := c.Lease(short, LeaseOptions{Template: name, Wait: 20 * time.Second}); err == nil {
		t.Fatal("lease returned before the template was ready")
	}
	if _, err := owner.TemplateFinalize(ctx, name, "h1", true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		released, leasedOf := releasedCount(t, c)
		if released > before && leasedOf(name) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %s: %d leased, %d released since; want the late lease released",
				name, leasedOf(name), released-before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExpiryArrivesAsAnEvent(t *testing.T) {
	needDaemon(t)
	c, err := Dial(context.Background(), "", "expiry")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.Lease(context.Background(), LeaseOptions{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-c.Events:
		if ev.Event != "lease_expired" || ev.Lease != l.ID {
			t.Fatalf("event %+v, want lease_expired for %s", ev, l.ID)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no lease_expired event")
	}
}
