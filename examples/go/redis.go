package users

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Redis is a minimal RESP client (Debian 12 packages no Go Redis client
// that this example could use offline): enough for a cache.
type Redis struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialRedis opens redis://[user]:password@host:port/db.
func DialRedis(rawURL string) (*Redis, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	c := &Redis{conn: conn, r: bufio.NewReader(conn)}
	if pw, ok := u.User.Password(); ok {
		if _, err := c.Do("AUTH", pw); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if _, err := c.Do("SELECT", db); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Redis) Close() error { return c.conn.Close() }

// Do sends a command; the reply is a string, an int64 or nil.
func (c *Redis) Do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, fmt.Errorf("redis: %s", line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", line)
}

func (c *Redis) Get(key string) (string, bool, error) {
	v, err := c.Do("GET", key)
	if err != nil || v == nil {
		return "", false, err
	}
	return v.(string), true, nil
}

func (c *Redis) SetEX(key, value string, seconds int) error {
	_, err := c.Do("SET", key, value, "EX", strconv.Itoa(seconds))
	return err
}
