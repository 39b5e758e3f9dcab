#!/usr/bin/env bash
# Runs the client tests against the release binary (target/release/infoharbor, or
# $INFOHARBOR_BIN): filip and ngsildclient with pytest, ngsijs with node's test runner. Each
# suite starts brokers of its own on free loopback ports. Runs clients/setup.sh first; build
# the binary before (`cargo build --release -p infoharbor`; scripts/test.sh does both).
#
#   clients/run.sh                 all three libraries
#   clients/run.sh filip -k geo    one library, with arguments for its runner
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venvs=${CARGO_TARGET_DIR:-$repo/target}/clients-venv
bin=${INFOHARBOR_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/infoharbor}
if [ ! -x "$bin" ]; then
  echo "error: $bin does not exist: run \`cargo build --release -p infoharbor\` (scripts/test.sh does)" >&2
  exit 1
fi

"$repo/clients/setup.sh"

libs=(filip ngsildclient ngsijs)
if [ $# -gt 0 ]; then
  libs=("$1")
  shift
fi

failed=()
for lib in "${libs[@]}"; do
  printf '\n---- client tests: %s ----\n' "$lib"
  case $lib in
    filip | ngsildclient)
      (cd "$repo/clients/python" && "$venvs/$lib/bin/pytest" -v "test_$lib.py" "$@") || failed+=("$lib")
      ;;
    ngsijs)
      (cd "$repo/clients/js" && node --test --test-concurrency=1 "$@") || failed+=("$lib")
      ;;
    *)
      echo "error: unknown library $lib (filip, ngsildclient or ngsijs)" >&2
      exit 2
      ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "client tests failed: ${failed[*]}" >&2
  exit 1
fi
echo "client tests passed: ${libs[*]}"
