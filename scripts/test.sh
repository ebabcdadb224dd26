#!/usr/bin/env bash
# Runs every test of the project, and the lint and formatting checks. Installs what the tests
# need first (idempotent): the Python venv, the Temporal and S3 servers (into the venv), the
# browser of the Web UI test, the Node packages.
# Arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-python.sh"
"$root/scripts/setup-servers.sh"
"$root/scripts/setup-browser.sh"
"$root/scripts/setup-node.sh"
(cd "$root/python" && "$root/.venv/bin/python" -m pytest -q "$@")
cd "$root"
"$root/scripts/lint.sh"
npx tsc --noEmit
npx vitest run
