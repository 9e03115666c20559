// Command gen rebuilds lua/*.lua from lua/src (run from lua/ by
// `go generate ./lua`).
package main

import (
	"log"
	"os"

	"github.com/synckairos/synckairos/lua/luabuild"
)

func main() {
	built, err := luabuild.Build("src")
	if err != nil {
		log.Fatal(err)
	}
	for name, b := range built {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
