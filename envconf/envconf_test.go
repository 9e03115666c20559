package envconf

import (
	"reflect"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	t.Parallel()
	const def = "default"
	tests := []struct {
		name, value string
		read        func(*Reader) any
		want        any
		err         string
	}{
		{"str unset", "", func(r *Reader) any { return r.Str("V", def) }, def, ""},
		{"str blank", "  \t", func(r *Reader) any { return r.Str("V", def) }, def, ""},
		{"str trimmed", " a b ", func(r *Reader) any { return r.Str("V", def) }, "a b", ""},
		{"int unset", "", func(r *Reader) any { return r.Int("V", 7) }, int64(7), ""},
		{"int", " 42 ", func(r *Reader) any { return r.Int("V", 7) }, int64(42), ""},
		{"int zero", "0", func(r *Reader) any { return r.Int("V", 7) }, int64(0), ""},
		{"int negative", "-1", func(r *Reader) any { return r.Int("V", 7) }, int64(7), `V: want a non-negative integer, got "-1"`},
		{"int junk", "4x", func(r *Reader) any { return r.Int("V", 7) }, int64(7), `V: want a non-negative integer, got "4x"`},
		{"range inside", "60000", func(r *Reader) any { return r.IntRange("V", 10, 1, 60000) }, int64(60000), ""},
		{"range below", "0", func(r *Reader) any { return r.IntRange("V", 10, 1, 60000) }, int64(10), `V: want an integer in [1, 60000], got "0"`},
		{"range above", "60001", func(r *Reader) any { return r.IntRange("V", 10, 1, 60000) }, int64(10), `V: want an integer in [1, 60000], got "60001"`},
		{"range junk", "1s", func(r *Reader) any { return r.IntRange("V", 10, 1, 60000) }, int64(10), `V: want an integer in [1, 60000], got "1s"`},
		{"bool unset", "", func(r *Reader) any { return r.Bool("V", true) }, true, ""},
		{"bool false", "false", func(r *Reader) any { return r.Bool("V", true) }, false, ""},
		{"bool 0", "0", func(r *Reader) any { return r.Bool("V", true) }, false, ""},
		{"bool junk", "yes", func(r *Reader) any { return r.Bool("V", true) }, true, `V: want true or false, got "yes"`},
		{"duration unset", "", func(r *Reader) any { return r.Duration("V", time.Second) }, time.Second, ""},
		{"duration", "1m30s", func(r *Reader) any { return r.Duration("V", time.Second) }, 90 * time.Second, ""},
		{"duration zero", "0s", func(r *Reader) any { return r.Duration("V", time.Second) }, time.Second,
			`V: want a positive duration such as 1m or 500ms, got "0s"`},
		{"duration no unit", "5", func(r *Reader) any { return r.Duration("V", time.Second) }, time.Second,
			`V: want a positive duration such as 1m or 500ms, got "5"`},
		{"list unset", "", func(r *Reader) any { return r.List("V", []string{"*"}) }, []string{"*"}, ""},
		{"list", " a , ,b,", func(r *Reader) any { return r.List("V", []string{"*"}) }, []string{"a", "b"}, ""},
		{"list of commas", ",,", func(r *Reader) any { return r.List("V", []string{"*"}) }, []string(nil), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := New(func(name string) string {
				if name != "V" {
					t.Errorf("read %q", name)
				}
				return tt.value
			})
			if got := tt.read(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
			var got string
			if err := r.Err(); err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Errorf("err = %q, want %q", got, tt.err)
			}
		})
	}
}

// TestReaderCollects: every problem is kept, in order, with Invalid's too.
func TestReaderCollects(t *testing.T) {
	t.Parallel()
	env := map[string]string{"A": "x", "B": "y", "C": "z"}
	r := New(func(k string) string { return env[k] })
	r.Int("A", 0)
	r.Bool("B", false)
	r.Invalid("C", "want one of p, q")
	r.Str("D", "")
	want := "A: want a non-negative integer, got \"x\"\nB: want true or false, got \"y\"\nC: want one of p, q"
	if err := r.Err(); err == nil || err.Error() != want {
		t.Errorf("Err = %v, want %s", err, want)
	}
	if err := New(func(string) string { return "" }).Err(); err != nil {
		t.Errorf("nothing read: %v", err)
	}
}
