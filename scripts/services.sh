# What the test suite needs on this machine besides the Rust toolchain, installed with apt and
# started when missing. Sourced by scripts/test.sh and .ci/run; each ensure_* function is
# idempotent and says what it found or did.
#
#   mosquitto        MQTT broker on 127.0.0.1:1883 (harbor-outbound and infoharbor notification tests)
#   postgres         PostgreSQL on 127.0.0.1:5432 (for the PostgreSQL backend, when it lands)
#   python_venv      python3 with venv and pip (the client tests under clients/python)
#   node             node and npm (the client tests under clients/js)
#   chromium         Debian's Chromium, which the console's browser tests drive

# True when something accepts TCP connections on 127.0.0.1:$1.
listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits up to 30 s for 127.0.0.1:$2; fails naming service $1.
wait_port() {
  local name=$1 port=$2 i
  for i in $(seq 1 60); do
    listening "$port" && return 0
    sleep 0.5
  done
  echo "error: $name is not listening on 127.0.0.1:$port after 30 s" >&2
  return 1
}

apt_updated=false
# Installs Debian packages that are missing (apt-get update once per run).
apt_install() {
  if [ "$apt_updated" = false ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# MQTT broker for notification tests, on 127.0.0.1:1883.
ensure_mosquitto() {
  if listening 1883; then
    echo "mosquitto: already listening on 1883"
    return 0
  fi
  command -v mosquitto >/dev/null || PATH="$PATH:/usr/sbin"
  command -v mosquitto >/dev/null || apt_install mosquitto
  # Debian's config writes its pid under /run/mosquitto, which only systemd would create.
  if id mosquitto >/dev/null 2>&1; then
    install -d -o mosquitto -g mosquitto /run/mosquitto
  fi
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_port mosquitto 1883
  echo "mosquitto: started"
}

# PostgreSQL (+ PostGIS later) for the postgres backend tests, on 127.0.0.1:5432.
ensure_postgres() {
  if listening 5432; then
    echo "postgresql: already listening on 5432"
    return 0
  fi
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port postgresql 5432
  echo "postgresql: started ($version/main)"
}

# python3 that can make virtual environments with pip in them (Debian splits out the venv
# module's ensurepip).
ensure_python_venv() {
  if command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "python3: $(python3 --version 2>&1 | cut -d' ' -f2), with venv"
    return 0
  fi
  apt_install python3 python3-venv
  echo "python3: installed $(python3 --version 2>&1 | cut -d' ' -f2)"
}

# node (with its built-in test runner) and npm.
ensure_node() {
  if command -v node >/dev/null && command -v npm >/dev/null; then
    echo "node: $(node --version), npm $(npm --version)"
    return 0
  fi
  apt_install nodejs npm
  echo "node: installed $(node --version)"
}

# Node packages of the tests that run node, exactly as each package-lock.json pins them: the
# OpenID Connect provider (crates/infoharbor/tests/oidc) and playwright-core, which drives
# Chromium through the console (crates/infoharbor/tests/console). Node 20 and npm come with
# the machine.
ensure_node_packages() {
  local dir
  if ! command -v npm >/dev/null; then
    echo "error: npm is missing; the OIDC and console tests need Node.js 20.19 or later with npm" >&2
    return 1
  fi
  node --version
  for dir in crates/infoharbor/tests/oidc crates/infoharbor/tests/console; do
    (cd "$dir" && npm ci --no-audit --no-fund)
  done
}

# Debian's Chromium for the console's browser tests (crates/infoharbor/tests/console.rs);
# playwright-core drives it and downloads no browser of its own.
ensure_chromium() {
  [ -x /usr/bin/chromium ] || apt_install chromium
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
}

# promtool, for the tests that check the metrics exposition and the alert rules
# (crates/infoharbor/tests/telemetry.rs); Debian ships it in the prometheus package.
ensure_promtool() {
  command -v promtool >/dev/null || apt_install prometheus
  echo "promtool: $(promtool --version 2>&1 | sed -n 1p)"
}
