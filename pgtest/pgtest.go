// Package pgtest names the PostgreSQL the tests share: DATABASE_TEST_URL,
// or by default the machine's server with a passwordless user (DefaultURL).
// Tests work in a schema of their own (search_path), so parallel tests and
// concurrent runs never meet; a test that needs a proxy or a dead port in
// front of the server keeps the same user and database through Via.
package pgtest

import (
	"net"
	"net/url"
	"os"
	"strconv"
)

// DefaultURL is used when DATABASE_TEST_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL is the tests' PostgreSQL: DATABASE_TEST_URL, or DefaultURL.
func URL() string {
	if v := os.Getenv("DATABASE_TEST_URL"); v != "" {
		return v
	}
	return DefaultURL
}

// Addr is URL's host:port (port 5432 when it names none), for proxies.
func Addr() string {
	u := parse()
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}

// Via is URL with its host:port replaced by addr (a proxy, a dead port; ""
// keeps it) and search_path set to schema ("" sets none).
func Via(addr, schema string) string {
	u := parse()
	if addr != "" {
		u.Host = addr
	}
	if schema != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// With is URL with another user or database ("" keeps each), for tests of
// what the service does when PostgreSQL refuses them.
func With(user, database string) string {
	u := parse()
	if user != "" {
		u.User = url.User(user)
	}
	if database != "" {
		u.Path = "/" + database
	}
	return u.String()
}

func parse() *url.URL {
	u, err := url.Parse(URL())
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		panic("DATABASE_TEST_URL: want postgres://user@host:port/db, got " + strconv.Quote(URL()))
	}
	return u
}
