#!/usr/bin/env bash
# mypy over the installed names: models/ and fuzz/ install as pmdswap_fuzz.models and
# pmdswap_fuzz.fuzz (pyproject.toml package-dir), which mypy cannot map by itself, so a
# throwaway directory of two symlinks gives it that layout. Settings are in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir "$root/pmdswap_fuzz"
ln -s "$repo/models" "$root/pmdswap_fuzz/models"
ln -s "$repo/fuzz" "$root/pmdswap_fuzz/fuzz"
MYPY=${MYPY:-$repo/.venv/bin/mypy}
cd "$root"
MYPYPATH=$root "$MYPY" --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache" \
	--explicit-package-bases pmdswap_fuzz "$repo"/tools/*.py "$@"
