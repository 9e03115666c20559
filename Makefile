# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go

.PHONY: run test deps bench lint lua migrate

run:
	$(GO) run .

# deps installs what the tests need beyond Go modules: the Node runner's
# packages for the second-language contract test, and promtool (Debian's
# prometheus package) for the /metrics format test.
deps:
	@if [ -f testdata/node/package.json ] && [ ! -d testdata/node/node_modules ]; then \
		npm --prefix testdata/node ci --no-audit --no-fund --silent; fi
	@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }

test: deps
	$(GO) test -race -count=1 -timeout 30m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2000x -count 1 .

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

# lua rebuilds lua/*.lua from lua/src (shared helpers are pasted in).
lua:
	$(GO) test -run TestLuaGeneratedUpToDate -update-lua .
