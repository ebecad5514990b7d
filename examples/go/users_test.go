package users

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"dblease.dev/dblease"
)

const email = "ada@example.org"

// TestMain migrates once; other test binaries running at the same time wait
// for it in the daemon, then every test leases a clone.
func TestMain(m *testing.M) {
	if err := dblease.EnsureTemplate(context.Background(), "example_users_go", "migrations", migrate); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// migrate stands in for your migration tool; it must close its connections.
func migrate(url string) error {
	db, err := openPG(url)
	if err != nil {
		return err
	}
	defer db.Close()
	files, _ := filepath.Glob("migrations/*.sql")
	sort.Strings(files)
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if _, err := db.Exec(string(body)); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// openPG opens a lease URL with lib/pq, which asks for SSL unless told not
// to; dblease's servers listen on 127.0.0.1 without it.
func openPG(url string) (*sql.DB, error) {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return sql.Open("postgres", url+sep+"sslmode=disable")
}

// newStore gives the test its own PostgreSQL and Redis databases.
func newStore(t *testing.T) (*Store, *Redis) {
	db, err := openPG(dblease.Postgres(t, dblease.WithTemplate("example_users_go")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // runs before the lease's release: cleanups are LIFO
	cache, err := DialRedis(dblease.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	return &Store{DB: db, Cache: cache}, cache
}

// Every test signs up the same email: with one shared database all but one
// would fail on the unique index.
func TestSignupThenCachedLookup(t *testing.T) {
	for i := 0; i < 10; i++ {
		i := i
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			s, cache := newStore(t)
			id, err := s.Create(email, fmt.Sprintf("Ada %d", i))
			if err != nil || id != 1 { // a fresh table: the first id
				t.Fatalf("create: id %d, %v", id, err)
			}
			if u, err := s.Get(id); err != nil || u.Name != fmt.Sprintf("Ada %d", i) {
				t.Fatalf("get: %+v %v", u, err)
			}
			if n, err := cache.Do("DBSIZE"); err != nil || n != int64(1) { // a fresh Redis: only our key
				t.Fatalf("dbsize: %v %v", n, err)
			}
			if _, err := s.DB.Exec("DELETE FROM users"); err != nil {
				t.Fatal(err)
			}
			if u, err := s.Get(id); err != nil || u.Email != email { // served from the cache
				t.Fatalf("cached get: %+v %v", u, err)
			}
		})
	}
}

func TestDuplicateEmailIsRejected(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	if _, err := s.Create(email, "Ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(email, "Impostor"); err != ErrDuplicateEmail {
		t.Fatalf("want ErrDuplicateEmail, got %v", err)
	}
}
