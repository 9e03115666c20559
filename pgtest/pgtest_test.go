package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestURLs(t *testing.T) {
	tests := []struct {
		name, env, got, want string
		fn                   func() string
	}{
		{name: "default", fn: URL, want: DefaultURL},
		{name: "override", env: "postgres://u:p@db.test:6000/x", fn: URL, want: "postgres://u:p@db.test:6000/x"},
		{name: "addr", fn: Addr, want: "127.0.0.1:5432"},
		{name: "addr without port", env: "postgres://u@db.test/x", fn: Addr, want: "db.test:5432"},
		{name: "via proxy and schema", fn: func() string { return Via("127.0.0.1:7", "s_1") },
			want: "postgres://postgres@127.0.0.1:7/test?search_path=s_1&sslmode=disable"},
		{name: "via keeps all", env: "postgres://u@h:1/d?sslmode=require", fn: func() string { return Via("", "") },
			want: "postgres://u@h:1/d?sslmode=require"},
		{name: "with user", fn: func() string { return With("nobody", "") },
			want: "postgres://nobody@127.0.0.1:5432/test?sslmode=disable"},
		{name: "with database", fn: func() string { return With("", "nodb") },
			want: "postgres://postgres@127.0.0.1:5432/nodb?sslmode=disable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DATABASE_TEST_URL", tt.env)
			if got := tt.fn(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBadURLPanics(t *testing.T) {
	t.Setenv("DATABASE_TEST_URL", "host=127.0.0.1 user=postgres")
	defer func() {
		if recover() == nil {
			t.Error("a key=value DSN did not panic")
		}
	}()
	Addr()
}

// TestReachable: the default (or DATABASE_TEST_URL) is a server the tests
// can use, so a wrong default fails here first.
func TestReachable(t *testing.T) {
	t.Parallel()
	c, err := pgx.Connect(context.Background(), URL())
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v (set DATABASE_TEST_URL)", URL(), err)
	}
	defer c.Close(context.Background())
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
