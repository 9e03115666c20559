# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go

.PHONY: run test test-sdk deps bench bench-go lint lua migrate

run:
	$(GO) run .

# deps installs what the tests need beyond Go modules: the Node runner's
# packages for the second-language contract test, and promtool (Debian's
# prometheus package) for the /metrics format test.
deps:
	@if [ -f testdata/node/package-lock.json ] && \
		[ ! testdata/node/node_modules/.package-lock.json -nt testdata/node/package-lock.json ]; then \
		npm --prefix testdata/node ci --no-audit --no-fund --silent; fi
	@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }

test: deps
	$(GO) test -race -count=1 -timeout 30m ./...
	@$(MAKE) --no-print-directory test-sdk

# test-sdk runs the JS SDK's tiers (sdk/js/test/tiers.sh): unit, integration
# against the real binary, and the browser tier in Debian's Chromium. Each
# says SKIPPED, loudly, when node/npm or chromium is missing.
test-sdk:
	@sdk/js/test/tiers.sh

# bench runs the load tool's standard set (about 5 minutes): it starts the
# server built here on a free port with rate limits off, measures it against
# floors taken in the same run, stops it, and rewrites the "Load tool"
# section of bench/RESULTS.md. Runs saved in bench/runs/ (the soak, the
# overload runs) are appended; a saved bench/baseline.json (a copy of
# bench/out/last.json) adds current/baseline ratios.
bench:
	mkdir -p bench/out
	$(GO) build -o bench/out/synckairos .
	ulimit -n $$(ulimit -Hn); $(GO) run ./bench -scenario standard -baseline -spawn bench/out/synckairos \
		-json bench/out/last.json -results bench/RESULTS.md -with 'bench/runs/*.json' \
		$(if $(wildcard bench/baseline.json),-compare bench/baseline.json)

# bench-go runs the Go benchmarks of the root package (about 5 minutes more).
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 2000x -count 1 .

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

# migrate applies the embedded SQL migrations to DATABASE_URL (start-up
# applies them too; both are idempotent).
migrate:
	$(GO) run . migrate

# lua rebuilds lua/*.lua from lua/src (the includes each script names are
# pasted in; lua/luabuild). lua's TestGeneratedUpToDate fails when one is stale.
lua:
	$(GO) generate ./lua
