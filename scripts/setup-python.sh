#!/usr/bin/env bash
# Creates the project's Python environment in .venv (idempotent: does nothing when
# .venv already matches python/requirements.txt). torch is installed first and alone,
# pinned, so that no other package pulls a multi-GB CUDA build on a CPU machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
req="$root/python/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$(grep -E '^torch==' "$req")"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "Python environment ready in $venv" >&2
