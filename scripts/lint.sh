#!/usr/bin/env bash
# Lint and formatting checks: typescript-eslint and prettier for the TypeScript, ruff for the
# Python. Run by scripts/test.sh; `npm run format` and `.venv/bin/ruff format python` fix formatting.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
npx eslint .
npx prettier --check .
.venv/bin/ruff check python
.venv/bin/ruff format --check python
