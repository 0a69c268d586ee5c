#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment the integration tests use to check
# compatibility with the callers' own libraries (tests/python/requirements.txt), installs the
# Python client (clients/python) into it, and prints the path of its interpreter. Recreates the
# environment when the requirements change and reinstalls the client when its files change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-venv
requirements=tests/python/requirements.txt
stamp="$venv/.requirements"
client_stamp="$venv/.client"
client_hash() {
  find clients/python/pyproject.toml clients/python/README.md clients/python/src -type f \
    \( -name '*.py' -o -name '*.pyi' -o -name '*.toml' -o -name '*.md' -o -name py.typed \) \
    -not -path '*/__pycache__/*' -not -path '*.egg-info/*' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
if ! { [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; }; then
  rm -rf "$venv"
  mkdir -p target
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv separately from python3.
    scripts/ensure-packages.sh python3 python3-venv
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
hash="$(client_hash)"
if [ "$(cat "$client_stamp" 2>/dev/null)" != "$hash" ]; then
  # A regular (not editable) install, so the tests also check what a user's pip installs.
  rm -rf clients/python/build
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --force-reinstall ./clients/python >&2
  rm -rf clients/python/build clients/python/src/*.egg-info
  "$venv/bin/python" -m pip check --disable-pip-version-check >&2
  echo "$hash" >"$client_stamp"
fi
echo "$PWD/$venv/bin/python"
