// Package lua holds the SyncKairos scripts (lua/README.md is their
// contract) for Go callers: each file embedded, by name. Other languages
// load the same files from this directory.
package lua

import (
	"embed"
	"io/fs"
	"sort"
)

//go:generate go run ./gen

//go:embed *.lua
var files embed.FS

// Source returns the text of script name (such as "switchCycle5-8.lua").
func Source(name string) (string, bool) {
	b, err := files.ReadFile(name)
	return string(b), err == nil
}

// Names lists every script, sorted.
func Names() []string {
	names, _ := fs.Glob(files, "*.lua")
	sort.Strings(names)
	return names
}
