#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (real nginx, real workers), the workers' own tests, and the
# Lua unit tests. Exits non-zero on any failure. As root it also runs the integration tests as an unprivileged user.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build || exit 1

failed=()
run() {
  echo "==> $*" >&2
  "$@" || failed+=("$*")
}

run cargo test --locked
# Fuzz targets (src/fuzz.rs, fuzz/README.md): 45 s each over the corpus in fuzz/corpus/; a crash is saved there. The
# test binary just built above (no release build to wait for, and integer overflow checks stay on).
run env FN_FUZZ_SECONDS=45 cargo test --locked --bin fastfn fuzz_ -- --test-threads=1 --nocapture
run python3 -m unittest discover -s runtimes/python
run python3 -m unittest discover -s runtimes/php -p 'test_*.py'
run node --test runtimes/node/
# LuaJIT, as inside nginx (some specs use its FFI).
run busted --lua=luajit --lpath='lua/?.lua' lua/spec
run luacheck --no-color -q lua

# The privilege-drop path is what root exercises; also prove the stack works for an ordinary user.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
  bin=$(cargo test --locked --test integration --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys; [print(m["executable"]) for m in map(json.loads, sys.stdin) if m.get("executable") and m.get("target",{}).get("name")=="integration"]' | tail -n 1)
  if [ -n "$bin" ] && setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$bin"; then
    run env -u XDG_RUNTIME_DIR HOME=/tmp setpriv --reuid=nobody --regid=nogroup --clear-groups "$bin"
  else
    echo "==> skipped the unprivileged run: the test binary is not reachable by user nobody" >&2
  fi
fi

find runtimes -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "all test suites passed" >&2
