package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var updateLua = flag.Bool("update-lua", false, "rewrite lua/*.lua from lua/src")

// The scripts other languages load are lua/*.lua. They are built from
// lua/src/*.lua by pasting lua/src/include/<name>.lua at each
// "-- @include <name>" line, so shared helpers are written once.
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
		out.Write(inc)
	}
	return out.Bytes(), nil
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
