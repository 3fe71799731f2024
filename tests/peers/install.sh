#!/usr/bin/env bash
# Installs the peers used by tests/delivery_*.rs and benches/send.rs on a
# fresh Debian machine (Rust 1.95, Python 3.11), without running any mail
# server as a service:
#   * dnsmasq (Debian's dnsmasq-base: the binary without the system service)
#   * Postfix's smtp-sink and smtp-source, extracted from the Debian package
#     into target/peers/postfix (not installed: no MTA is configured)
#   * Python: aiosmtpd (scripted SMTP peers), dkimpy + pynacl (DKIM verification)
#   * swaks (optional, handy for poking at peers by hand)
# Idempotent; safe to run on every CI run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/target/peers/postfix"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

if ! command -v dnsmasq >/dev/null 2>&1 && [ ! -x /usr/sbin/dnsmasq ]; then
    apt_install dnsmasq-base
fi
if ! command -v swaks >/dev/null 2>&1; then
    apt_install swaks || echo "install.sh: swaks not installed (optional)" >&2
fi

if [ ! -x "$DEST/usr/sbin/smtp-sink" ] || [ ! -x "$DEST/usr/sbin/smtp-source" ]; then
    if [ "$apt_updated" -eq 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
    # The shared libraries the Postfix programs link against.
    mapfile -t libs < <(apt-cache depends postfix | awk '/^  Depends: lib/ {print $2}')
    if [ "${#libs[@]}" -gt 0 ]; then apt_install "${libs[@]}"; fi
    tmp="$(mktemp -d)"
    chmod 777 "$tmp"   # apt's _apt user downloads into it
    (cd "$tmp" && apt-get download postfix 2>/dev/null || (cd "$tmp" && $SUDO apt-get download postfix))
    mkdir -p "$DEST"
    dpkg -x "$tmp"/postfix_*.deb "$DEST"
    rm -rf "$tmp"
fi
# Check that they run (they need their own libraries from usr/lib/postfix).
usage="$(LD_LIBRARY_PATH="$DEST/usr/lib/postfix" "$DEST/usr/sbin/smtp-sink" 2>&1 || true)"
if ! grep -q usage <<<"$usage"; then
    echo "install.sh: $DEST/usr/sbin/smtp-sink does not run" >&2
    exit 1
fi

# pynacl: dkimpy needs it to verify Ed25519 signatures (RFC 8463).
if ! python3 -c 'import aiosmtpd, dkim, nacl' >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check aiosmtpd dkimpy pynacl
fi

echo "test peers ready: dnsmasq, $DEST/usr/sbin/smtp-sink, smtp-source, aiosmtpd, dkimpy"
