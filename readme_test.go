package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// envReaders are the calls that read an environment variable by a literal
// name: os.Getenv and os.LookupEnv (tests read the environment only so), and
// in the service also a getenv passed around and envconf.Reader's methods,
// with the short names config.go gives them.
var (
	envReaders     = []string{"Getenv", "LookupEnv"}
	serviceReaders = append([]string{"getenv", "Str", "Int", "IntRange", "Bool", "Duration", "List",
		"str", "integer", "boolean", "duration"}, envReaders...)
)

// systemVars are read by tests but belong to the machine, not to us.
var systemVars = []string{"PATH"}

var (
	envName   = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	tickName  = regexp.MustCompile("`([A-Z][A-Z0-9_]*)`")
	nodeEnvRe = regexp.MustCompile(`process\.env\.([A-Z][A-Z0-9_]*)`)
)

// TestREADMEDocumentsEveryVariable keeps README.md's claims true: every
// variable the service reads is a row of its Configuration table and every
// variable a test reads one of its Testing table, and neither table names
// a variable nothing reads.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	service, tests := codeVars(t, ".")
	for _, p := range envDocProblems(string(readme), service, tests) {
		t.Error(p)
	}
}

// codeVars finds the variables the code reads: what loadConfig asks its
// getenv for (every component's config goes through it), and every literal
// name handed to an envReaders call anywhere under root. Test files, test
// helper packages (named *test) and the Node runner count as tests.
func codeVars(t *testing.T, root string) (service, tests map[string]bool) {
	t.Helper()
	service, tests = map[string]bool{}, map[string]bool{}
	_, _ = loadConfig(func(name string) string { service[name] = true; return "" })
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		switch {
		case strings.HasSuffix(path, ".mjs"):
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range nodeEnvRe.FindAllStringSubmatch(string(b), -1) {
				tests[m[1]] = true
			}
		case strings.HasSuffix(path, ".go"):
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			into, readers := service, serviceReaders
			if strings.HasSuffix(path, "_test.go") || strings.HasSuffix(f.Name.Name, "test") {
				into, readers = tests, envReaders
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if name, ok := envRead(n, readers); ok {
					into[name] = true
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range systemVars {
		delete(tests, v)
	}
	return service, tests
}

// envRead reports the literal variable name a call of one of readers reads.
func envRead(n ast.Node, readers []string) (string, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return "", false
	}
	var fn string
	switch f := call.Fun.(type) {
	case *ast.Ident:
		fn = f.Name
	case *ast.SelectorExpr:
		fn = f.Sel.Name
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING || !slices.Contains(readers, fn) {
		return "", false
	}
	name, err := strconv.Unquote(lit.Value)
	if err != nil || !envName.MatchString(name) {
		return "", false
	}
	return name, true
}

// envDocProblems compares the names in the first column of the tables
// under README's "## Configuration" and "## Testing" with what the code
// and the tests read.
func envDocProblems(readme string, service, tests map[string]bool) []string {
	var out []string
	check := func(section string, read map[string]bool) {
		documented := tableNames(readme, section)
		if documented == nil {
			out = append(out, "README.md has no table under "+strconv.Quote(section))
			return
		}
		for _, v := range sortedKeys(read) {
			if !documented[v] {
				out = append(out, v+" is read but not documented in README.md "+strconv.Quote(section))
			}
		}
		for _, v := range sortedKeys(documented) {
			if !read[v] {
				out = append(out, v+" is documented in README.md "+strconv.Quote(section)+" but nothing reads it")
			}
		}
	}
	check("## Configuration", service)
	check("## Testing", tests)
	return out
}

// tableNames collects the `NAME`s in the first column of the table rows of
// one README section; nil when the section has no table.
func tableNames(readme, heading string) map[string]bool {
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		return nil
	}
	body := readme[i+len(heading)+2:]
	if j := strings.Index(body, "\n## "); j >= 0 {
		body = body[:j]
	}
	var names map[string]bool
	for _, line := range strings.Split(body, "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 3 {
			continue
		}
		if names == nil {
			names = map[string]bool{}
		}
		for _, m := range tickName.FindAllStringSubmatch(cells[1], -1) {
			names[m[1]] = true
		}
	}
	return names
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestEnvDocProblems: the check finds each kind of gap.
func TestEnvDocProblems(t *testing.T) {
	t.Parallel()
	const readme = "# X\n\n## Configuration\n\n| variable | default |\n|---|---|\n| `PORT` | `3000` |\n" +
		"| `A_MAX`, `A_WINDOW` | |\n\nprose naming `UNREAD`\n\n## Testing\n\n| variable | meaning |\n|---|---|\n" +
		"| `REDIS_TEST_ADDR` | |\n\n## HTTP API\n\n| `NOT_CONFIG` | |\n"
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	tests := []struct {
		name           string
		readme         string
		service, tests map[string]bool
		want           []string
	}{
		{"all documented", readme, set("PORT", "A_MAX", "A_WINDOW"), set("REDIS_TEST_ADDR"), nil},
		{"undocumented variable", readme, set("PORT", "A_MAX", "A_WINDOW", "NOT_CONFIG"), set("REDIS_TEST_ADDR"),
			[]string{`NOT_CONFIG is read but not documented in README.md "## Configuration"`}},
		{"documented, unread", readme, set("PORT", "A_MAX"), set("REDIS_TEST_ADDR"),
			[]string{`A_WINDOW is documented in README.md "## Configuration" but nothing reads it`}},
		{"test variable in the wrong table", readme, set("PORT", "A_MAX", "A_WINDOW", "REDIS_TEST_ADDR"), set(),
			[]string{`REDIS_TEST_ADDR is read but not documented in README.md "## Configuration"`,
				`REDIS_TEST_ADDR is documented in README.md "## Testing" but nothing reads it`}},
		{"no Testing section", strings.Split(readme, "## Testing")[0], set("PORT", "A_MAX", "A_WINDOW"), set(),
			[]string{`README.md has no table under "## Testing"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := envDocProblems(tt.readme, tt.service, tt.tests); !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestEnvRead: the static scan sees each way the code reads a variable.
func TestEnvRead(t *testing.T) {
	t.Parallel()
	src := `package p
func f() {
	os.Getenv("A_ONE")
	os.LookupEnv("A_TWO")
	getenv("A_THREE")
	e.Duration("A_FOUR", time.Second)
	integer("A_FIVE", 3)
	os.Getenv(name)
	strings.TrimSpace("NOT_ENV")
	os.Getenv("lower")
}`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		readers []string
		want    []string
	}{
		{serviceReaders, []string{"A_ONE", "A_TWO", "A_THREE", "A_FOUR", "A_FIVE"}},
		{envReaders, []string{"A_ONE", "A_TWO"}},
	} {
		var got []string
		ast.Inspect(f, func(n ast.Node) bool {
			if name, ok := envRead(n, tt.readers); ok {
				got = append(got, name)
			}
			return true
		})
		if !slices.Equal(got, tt.want) {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
