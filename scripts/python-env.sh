#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environments of the tests and prints the path of an
# interpreter.
#
#   scripts/python-env.sh         the compatibility environment (target/python-venv): the callers'
#                                 own libraries (tests/python/requirements.txt, protobuf 6) and the
#                                 client installed from the checkout as a user does
#                                 (`pip install ./clients/python`), which must write nothing into
#                                 the checkout (checked here).
#   scripts/python-env.sh wheel   a clean environment (target/python-wheel-venv) with protobuf 7
#                                 and grpcio-reflection/grpcio-health-checking
#                                 (tests/python/requirements-protobuf7.txt) and the client's wheel
#                                 built with `python -m build` (into target/python-dist), with
#                                 `pip check`. Creates the first environment too (it has `build`).
#   scripts/python-env.sh mldsa   the ML-DSA environment (target/python-mldsa-venv): swt3-ai with
#                                 cryptography 48 (tests/python/requirements-mldsa.txt), which
#                                 swt3-ai's verify_mldsa needs and sqooler's cryptography<43 pin
#                                 forbids in the first environment, and the client from the
#                                 checkout, with `pip check`.
#
# An environment is recreated when its requirements change; the client is reinstalled (and the
# wheel rebuilt) when its files change.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-checkout}"
case "$mode" in checkout | wheel | mldsa) ;; *)
  echo "usage: scripts/python-env.sh [wheel|mldsa]" >&2
  exit 2
  ;;
esac

client_hash() {
  find clients/python/pyproject.toml clients/python/README.md clients/python/src -type f \
    \( -name '*.py' -o -name '*.pyi' -o -name '*.toml' -o -name '*.md' -o -name py.typed \) \
    -not -path '*/__pycache__/*' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

# make_venv DIR REQUIREMENTS: (re)creates DIR from REQUIREMENTS unless it was made from them.
make_venv() {
  local venv="$1" requirements="$2"
  if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$venv/.requirements"; then
    return
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
  cp "$requirements" "$venv/.requirements"
}

hash="$(client_hash)"
if [ "$mode" = mldsa ]; then
  mldsa_venv=target/python-mldsa-venv
  make_venv "$mldsa_venv" tests/python/requirements-mldsa.txt
  if [ "$(cat "$mldsa_venv/.client" 2>/dev/null)" != "$hash" ]; then
    "$mldsa_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      --force-reinstall ./clients/python >&2
    "$mldsa_venv/bin/python" -m pip check --disable-pip-version-check >&2
    echo "$hash" >"$mldsa_venv/.client"
  fi
  echo "$PWD/$mldsa_venv/bin/python"
  exit 0
fi

venv=target/python-venv
make_venv "$venv" tests/python/requirements.txt
if [ "$(cat "$venv/.client" 2>/dev/null)" != "$hash" ]; then
  # A regular (not editable) install exactly as the README says, so the tests also check what a
  # user's pip installs, and that it leaves the checkout as it was.
  before="$(find clients/python -path '*/__pycache__' -prune -o -print | LC_ALL=C sort)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --force-reinstall ./clients/python >&2
  after="$(find clients/python -path '*/__pycache__' -prune -o -print | LC_ALL=C sort)"
  if [ "$before" != "$after" ]; then
    echo "python-env.sh: 'pip install ./clients/python' wrote into the checkout:" >&2
    diff <(echo "$before") <(echo "$after") | grep '^>' >&2 || true
    exit 1
  fi
  "$venv/bin/python" -m pip check --disable-pip-version-check >&2
  echo "$hash" >"$venv/.client"
fi
if [ "$mode" = checkout ]; then
  echo "$PWD/$venv/bin/python"
  exit 0
fi

wheel_venv=target/python-wheel-venv
dist=target/python-dist
make_venv "$wheel_venv" tests/python/requirements-protobuf7.txt
if [ "$(cat "$wheel_venv/.client" 2>/dev/null)" != "$hash" ]; then
  rm -rf "$dist"
  # The sdist first, then the wheel from the sdist (build's default), so both are checked.
  "$venv/bin/python" -m build --outdir "$dist" clients/python >&2
  wheels=("$dist"/signet_client-*.whl)
  "$wheel_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --force-reinstall "${wheels[0]}" >&2
  "$wheel_venv/bin/python" -m pip check --disable-pip-version-check >&2
  echo "$hash" >"$wheel_venv/.client"
fi
echo "$PWD/$wheel_venv/bin/python"
