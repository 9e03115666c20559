package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var updateLua = flag.Bool("update-lua", false, "rewrite lua/*.lua from lua/src")

// The scripts other languages load are lua/*.lua. They are built from
// lua/src/*.lua by pasting lua/src/include/<name>.lua at each
// "-- @include <name>" line, so shared helpers are written once; the
// helpers the script does not use are left out (see shake).
func buildLua(src []byte) ([]byte, error) {
	var out bytes.Buffer
	for line := range strings.Lines(string(src)) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "-- @include ")
		if !ok {
			out.WriteString(line)
			continue
		}
		inc, err := os.ReadFile(filepath.Join("lua", "src", "include", name+".lua"))
		if err != nil {
			return nil, err
		}
		out.WriteString("-- Generated from lua/src by `make lua`: edit the source, not this file.\n")
		out.WriteString(shake(string(inc), string(src)))
	}
	return out.Bytes(), nil
}

var (
	identRe = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
	localRe = regexp.MustCompile(`^local (?:function ([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_, ]*)=)`)
)

// shake returns the top-level definitions of include that the script
// (user) reaches, directly or through other definitions, in their order.
// Redis runs a script's whole body on every call, so every helper pasted
// in is a closure built per call (a switch spent ~26k instructions on
// ~40 of them). A definition is a top-level `local` statement with the
// comment above it; what it references is every identifier in it, which
// can keep too much but never too little.
func shake(include, user string) string {
	type def struct {
		names []string
		text  string
	}
	var defs []def
	var pre, pending strings.Builder // pending: comments awaiting their statement
	for line := range strings.Lines(include) {
		m := localRe.FindStringSubmatch(line)
		switch {
		case m != nil:
			names := []string{m[1]}
			if m[1] == "" {
				names = strings.Split(strings.ReplaceAll(m[2], " ", ""), ",")
			}
			defs = append(defs, def{names: names, text: pending.String() + line})
			pending.Reset()
		case len(defs) == 0 && pending.Len() == 0 && strings.HasPrefix(line, "--"):
			pre.WriteString(line) // the file's opening comment, up to a blank line
		case strings.HasPrefix(line, "--") || strings.TrimSpace(line) == "":
			pending.WriteString(line)
		default:
			defs[len(defs)-1].text += pending.String() + line
			pending.Reset()
		}
	}
	by := map[string]int{}
	for i, d := range defs {
		for _, n := range d.names {
			by[n] = i
		}
	}
	keep := make([]bool, len(defs))
	var visit func(text string)
	visit = func(text string) {
		for _, id := range identRe.FindAllString(text, -1) {
			if i, ok := by[id]; ok && !keep[i] {
				keep[i] = true
				visit(defs[i].text)
			}
		}
	}
	visit(user)
	out := &pre
	for i, d := range defs {
		if keep[i] {
			out.WriteString(d.text)
		}
	}
	return out.String()
}

func TestLuaGeneratedUpToDate(t *testing.T) {
	srcs, _ := filepath.Glob(filepath.Join("lua", "src", "*.lua"))
	if len(srcs) == 0 {
		t.Fatal("no sources in lua/src")
	}
	for _, src := range srcs {
		in, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		want, err := buildLua(in)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join("lua", filepath.Base(src))
		if *updateLua {
			if err := os.WriteFile(dst, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, _ := os.ReadFile(dst)
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make lua`", dst)
		}
	}
}

var (
	nameRe = regexp.MustCompile(`^([a-z][A-Za-z]+)-(\d+)\.lua$`)
	keysRe = regexp.MustCompile(`KEYS\[(\d+)\]`)
)

// TestLuaHeaders lints each script's header against its file name: the op
// opens the header, the header documents exactly N KEYS and every section,
// no KEYS[i] goes past N, and the script is embedded.
func TestLuaHeaders(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("lua", "*.lua"))
	for _, f := range files {
		base := filepath.Base(f)
		t.Run(base, func(t *testing.T) {
			m := nameRe.FindStringSubmatch(base)
			if m == nil {
				t.Fatalf("name %q is not <op>-<N>.lua", base)
			}
			n, _ := strconv.Atoi(m[2])
			body, _ := os.ReadFile(f)
			text := string(body)
			hdrEnd := strings.Index(text, "]]")
			if !strings.HasPrefix(text, "--[[ "+m[1]+":") || hdrEnd < 0 {
				t.Fatalf("header must open with `--[[ %s:`", m[1])
			}
			hdr := text[:hdrEnd]
			for i := 1; i <= n; i++ {
				if !strings.Contains(hdr, "KEYS["+strconv.Itoa(i)+"]") {
					t.Errorf("header does not document KEYS[%d]", i)
				}
			}
			for _, sec := range []string{"Returns:", "Errors:", "Publishes:", "Time:"} {
				if !strings.Contains(hdr, sec) {
					t.Errorf("header lacks %q", sec)
				}
			}
			for _, k := range keysRe.FindAllStringSubmatch(text, -1) {
				if i, _ := strconv.Atoi(k[1]); i > n || i < 1 {
					t.Errorf("uses KEYS[%d] but is declared with %d keys", i, n)
				}
			}
			if _, ok := scriptSources[base]; !ok {
				t.Errorf("%s is not embedded", base)
			}
		})
	}
}

func TestShake(t *testing.T) {
	const inc = `-- Shared helpers.
local rcall = redis.call
local A, B = 1, 2

-- twice doubles x.
local function twice(x)
  return x * A
end
local LIST = { 'a',
  'b' }
-- unused says nothing.
local function unused()
  return rcall('PING')
end
local function uses_twice(x) return twice(x) + B end
`
	tests := []struct {
		name, user string
		want       []string // definitions kept, in order
	}{
		{"nothing used", "return 1", nil},
		{"one direct", "return LIST[1]", []string{"LIST"}},
		{"transitive, with comment", "return uses_twice(3)", []string{"A, B", "twice", "uses_twice"}},
		{"several names in one statement", "return B", []string{"A, B"}},
		{"a name in a comment keeps too much, never too little", "-- unused\nreturn 1", []string{"rcall", "unused"}},
	}
	defsOf := func(out string) []string {
		var got []string
		for line := range strings.Lines(out) {
			if m := localRe.FindStringSubmatch(line); m != nil {
				got = append(got, strings.TrimSpace(m[1]+m[2]))
			}
		}
		return got
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := shake(inc, tc.user)
			if !strings.HasPrefix(out, "-- Shared helpers.\n") {
				t.Errorf("opening comment lost:\n%s", out)
			}
			if got := defsOf(out); !slices.Equal(got, tc.want) {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
		})
	}
	// what is kept is kept whole: a statement's continuation lines and the
	// comment above it
	out := shake(inc, "return LIST, twice(1)")
	for _, s := range []string{"  'b' }\n", "-- twice doubles x.\n", "  return x * A\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "unused says nothing") {
		t.Errorf("a dropped definition's comment stayed:\n%s", out)
	}
}
