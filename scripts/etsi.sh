#!/usr/bin/env bash
# Runs the ETSI NGSI-LD conformance suite against a fresh release build of Infoharbor.
#
#   scripts/etsi.sh [AREA ...]
#
# Builds `infoharbor` in release mode, starts it on 127.0.0.1:1026 with an empty temporary data
# directory, runs the suite through shared/etsi/run-etsi.sh on the given areas (folders or
# .robot files inside the suite; default: the areas listed below), stops the broker and prints
# the summary. Results land in target/etsi/ (failures.md, log.html).
#
# Environment:
#   ETSI_SUITE_GIT  git directory of the suite (default: the local mirror below)
#   ROBOT_ARGS      passed through, e.g. ROBOT_ARGS="--test '001_01*'"
#   INFOHARBOR_LOG  the broker's log filter (its log goes to target/etsi/broker.log)
#   INFOHARBOR_BIN  a broker binary to run instead of building one
#   ETSI_CONTEXT_DIR  a --context-dir for the broker: the public @contexts the jsonldContext
#                   cases name (testContext.jsonld of the suite's repository, the FIWARE
#                   data-models context.jsonld) with their contexts.toml; without it those
#                   cases need the internet
#   ETSI_OUT_DIR    where the results go (default target/etsi)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runner="$(dirname "$0")/../../shared/etsi/run-etsi.sh"
runner=$(cd "$(dirname "$runner")" && pwd)/$(basename "$runner")
export ETSI_SUITE_GIT=${ETSI_SUITE_GIT:-/work/.mirror/marek-mraz+ngsi-ld-test-suite/repo}
listen=127.0.0.1:1026

if [ $# -eq 0 ]; then
  set -- \
    TP/NGSI-LD/CommonBehaviours/CommonResponses \
    TP/NGSI-LD/CommonBehaviours/Tenancy \
    TP/NGSI-LD/ContextInformation/Consumption/Entity \
    TP/NGSI-LD/ContextInformation/Consumption/Discovery \
    TP/NGSI-LD/ContextInformation/Provision/Entities \
    TP/NGSI-LD/ContextInformation/Provision/EntityAttributes \
    TP/NGSI-LD/ContextInformation/Provision/BatchEntities \
    TP/NGSI-LD/ContextInformation/Provision/PurgeEntities \
    TP/NGSI-LD/ContextInformation/Provision/TransientEntities \
    TP/NGSI-LD/jsonldContext
fi

[ -f "$runner" ] || { echo "error: $runner not found" >&2; exit 1; }
[ -d "$ETSI_SUITE_GIT" ] || { echo "error: ETSI_SUITE_GIT=$ETSI_SUITE_GIT is not a directory" >&2; exit 1; }

cd "$repo"
out=${ETSI_OUT_DIR:-$repo/target/etsi}
mkdir -p "$out"

if [ -n "${INFOHARBOR_BIN:-}" ]; then
  bin=$INFOHARBOR_BIN
else
  echo "==== building infoharbor (release) ===="
  cargo build --release -p infoharbor
  bin=${CARGO_TARGET_DIR:-$repo/target}/release/infoharbor
fi
extra=()
if [ -n "${ETSI_CONTEXT_DIR:-}" ]; then
  extra+=(--context-dir "$ETSI_CONTEXT_DIR")
fi

if (exec 3<>"/dev/tcp/${listen%:*}/${listen#*:}") 2>/dev/null; then
  echo "error: something already listens on $listen; stop it first" >&2
  exit 1
fi

data=$(mktemp -d "${TMPDIR:-/tmp}/infoharbor-etsi.XXXXXX")
log=$out/broker.log
pid=
stop_broker() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=
}
cleanup() {
  stop_broker
  rm -rf "$data"
}
trap cleanup EXIT

echo "==== starting infoharbor on $listen (data: $data) ===="
# The suite's temporal pagination cases (020_13, 020_14, 021_15, 021_16) need a page to be cut
# at 2 attributes x 20 instances and not at 2 x 5 (its README: "configure your broker
# accordingly"); the instance limit is the implementation's own choice (6.3.10).
"$bin" serve --listen "$listen" --data-dir "$data" --max-temporal-instances 10 \
  --egress-allow 127.0.0.0/8,::1 --auth none \
  --notify-retry-ms 200 --notify-max-attempts 3 "${extra[@]}" >"$log" 2>&1 &
pid=$!
for i in $(seq 1 100); do
  if curl -fsS -o /dev/null "http://$listen/health" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null || [ "$i" -eq 100 ]; then
    echo "error: infoharbor did not become healthy on $listen; its log ($log):" >&2
    tail -n 50 "$log" >&2
    exit 1
  fi
  sleep 0.1
done

echo "==== running the ETSI suite: $* ===="
summary=$out/summary.txt
ETSI_OUT=$out bash "$runner" "$@" | tee "$summary"

echo "==== stopping infoharbor ===="
stop_broker

echo
echo "==== summary ===="
echo "details: $out/failures.md, $out/log.html; broker log: $log"
grep -v -e '^FAIL ' -e '^\.\.\. ' "$summary" || true
