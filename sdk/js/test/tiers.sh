#!/usr/bin/env bash
# The SDK's test tiers, as `make test` runs them: unit (node --test, fakes),
# integration (the real binary, built here) and browser (Debian's Chromium
# through playwright-core). A tier whose tools are missing is SKIPPED with
# the reason and what to install, in capitals, never silently; nothing is
# installed system-wide (npm ci writes sdk/js/node_modules only).
set -uo pipefail
cd "$(dirname "$0")/.."

skipped() {
  echo "=================================================================="
  echo "SKIPPED: $1"
  echo "  to run it: $2"
  echo "=================================================================="
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  skipped "the SDK's unit, integration and browser tiers (node/npm not found)" \
    "install Node.js >= 20 with npm"
  exit 0
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  skipped "the SDK's tiers (Node.js $(node --version) is older than 20)" "install Node.js >= 20"
  exit 0
fi
if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
  npm ci --no-audit --no-fund --silent || { echo "FAIL: npm ci in sdk/js"; exit 1; }
fi

fail=0
echo "--- sdk/js: committed bundle vs a fresh build"
node build.mjs --check || fail=1
# the tests import dist/ (not committed): build it, as a fresh clone has none
node build.mjs >/dev/null || { echo "FAIL: the SDK build"; exit 1; }
echo "--- sdk/js: unit tier"
node --test test/unit/ || fail=1
if command -v go >/dev/null; then
  echo "--- sdk/js: integration tier (real server, Redis at 127.0.0.1:6379)"
  node --test test/integration/ || fail=1
else
  skipped "the SDK's integration tier (go not found to build the server)" "install Go"
fi
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  echo "--- sdk/js: browser tier ($chromium)"
  SDK_BROWSER_RESULTS="${SDK_BROWSER_RESULTS:-}" CHROMIUM="$chromium" node --test --test-concurrency=1 test/browser/ || fail=1
else
  skipped "the SDK's browser tier (no Chromium at $chromium)" \
    "apt-get install chromium (Debian's; .ci/run installs it), or set CHROMIUM=/path/to/chromium"
fi
exit $fail
