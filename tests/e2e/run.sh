#!/usr/bin/env bash
# End-to-end browser tests of the chat page and the dashboard: installs what is missing (Debian's
# chromium, the pinned playwright-core from package-lock.json), builds the server,
# then runs tests/e2e/*.test.mjs with Node's test runner (TAP; CI reads "# pass N",
# "# fail N"). Screenshots: tests/e2e/out/.
#
#   tests/e2e/run.sh                         # from anywhere
#   SSE_SERVER=/path/to/sse-server tests/e2e/run.sh   # test that binary, skip the build
#
# Never downloads a browser: playwright-core drives /usr/bin/chromium.
set -euo pipefail

E2E="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$E2E/../.." && pwd)"
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
export CHROMIUM_PATH="$CHROMIUM"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

say() { printf 'e2e: %s\n' "$*" >&2; }

# ---- chromium (Debian package)
if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"
    else say "$CHROMIUM is missing and we are not root: apt-get install chromium"; exit 1
    fi
    say "installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium >/dev/null
fi
say "$("$CHROMIUM" --version 2>/dev/null || echo "chromium at $CHROMIUM")"

# ---- node + playwright-core (npm, exact versions from package-lock.json)
# Debian 12's own nodejs (v18) is enough: playwright-core is pinned to a
# release that supports it.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"
    else say "node and npm are required: apt-get install nodejs npm"; exit 1
    fi
    say "installing nodejs and npm (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || { say "node v18+ is required, found $(node --version)"; exit 1; }
if [ ! -f "$E2E/node_modules/playwright-core/package.json" ]; then
    command -v npm >/dev/null || { say "npm is required"; exit 1; }
    say "npm ci in tests/e2e"
    (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
fi

# ---- the server
if [ -z "${SSE_SERVER:-}" ]; then
    make -C "$REPO" sse-server
    export SSE_SERVER="$REPO/sse-server"
fi
[ -x "$SSE_SERVER" ] || { say "no server binary at $SSE_SERVER"; exit 1; }

# ---- run (fresh screenshots; every wait inside is bounded, this is the last resort)
mkdir -p "$E2E/out"
rm -f "$E2E"/out/*.png
cd "$REPO"
# An explicit file list rather than the directory: same files on Node 20, and it
# keeps working on Node 21+, where --test arguments are glob patterns.
exec timeout --kill-after=15 180 node --test --test-reporter=tap "$E2E"/*.test.mjs
