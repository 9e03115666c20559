package wsrelay

import (
	"bytes"
	"github.com/synckairos/synckairos/fullstate"
	"strconv"
)

// Message prefixes as the scripts write them (lua/README.md): the type is
// always the first field, so a prefix test classifies a payload without
// parsing it.
var (
	prefixUpdate  = []byte(`{"type":"STATE_UPDATE"`)
	prefixDelta   = []byte(`{"type":"STATE_DELTA"`)
	prefixDeleted = []byte(`{"type":"SESSION_DELETED"`)

	keyVersion   = []byte(`"version":`)
	keyLife      = []byte(`"life":`)
	keyTimestamp = []byte(`"timestamp":`)
)

// Fixed ERROR replies.
var (
	errMalformed       = errorMessage("INVALID_MESSAGE", "message is not a JSON object with a type")
	errUnknownType     = errorMessage("UNKNOWN_MESSAGE_TYPE", "supported types: PING, RECONNECT")
	errSessionNotFound = errorMessage("SESSION_NOT_FOUND", "session not found")
	errStateUnavail    = errorMessage("INTERNAL_ERROR", "state unavailable, retry RECONNECT")
	errBusy            = errorMessage("BUSY", "server busy, retry RECONNECT")
)

func errorMessage(code, msg string) []byte {
	return []byte(`{"type":"ERROR","code":"` + code + `","message":"` + msg + `"}`)
}

// authOKMessage is AUTH_OK{expires_at}: the replacement token's end (ms).
func authOKMessage(ms int64) []byte {
	b := append(make([]byte, 0, 48), `{"type":"AUTH_OK","expires_at":`...)
	b = strconv.AppendInt(b, ms, 10)
	return append(b, '}')
}

// connectedMessage is CONNECTED{sessionId,timestamp}.
func connectedMessage(id string, ts int64) []byte {
	return append(appendHead(make([]byte, 0, 96), "CONNECTED", id, ts), '}')
}

// sessionDeletedMessage is SESSION_DELETED{sessionId,timestamp}, for a
// delete the relay found itself (the script's own is forwarded as is).
func sessionDeletedMessage(id string, ts int64) []byte {
	return append(appendHead(make([]byte, 0, 96), "SESSION_DELETED", id, ts), '}')
}

// stateMessage is STATE_UPDATE or STATE_SYNC (fullstate.StateMessage).
func stateMessage(typ, id string, ts int64, at stamp, state []byte) []byte {
	return fullstate.StateMessage(typ, id, ts, at.life, at.version, state)
}

// appendHead appends the fields every relay message about a session opens
// with, {"type":typ,"sessionId":id,"timestamp":ts, leaving the object open.
func appendHead(b []byte, typ, id string, ts int64) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","sessionId":"`...)
	b = append(b, id...)
	b = append(b, `","timestamp":`...)
	return strconv.AppendInt(b, ts, 10)
}

// pongMessage is PONG{timestamp} with the client's client_timestamp echoed
// when it sent one (raw JSON, already validated by the decoder).
func pongMessage(ts int64, clientTS []byte) []byte {
	b := make([]byte, 0, 80+len(clientTS))
	b = append(b, `{"type":"PONG","timestamp":`...)
	b = strconv.AppendInt(b, ts, 10)
	if len(clientTS) > 0 {
		b = append(b, `,"client_timestamp":`...)
		b = append(b, clientTS...)
	}
	return append(b, '}')
}

// stamp orders the states of one session id: by life, then version
// (lua/README.md "Lives").
type stamp struct{ life, version int64 }

// stampOf reads the stamp of a message or state.
func stampOf(b []byte) stamp { return stamp{scanInt(b, keyLife), scanInt(b, keyVersion)} }

// after says whether a state stamped a is newer than one stamped b. A
// session from before lives (life 0) starts afresh at version 1: its id
// was reused after a delete or TTL.
func (a stamp) after(b stamp) bool {
	if a.life != b.life {
		return a.life > b.life
	}
	return a.version > b.version || a.life == 0 && a.version == 1
}

// scanInt returns the integer after the first occurrence of key, or 0. The
// scripts put "timestamp", "version" and "life" before any nested object,
// and in a full state they precede metadata, so the first occurrence is
// the top-level field.
func scanInt(b, key []byte) int64 {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0
	}
	var n int64
	for _, c := range b[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
