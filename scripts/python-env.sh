#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment the integration tests use to check
# compatibility with the callers' own libraries (tests/python/requirements.txt), and prints the
# path of its interpreter. Reinstalls when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-venv
requirements=tests/python/requirements.txt
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
  echo "$PWD/$venv/bin/python"
  exit 0
fi
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
echo "$PWD/$venv/bin/python"
