#!/usr/bin/env bash
# Node dependencies (idempotent): reinstalled when package-lock.json changed since the
# last install. onnxruntime-node's CUDA provider is skipped (CPU); GPU nodes install it
# with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp="node_modules/.package-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}" npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
