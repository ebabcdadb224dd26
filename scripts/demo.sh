#!/usr/bin/env bash
# The main job on the embedded defaults: a local Temporal dev server (Web UI on
# http://localhost:8233), an all-in-one worker, and one self-reward round on the shapes pack
# (sample -> judge -> curate -> LoRA-train -> evaluate -> report) started with the shapes
# preset; prints live progress, the headline figures and where the report is. State and
# artifacts go to build/demo.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -f "$root/packs/shapes/pack.json" ]; then
  echo "demo: packs/shapes/pack.json is missing; build the pack first with scripts/build-pack.sh" >&2
  exit 2
fi
"$root/scripts/setup-python.sh"
"$root/scripts/setup-servers.sh"
"$root/scripts/setup-node.sh"
cd "$root"
demo="$root/build/demo"
mkdir -p "$demo"
export SELF_REWARD_STORE="$demo/store" SELF_REWARD_WORK_DIR="$demo/work"
source "$root/scripts/stack-lib.sh"
start_stack_and_worker
"${cli[@]}" round --preset shapes --wait "$@"
