#!/usr/bin/env bash
# The project's full test command. On a fresh Debian machine it installs (with apt) and starts
# what the tests need when it is missing, then runs every test; any failure fails it.
#   1. services: mosquitto on 127.0.0.1:1883, the npm packages of the OpenID Connect
#      provider the identity tests start and of the console's browser tests, Debian's
#      Chromium for those, promtool for the metrics tests (scripts/services.sh)
#   2. the release binary (`cargo build --release -p infoharbor`), which the client tests drive
#   3. the client libraries at their pins: Python virtual environments under
#      target/clients-venv, `npm ci` in clients/js (clients/setup.sh; python3-venv, node and npm
#      come from apt when missing)
#   4. `cargo test --workspace`, then the trace export test, which needs the `otlp` feature
#      (`cargo test -p infoharbor --features otlp --test otlp`)
#   5. the client tests: filip, ngsildclient, ngsijs (clients/run.sh)
# Needs a Rust toolchain and root (or sudo-less apt) for what it installs. Arguments are passed
# to `cargo test --workspace`. `cargo test -p CRATE` stays the quick loop while working.
set -euo pipefail

cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=services.sh
. scripts/services.sh

step() {
  printf '\n==== %s ====\n' "$*"
}

step "services"
ensure_mosquitto
ensure_node_packages
ensure_chromium
ensure_promtool

step "cargo build --release -p infoharbor"
cargo build --release -p infoharbor

step "client libraries"
clients/setup.sh

step "cargo test --workspace"
cargo test --workspace "$@"

step "cargo test -p infoharbor --features otlp --test otlp"
cargo test -p infoharbor --features otlp --test otlp

step "client tests"
clients/run.sh

step "all tests passed"
