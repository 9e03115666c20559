package main

import (
	"os"
	"testing"

	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/sessiontest"
)

// The root package tests the service as it is wired, in process, over
// real HTTP (api_*, auth_*, audit_*…). The engine's own tests are in
// engine/, the built binary's in e2e/.

// sessions deletes each session a test creates over HTTP on the machine's
// Redis when the test ends (running sessions never expire; doReq tracks
// every create), and TestMain fails the run if one was left without a TTL,
// or the audit flag set, anyway.
var sessions = sessiontest.New(servertest.RedisAddr())

func TestMain(m *testing.M) { os.Exit(sessions.Run(m)) }
