package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestForEach(t *testing.T) {
	errA := errors.New("a")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name      string
		ctx       context.Context
		n, par    int
		fail      func(i int) error
		wantErr   func(error) bool
		wantCalls int64 // -1: any number up to n
	}{
		{"all run", context.Background(), 100, 8, func(int) error { return nil }, func(e error) bool { return e == nil }, 100},
		{"one worker stops at the error", context.Background(), 100, 1,
			func(i int) error {
				if i == 3 {
					return errA
				}
				return nil
			}, func(e error) bool { return errors.Is(e, errA) }, 4},
		{"errors of different types", context.Background(), 100, 4,
			func(i int) error {
				if i%2 == 0 {
					return errA
				}
				return fmt.Errorf("b %d", i)
			}, func(e error) bool { return e != nil }, -1},
		{"ended context", cancelled, 10, 2, func(int) error { return nil }, func(e error) bool { return errors.Is(e, context.Canceled) }, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int64
			seen := make([]atomic.Int32, c.n)
			err := forEach(c.ctx, c.n, c.par, func(i int) error {
				calls.Add(1)
				seen[i].Add(1)
				return c.fail(i)
			})
			if !c.wantErr(err) {
				t.Errorf("err = %v", err)
			}
			if got := calls.Load(); c.wantCalls >= 0 && got != c.wantCalls || got > int64(c.n) {
				t.Errorf("%d calls, want %d", got, c.wantCalls)
			}
			for i := range seen {
				if n := seen[i].Load(); n > 1 {
					t.Errorf("item %d ran %d times", i, n)
				}
			}
		})
	}
}
