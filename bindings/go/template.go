package dblease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// A slow migration run by another process is worth waiting for; the daemon's cap is 10 min.
const templateWait = 120 * time.Second

// TemplateInfo is the template object of template.ensure / template.finalize.
// State "migrate" means this connection holds the claim: migrate URL, then finalize.
type TemplateInfo struct {
	Name     string `json:"name"`
	Hash     string `json:"hash"`
	State    string `json:"state"`
	URL      string `json:"url,omitempty"`
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	DBName   string `json:"dbname,omitempty"`
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
}

func (c *Client) templateOp(ctx context.Context, op string, args map[string]any) (*TemplateInfo, error) {
	r, err := c.Do(ctx, op, args)
	if err != nil {
		return nil, err
	}
	var t TemplateInfo
	if err := json.Unmarshal(r["template"], &t); err != nil || t.State == "" {
		return nil, &Error{"protocol", "dbleased replied to " + op + " without a template state"}
	}
	return &t, nil
}

// TemplateEnsure asks for template name at version hash (template.ensure).
func (c *Client) TemplateEnsure(ctx context.Context, name, hash string, wait time.Duration) (*TemplateInfo, error) {
	args := map[string]any{"template": name, "hash": hash}
	if wait > 0 {
		args["wait_ms"] = int(wait / time.Millisecond)
	}
	ctx, cancel := c.waitContext(ctx, wait)
	defer cancel()
	return c.templateOp(ctx, "template.ensure", args)
}

// TemplateFinalize ends this connection's claim: ok freezes the template, !ok abandons it.
func (c *Client) TemplateFinalize(ctx context.Context, name, hash string, ok bool) (*TemplateInfo, error) {
	return c.templateOp(ctx, "template.finalize", map[string]any{"template": name, "hash": hash, "ok": ok})
}

// HashDir is the hex SHA-256 of a migration directory: for every regular
// file under it, in byte order of its '/'-separated relative path: the path,
// NUL, the content, NUL. Names starting with '.' and __pycache__ are
// skipped. The Python and Node packages compute the same value, so that
// suites in several languages share a template.
func HashDir(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "__pycache__") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no files under %s: pass the directory that holds your migrations", dir)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, rel := range files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return "", err
		}
		h.Write([]byte(rel + "\x00"))
		h.Write(data)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var (
	templatesMu sync.Mutex
	templates   = map[string]bool{}
)

// EnsureTemplate makes template name exist at the version of dir: if this
// process gets the claim, migrate(url) runs against the template database
// (close its connections before returning) and the template is finalized;
// if migrate fails the claim is abandoned. Other processes wait meanwhile.
// Once per process per version; use it from TestMain, or Template from a test.
func EnsureTemplate(ctx context.Context, name, dir string, migrate func(url string) error) error {
	hash, err := HashDir(dir)
	if err != nil {
		return err
	}
	templatesMu.Lock()
	defer templatesMu.Unlock()
	if templates[name+"\x00"+hash] {
		return nil
	}
	c, err := Dial(ctx, "", fmt.Sprintf("go template %s pid %d", name, os.Getpid()))
	if err != nil {
		return err
	}
	defer c.Close() // the claim must live on this connection until finalize
	t, err := c.TemplateEnsure(ctx, name, hash, templateWait)
	if err != nil {
		return err
	}
	switch t.State {
	case "ready":
	case "migrate":
		if err := migrate(t.URL); err != nil {
			_, _ = c.TemplateFinalize(ctx, name, hash, false)
			return fmt.Errorf("migrating template %s: %w", name, err)
		}
		if _, err := c.TemplateFinalize(ctx, name, hash, true); err != nil {
			return err
		}
	default:
		return &Error{"protocol", fmt.Sprintf("template.ensure %s answered state %q; upgrade dblease", name, t.State)}
	}
	templates[name+"\x00"+hash] = true
	return nil
}
