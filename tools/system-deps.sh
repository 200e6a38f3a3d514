#!/usr/bin/env bash
# Debian packages the project uses for real. `make run` and `make test` call this first, so a fresh machine needs
# nothing typed but those two commands.
#
#   tools/system-deps.sh run    what `make run` needs: python3-venv (Debian's python3 has no ensurepip without it)
#   tools/system-deps.sh test   (default) that, plus what the tests use: espeak-ng (speech), festival with two
#                               recorded-speaker voices (speech whose m's are loud, ~5 MB), sox (audio checks),
#                               chromium and firefox-esr (the preview page), node and npm (the TypeScript client)
#
# Installs only what is missing. As root it runs apt-get; otherwise, when something is missing, it prints the one
# command to run and exits 1. Node's npm is added even where node exists without it: Debian's node gets Debian's npm
# package, while a NodeSource node (its nodejs package ships npm itself and conflicts with Debian's npm) is
# reinstalled to get its own npm back. A node apt does not know (nvm, a tarball) without npm is an error to fix by hand.
set -euo pipefail
profile="${1:-test}"
case "$profile" in run | test) ;; *) echo "usage: $0 [run|test]" >&2; exit 2 ;; esac
PY="${PY:-python3}"

missing=()      # packages to install
reinstall=()    # packages to reinstall (a NodeSource nodejs whose npm is gone)
problems=()     # what apt cannot fix

# python3 -m venv needs ensurepip, which Debian ships in python3-venv (only for Debian's own python3).
if ! command -v "$PY" >/dev/null 2>&1; then
    missing+=(python3 python3-venv)
elif ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
    if dpkg -S "$(readlink -f "$(command -v "$PY")")" >/dev/null 2>&1; then
        missing+=(python3-venv)
    else
        problems+=("$PY has no ensurepip/venv module and is not Debian's python3: install its venv support")
    fi
fi

if [ "$profile" = test ]; then
    for pkg in espeak-ng festival festvox-us-slt-hts festvox-kdlpc16k sox chromium firefox-esr; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ! command -v node >/dev/null 2>&1; then
        missing+=(nodejs npm)
    elif ! command -v npm >/dev/null 2>&1; then
        node_file="$(readlink -f "$(command -v node)")"
        owner="$(dpkg -S "$node_file" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
        if [ -z "$owner" ]; then
            problems+=("node ($node_file) has no npm and is not a Debian package: install npm for that node")
        elif dpkg -L "$owner" 2>/dev/null | grep -q '/node_modules/npm/'; then
            reinstall+=("$owner")  # NodeSource: npm belongs to this package; Debian's npm would conflict with it
        else
            missing+=(npm)  # Debian's nodejs: npm is its own package
        fi
    fi
fi

if [ ${#problems[@]} -gt 0 ]; then
    printf 'system-deps: %s\n' "${problems[@]}" >&2
    exit 1
fi
[ ${#missing[@]} -eq 0 ] && [ ${#reinstall[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${missing[*]:-}${reinstall[*]:+ (npm: reinstall ${reinstall[*]})};" \
         "run once as root: sudo bash tools/system-deps.sh $profile" >&2
    exit 1
fi

echo "system-deps: installing ${missing[*]:-}${reinstall[*]:+ (reinstalling ${reinstall[*]})}"
apt-get update -qq
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ${#reinstall[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends --reinstall "${reinstall[@]}" >/dev/null
fi
