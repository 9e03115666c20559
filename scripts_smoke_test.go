package main

import (
	"context"
	"testing"
	"time"

	"github.com/synckairos/synckairos/session"
)

func TestSmoke(t *testing.T) {
	s, _ := newTestScripts(t)
	ctx := context.Background()
	for _, n := range []int{3, 100} {
		c := newConfig("per_participant", n, 60000)
		b, err := s.Create(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%.300s", b)
		b, err = s.Start(ctx, c.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		b, err = s.Switch(ctx, c.ID, session.SwitchArgs{})
		if err != nil {
			t.Fatal(err)
		}
		st := decodeState(t, b)
		t.Logf("%+v", st.Participants[:2])
		b, err = s.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Start(ctx, c.ID, 0)
		t.Log(err)
	}
}
