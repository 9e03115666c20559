// Package luabuild builds the scripts other languages load, lua/*.lua,
// from lua/src: each "-- @include <name>" line of a script pulls in
// lua/src/include/<name>.lua, and an include may name its own includes the
// same way. Only the top-level definitions a script reaches are kept (see
// shake): Redis runs a script's whole body on every call, so every helper
// pasted in is a closure built per call.
package luabuild

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Marker opens every generated file, on its first line.
const Marker = "-- Generated from lua/src/%s by `go generate ./lua`: edit the source, not this file.\n"

const includeDirective = "-- @include "

// Build returns every script of srcDir (lua/src) built, by file name.
func Build(srcDir string) (map[string][]byte, error) {
	srcs, err := filepath.Glob(filepath.Join(srcDir, "*.lua"))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, src := range srcs {
		in, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		b, err := Script(filepath.Base(src), in, filepath.Join(srcDir, "include"))
		if err != nil {
			return nil, err
		}
		out[filepath.Base(src)] = b
	}
	return out, nil
}

// Script builds one script: the marker, then the source with its includes
// (and theirs, each once, dependencies first) pasted at its first include
// line, shaken to what the script reaches.
func Script(name string, src []byte, incDir string) ([]byte, error) {
	var direct []string
	var body strings.Builder
	at := -1 // where the includes go in body
	for line := range strings.Lines(string(src)) {
		if inc, ok := strings.CutPrefix(strings.TrimSpace(line), includeDirective); ok {
			direct = append(direct, strings.TrimSpace(inc))
			if at < 0 {
				at = body.Len()
			}
			continue
		}
		body.WriteString(line)
	}
	var out bytes.Buffer
	out.WriteString(strings.Replace(Marker, "%s", name, 1))
	if at < 0 {
		out.WriteString(body.String())
		return out.Bytes(), nil
	}
	lib, err := resolve(direct, incDir)
	if err != nil {
		return nil, err
	}
	b := body.String()
	kept, consts := inlineConstants(shake(lib, b))
	kept, cold, err := lazyCold(kept)
	if err != nil {
		return nil, err
	}
	rest, err := callCold(substitute(b[at:], consts), cold)
	if err != nil {
		return nil, err
	}
	out.WriteString(b[:at])
	out.WriteString(kept)
	out.WriteString(rest)
	return out.Bytes(), nil
}

// resolve concatenates the includes names reach, each once, every include
// after the ones it includes, without their own include lines.
func resolve(names []string, dir string) (string, error) {
	var out strings.Builder
	done := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if done[name] {
			return nil
		}
		done[name] = true
		text, err := os.ReadFile(filepath.Join(dir, name+".lua"))
		if err != nil {
			return err
		}
		var own strings.Builder
		for line := range strings.Lines(string(text)) {
			if inc, ok := strings.CutPrefix(strings.TrimSpace(line), includeDirective); ok {
				if err := visit(strings.TrimSpace(inc)); err != nil {
					return err
				}
				continue
			}
			own.WriteString(line)
		}
		out.WriteString(own.String())
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return "", err
		}
	}
	return out.String(), nil
}

var (
	identRe = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
	// constRe is a constant the build inlines: an upper-case name bound to
	// a number (an arithmetic of numerals, such as -2 ^ 63) or a plain
	// single-quoted string, alone on its line.
	constRe = regexp.MustCompile(`^local ([A-Z][A-Z0-9_]*) = ([-+*/^ 0-9.e()]+|'[^'\\]*')\s*(?:--.*)?\n$`)
	localRe = regexp.MustCompile(`^local (?:function ([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_, ]*)=)`)
)

// shake returns the top-level definitions of include that the script
// (user) reaches, directly or through other definitions, in their order.
// A definition is a top-level `local` statement with the comment above it;
// what it references is every identifier in it, which can keep too much
// but never too little. Comments that belong to no kept definition go.
func shake(include, user string) string {
	defs := split(include)
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
	var out strings.Builder
	for i, d := range defs {
		if keep[i] {
			out.WriteString(d.text)
		}
	}
	return out.String()
}

// A def is one top-level definition: the names it binds and its text,
// the comments above it included.
type def struct {
	names []string
	text  string
}

// split cuts include into its top-level definitions (see shake); a
// trailing comment that belongs to no definition goes.
func split(include string) []def {
	var defs []def
	var pending strings.Builder // comments awaiting their statement
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
		case strings.HasPrefix(line, "--") || strings.TrimSpace(line) == "":
			pending.WriteString(line)
		case len(defs) > 0:
			defs[len(defs)-1].text += pending.String() + line
			pending.Reset()
		}
	}
	return defs
}

// coldMarker, a comment line above a `local function`, marks a helper
// that only rare paths call (see lazyCold).
const coldMarker = "-- @cold\n"

// lazyCold moves the helpers of kept marked @cold into one function,
// cold, that builds them on the first call that needs one, and makes the
// calls to them go through it (cold().name(...)): Redis builds every
// function a script defines on every call, each closure with its upvalues,
// so a helper that an error or an older layout alone calls costs every
// call that never needs it (bench/RESULTS.md "Revision 4"). It returns the
// new text and the names moved.
func lazyCold(kept string) (string, []string, error) {
	var hot, cold []def
	var names []string
	for _, d := range split(kept) {
		if !strings.Contains(d.text, coldMarker) {
			hot = append(hot, d)
			continue
		}
		if len(d.names) != 1 || !strings.Contains(d.text, "local function "+d.names[0]+"(") {
			return "", nil, fmt.Errorf("luabuild: @cold marks %v, not one local function", d.names)
		}
		cold, names = append(cold, d), append(names, d.names[0])
	}
	if len(cold) == 0 {
		return kept, nil, nil
	}
	var out strings.Builder
	out.WriteString("-- cold() returns the helpers marked @cold in lua/src/include, building them\n" +
		"-- on first use: only rare paths call them (the build routes their calls).\n" +
		"local cold\n")
	for _, d := range hot {
		text, err := callCold(d.text, names)
		if err != nil {
			return "", nil, err
		}
		out.WriteString(text)
	}
	out.WriteString("cold = function()\n")
	for _, d := range cold {
		out.WriteString(d.text)
	}
	fields := make([]string, len(names))
	for i, n := range names {
		fields[i] = n + " = " + n
	}
	out.WriteString("  local t = { " + strings.Join(fields, ", ") + " }\n" +
		"  cold = function() return t end\n" +
		"  return t\n" +
		"end\n")
	return out.String(), names, nil
}

// callCold writes cold().name( for each call name( of a cold helper in
// the code of src (not in comments or strings); a cold helper named any
// other way (passed as a value) is an error, as the build cannot route it.
func callCold(src string, names []string) (string, error) {
	if len(names) == 0 {
		return src, nil
	}
	cold := map[string]string{}
	for _, n := range names {
		cold[n] = "cold()." + n
	}
	var bad string
	out := rewriteCode(src, func(id, after string) (string, bool) {
		v, ok := cold[id]
		if ok && !strings.HasPrefix(after, "(") {
			bad, ok = id, false
		}
		return v, ok
	})
	if bad != "" {
		return "", fmt.Errorf("luabuild: the @cold helper %s is used other than by a call", bad)
	}
	return out, nil
}

// inlineConstants turns the constants of kept (see constRe) into comments
// and writes each one's value where it is used. A
// closure that names a top-level local captures it as an upvalue, and
// Lua 5.1 finds an upvalue by walking the list of every upvalue the
// chunk has opened so far: a constant costs each closure that names it
// such a walk, on every call, while a literal costs nothing
// (bench/RESULTS.md "Revision 4").
func inlineConstants(kept string) (string, map[string]string) {
	consts := map[string]string{}
	var out, pending strings.Builder
	for line := range strings.Lines(kept) {
		switch m := constRe.FindStringSubmatch(line); {
		case m != nil:
			v := strings.TrimSpace(m[2])
			if !strings.HasPrefix(v, "'") && strings.ContainsAny(v, "-+*/^ ") {
				v = "(" + v + ")"
			}
			consts[m[1]] = v
			out.WriteString(pending.String())
			fmt.Fprintf(&out, "-- %s = %s: the build writes the value where the name is used\n", m[1], v)
			pending.Reset()
		case strings.HasPrefix(line, "--") || strings.TrimSpace(line) == "":
			pending.WriteString(line)
		default:
			out.WriteString(pending.String())
			out.WriteString(line)
			pending.Reset()
		}
	}
	out.WriteString(pending.String())
	return substitute(out.String(), consts), consts
}

// substitute writes the constants' values for their names in the code of
// src: not in comments, not in string literals.
func substitute(src string, consts map[string]string) string {
	if len(consts) == 0 {
		return src
	}
	return rewriteCode(src, func(id, _ string) (string, bool) {
		v, ok := consts[id]
		return v, ok
	})
}

// rewriteCode applies rewriteIdents to the code of each line of src, not
// to its comment.
func rewriteCode(src string, f func(id, after string) (string, bool)) string {
	var out strings.Builder
	for line := range strings.Lines(src) {
		code, rest := splitComment(line)
		out.WriteString(rewriteIdents(code, f))
		out.WriteString(rest)
	}
	return out.String()
}

// splitComment splits a line at a "--" that is not inside a string.
func splitComment(line string) (code, comment string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '-' && i+1 < len(line) && line[i+1] == '-':
			return line[:i], line[i:]
		}
	}
	return line, ""
}

// rewriteIdents writes f(id, what follows it) for each identifier of code
// that f accepts, outside string literals and after no "." or ":" (a
// field or method of that name is not the local).
func rewriteIdents(code string, f func(id, after string) (string, bool)) string {
	var out strings.Builder
	var quote byte
	for i := 0; i < len(code); {
		c := code[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(code) {
				out.WriteString(code[i : i+2])
				i += 2
				continue
			}
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			loc := identRe.FindStringIndex(code[i:])
			id := code[i : i+loc[1]]
			v, ok := id, false
			if i == 0 || code[i-1] != '.' && code[i-1] != ':' {
				v, ok = f(id, code[i+loc[1]:])
			}
			if !ok {
				v = id
			}
			out.WriteString(v)
			i += loc[1]
			continue
		}
		out.WriteByte(c)
		i++
	}
	return out.String()
}
