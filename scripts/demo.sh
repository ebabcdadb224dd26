#!/usr/bin/env bash
# The main job on the embedded defaults: one self-reward round on the shapes pack
# (sample 8 per training prompt -> judge -> curate -> LoRA-train -> evaluate on
# held-out prompts), printing the figures. Work files go to build/demo.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -f "$root/packs/shapes/pack.json" ]; then
  echo "demo: packs/shapes/pack.json is missing; build the pack first with scripts/build-pack.sh" >&2
  exit 2
fi
"$root/scripts/setup-python.sh"
cd "$root/python"
exec "$root/.venv/bin/python" -m shapesworld.proof --work "$root/build/demo" "$@"
