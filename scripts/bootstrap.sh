#!/usr/bin/env bash
# Create .venv and install requirements/dev.txt into it; reinstall only when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3.10 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 15) else 1)' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "bootstrap: no Python 3.10-3.14 found (set PYTHON=...)" >&2
  exit 1
}

if [ ! -x .venv/bin/python ]; then
  python=$(pick_python)
  echo "bootstrap: creating .venv with $python" >&2
  "$python" -m venv .venv
fi

stamp=.venv/.requirements.sha
wanted=$(cat requirements/*.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "bootstrap: installing requirements/dev.txt" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
  echo "$wanted" > "$stamp"
fi
mkdir -p var
