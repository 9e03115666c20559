package luabuild

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

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
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := defsOf(shake(inc, tc.user)); !slices.Equal(got, tc.want) {
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

var localDef = regexp.MustCompile(`(?m)^local (?:function ([A-Za-z_]+)|([A-Za-z_, ]+)=)`)

func defsOf(out string) []string {
	var got []string
	for _, m := range localDef.FindAllStringSubmatch(out, -1) {
		got = append(got, strings.TrimSpace(m[1]+m[2]))
	}
	return got
}

// TestScriptIncludes: includes of includes come first and once, the
// marker is line 1, include lines vanish, and only what the script
// reaches stays.
func TestScriptIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name+".lua"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("base", "-- base.\nlocal function one() return 1 end\nlocal function spare() return 0 end\n")
	write("math", "-- math.\n-- @include base\nlocal function two() return one() + one() end\n")
	write("text", "-- text.\n-- @include base\nlocal function name() return 'x' end\n")
	src := "--[[ op: header ]]\n-- @include math\n-- @include text\nreturn two() .. name()\n"
	b, err := Script("op-0.lua", []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if !strings.HasPrefix(out, strings.Replace(Marker, "%s", "op-0.lua", 1)+"--[[ op: header ]]\n") {
		t.Errorf("marker and header are not lines 1 and 2:\n%s", out)
	}
	if got := defsOf(out); !slices.Equal(got, []string{"one", "two", "name"}) {
		t.Errorf("definitions %q, want one, two, name (dependencies first, each once, spare dropped)", got)
	}
	if strings.Contains(out, "@include") {
		t.Errorf("include lines left:\n%s", out)
	}
	if _, err := Script("x-0.lua", []byte("-- @include missing\n"), dir); err == nil {
		t.Error("a missing include built")
	}
}

// TestInlineConstants: an upper-case constant bound to a number or a plain
// string is written where its name is used in code, not in comments,
// strings or fields, and its definition becomes a comment; anything else
// stays a local.
func TestInlineConstants(t *testing.T) {
	const kept = `-- the cap.
local CAP = 32
local NONE = -2 ^ 63
local FMT = '>cHc0'
local LIST = { 1 }
local lower = 5
local function f(m)
  if m.n <= CAP then return 'CAP', m.CAP, NONE end -- CAP stays here
  return spack(FMT, LIST, lower)
end
`
	out, consts := inlineConstants(kept)
	for _, want := range []string{
		"-- CAP = 32: the build writes", "-- NONE = (-2 ^ 63):", "local LIST = { 1 }", "local lower = 5",
		"if m.n <= 32 then return 'CAP', m.CAP, (-2 ^ 63) end -- CAP stays here",
		"return spack('>cHc0', LIST, lower)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if len(consts) != 3 || consts["CAP"] != "32" {
		t.Errorf("constants %v, want CAP, NONE and FMT", consts)
	}
	if strings.Contains(out, "local CAP") {
		t.Errorf("a constant stayed a local:\n%s", out)
	}
}

// TestLazyCold: helpers marked @cold move into cold(), which builds them
// once, and every call of one goes through it; a cold helper used as a
// value, or a mark on anything but one local function, fails the build.
func TestLazyCold(t *testing.T) {
	const kept = `local rcall = redis.call
-- fail is an error.
-- @cold
local function fail(code) return redis.error_reply(code) end
local function check(x)
  if not x then return fail('BAD') end -- fail( in a comment stays
  return 'fail(' .. x
end
`
	out, names, err := lazyCold(kept)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"local cold\n", "return cold().fail('BAD') end -- fail( in a comment stays", "return 'fail(' .. x",
		"cold = function()\n", "  local t = { fail = fail }\n", "  cold = function() return t end\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !slices.Equal(names, []string{"fail"}) || strings.Index(out, "local function fail") < strings.Index(out, "cold = function") {
		t.Errorf("cold %v; fail is not inside cold():\n%s", names, out)
	}
	for name, bad := range map[string]string{
		"used as a value":   kept + "local g = fail\n",
		"a mark on a value": "-- @cold\nlocal X = 1\n",
	} {
		if _, _, err := lazyCold(bad); err == nil {
			t.Errorf("%s: built", name)
		}
	}
	if out, names, _ := lazyCold("local function f() end\n"); out != "local function f() end\n" || names != nil {
		t.Errorf("nothing cold changed the text: %q %v", out, names)
	}
}
