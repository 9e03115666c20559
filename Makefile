# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go

.PHONY: run test test-sdk deps tidy bench bench-go lint lua migrate

run:
	$(GO) run .

# deps installs what the tests need beyond Go modules, inside the repository
# only: the Node runner's packages for the second-language contract test.
# Without node/npm that tier is skipped, and deps and test say so.
NODE_MISSING = '*** node/npm not found: the Node contract tier (engine TestNodeContract) is SKIPPED ***'

deps:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then echo $(NODE_MISSING) >&2; \
	elif [ -f testdata/node/package-lock.json ] && \
		[ ! testdata/node/node_modules/.package-lock.json -nt testdata/node/package-lock.json ]; then \
		npm --prefix testdata/node ci --no-audit --no-fund --silent; fi

# tidy fails (printing the diff) when `go mod tidy` would change go.mod or
# go.sum; test and lint run it first.
tidy:
	@$(GO) mod tidy -diff || { echo '*** go.mod/go.sum are not tidy: run `go mod tidy` ***' >&2; exit 1; }

test: deps tidy
	$(GO) test -race -count=1 -timeout 30m ./...
	@command -v node >/dev/null || echo $(NODE_MISSING) >&2
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

lint: tidy
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
