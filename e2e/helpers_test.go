// Package e2e holds the black-box tests: they build the service, run it
// as processes (one, several, killed, restarted) against the machine's
// Redis and PostgreSQL or private servers, and talk to it over HTTP and
// WebSocket only. Tests of one package sit beside it; the root package
// tests the wiring in process.
package e2e

import (
	"os"
	"testing"

	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/sessiontest"
)

// sessions deletes the sessions the tests create on the shared Redis when
// each test ends, and fails the run if one was left without a TTL.
var sessions = sessiontest.New(servertest.RedisAddr())

func TestMain(m *testing.M) { os.Exit(sessions.Run(m)) }

// doReq sends one request and tracks the session a create made.
func doReq(t testing.TB, method, url, body string, hdr ...string) servertest.Resp {
	t.Helper()
	r, err := servertest.Try(method, url, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	if id := servertest.CreatedSession(method, url, r); id != "" {
		sessions.Track(t, id)
	}
	return r
}
