// Package users is the app under test: users in PostgreSQL, looked up
// through a Redis cache (the example Testcontainers tutorials use).
package users

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lib/pq"
)

var ErrDuplicateEmail = errors.New("email already registered")

type User struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Cache is the little of Redis the store needs.
type Cache interface {
	Get(key string) (string, bool, error)
	SetEX(key, value string, seconds int) error
}

type Store struct {
	DB    *sql.DB
	Cache Cache
}

func (s *Store) Create(email, name string) (int64, error) {
	var id int64
	err := s.DB.QueryRow("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name).Scan(&id)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" { // unique_violation
		return 0, ErrDuplicateEmail
	}
	return id, err
}

func (s *Store) Get(id int64) (*User, error) {
	key := fmt.Sprintf("user:%d", id)
	if hit, ok, err := s.Cache.Get(key); err != nil {
		return nil, err
	} else if ok {
		var u User
		return &u, json.Unmarshal([]byte(hit), &u)
	}
	var u User
	err := s.DB.QueryRow("SELECT id, email, name FROM users WHERE id = $1", id).Scan(&u.ID, &u.Email, &u.Name)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(u)
	return &u, s.Cache.SetEX(key, string(b), 60)
}
