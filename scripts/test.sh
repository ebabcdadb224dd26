#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (idempotent).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-python.sh"
cd "$root/python"
exec "$root/.venv/bin/python" -m pytest -q "$@"
