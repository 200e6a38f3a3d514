#!/usr/bin/env bash
# Debian packages the tests use for real: espeak-ng (speech), sox (audio checks), chromium and firefox-esr (the
# preview page), node (the TypeScript client).
# Run as root (CI does); installs only what is missing.
set -euo pipefail
pkgs=(espeak-ng sox chromium firefox-esr)
missing=()
for pkg in "${pkgs[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Node.js for the TypeScript client's tests; only where there is none (a NodeSource node must not get Debian's npm).
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
