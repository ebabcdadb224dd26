#!/usr/bin/env bash
# Rebuilds packs/shapes from nothing (data -> training -> export -> figures).
# About an hour on 2 idle CPU cores; pass --only STAGE[,STAGE] to redo part of it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-python.sh"
cd "$root/python"
exec "$root/.venv/bin/python" -m shapesworld.build "$@"
