#!/usr/bin/env bash
# Installs what the client tests need, at their pinned versions:
#   - target/clients-venv/filip and target/clients-venv/ngsildclient, one virtual environment
#     per Python library (their pins conflict: see clients/README.md), each installed with
#     `pip install --require-hashes --no-deps` from clients/python/requirements-<lib>.txt;
#   - clients/js/node_modules, with `npm ci` from clients/js/package-lock.json.
# Installs python3-venv, node and npm with apt when they are missing. A virtual environment
# whose requirements file has not changed since it was made is kept as it is.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../scripts/services.sh
. "$repo/scripts/services.sh"
venvs=${CARGO_TARGET_DIR:-$repo/target}/clients-venv

ensure_python_venv
ensure_node

for lib in filip ngsildclient; do
  requirements=$repo/clients/python/requirements-$lib.txt
  venv=$venvs/$lib
  stamp=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ -x "$venv/bin/pytest" ] && [ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" = "$stamp" ]; then
    echo "$lib: $venv is up to date"
    continue
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  # The file pins every distribution, so none is resolved: --no-deps (pip would otherwise
  # ask for a pin of each extra, e.g. `pydantic[email]`), then `pip check` that they fit.
  "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r "$requirements"
  "$venv/bin/pip" check --disable-pip-version-check
  echo "$stamp" >"$venv/.requirements-sha256"
  echo "$lib: installed $("$venv/bin/pip" --disable-pip-version-check show "$lib" | sed -n 's/^Version: //p') into $venv"
done

(cd "$repo/clients/js" && npm ci --no-audit --no-fund --loglevel=error)
echo "ngsijs: installed $(cd "$repo/clients/js" && node -p 'require("ngsijs/package.json").version') into clients/js/node_modules"
