#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (idempotent).
# Arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-python.sh"
(cd "$root/python" && "$root/.venv/bin/python" -m pytest -q "$@")

# Node dependencies: reinstalled when package-lock.json changed since the last install.
# The CUDA provider of onnxruntime-node is skipped here (CPU); GPU nodes install it
# with ONNXRUNTIME_NODE_INSTALL=cuda12.
cd "$root"
stamp="node_modules/.package-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
npx tsc --noEmit
npx vitest run
