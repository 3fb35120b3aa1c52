#!/usr/bin/env bash
# Installs what fastfn and its tests need (idempotent: only missing Debian packages are installed), then builds
# the release binary. Usage: scripts/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

# nginx with the Lua module, the interpreters and the Go toolchain the workers run on, and the tools the tests and
# benches use.
packages=(nginx libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core lua-cjson python3 python3-pip php-cli golang-go lua-busted lua-check luajit2 wrk iproute2 curl)
# Node comes with the machine where it exists; installing Debian's npm over a newer Node would downgrade it.
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
# The service tests check the generated unit with systemd-analyze (it comes with systemd on most hosts).
command -v systemd-analyze >/dev/null 2>&1 || packages+=(systemd)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: run as root, or install: apt-get install -y ${missing[*]}" >&2; exit 1; }
    as_root=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Started as root, fastfn runs function workers as this unprivileged user.
if [ "$(id -u)" -eq 0 ] && ! id fastfn >/dev/null 2>&1; then
  echo "setup: creating the system user fastfn (function workers run as it)" >&2
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin fastfn
fi

# The tests validate the generated OpenAPI document with a real validator (PyPI).
if ! python3 -c 'import openapi_spec_validator' 2>/dev/null; then
  echo "setup: installing openapi-spec-validator (pip)" >&2
  python3 -m pip install -q openapi-spec-validator >&2 || python3 -m pip install -q --break-system-packages openapi-spec-validator >&2
fi

if [ "${1:-}" != "--no-build" ]; then
  cargo build --release --locked 2>&1 | tail -n 2 >&2
fi
