package lua

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/synckairos/synckairos/lua/luabuild"
)

// TestGeneratedUpToDate fails when a lua/*.lua file is not what lua/src
// builds to, or a built script has no file: run `go generate ./lua`.
func TestGeneratedUpToDate(t *testing.T) {
	built, err := luabuild.Build("src")
	if err != nil {
		t.Fatal(err)
	}
	if len(built) == 0 {
		t.Fatal("no sources in lua/src")
	}
	for name, want := range built {
		got, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale or missing: run `go generate ./lua`", name)
		}
	}
	for _, name := range Names() {
		if _, ok := built[name]; !ok {
			t.Errorf("%s has no source in lua/src", name)
		}
	}
}

var (
	nameRe = regexp.MustCompile(`^([a-z][A-Za-z]+[0-9]*)-(\d+)\.lua$`)
	keysRe = regexp.MustCompile(`KEYS\[(\d+)\]`)
)

// TestHeaders lints each script's header against its file name: the
// generated marker is line 1, the op opens the header, the header
// documents exactly N KEYS and every section, no KEYS[i] goes past N, and
// the script is embedded.
func TestHeaders(t *testing.T) {
	files, _ := filepath.Glob("*.lua")
	ops := map[string]string{}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			m := nameRe.FindStringSubmatch(f)
			if m == nil {
				t.Fatalf("name %q is not <op>-<N>.lua", f)
			}
			if other, dup := ops[m[1]]; dup {
				t.Errorf("op %s is also %s: one op, one name", m[1], other)
			}
			ops[m[1]] = f
			n, _ := strconv.Atoi(m[2])
			body, _ := os.ReadFile(f)
			first, text, _ := strings.Cut(string(body), "\n")
			if first+"\n" != strings.Replace(luabuild.Marker, "%s", f, 1) {
				t.Errorf("line 1 is %q, not the generated marker", first)
			}
			hdrEnd := strings.Index(text, "]]")
			if !strings.HasPrefix(text, "--[[ "+m[1]+":") || hdrEnd < 0 {
				t.Fatalf("header must open line 2 with `--[[ %s:`", m[1])
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
			if src, ok := Source(f); !ok || src != string(body) {
				t.Errorf("%s is not embedded as it is on disk", f)
			}
		})
	}
}
