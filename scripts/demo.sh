#!/usr/bin/env bash
# The main job on the embedded defaults: a local Temporal dev server (Web UI on
# http://localhost:8233), an all-in-one worker, and one self-reward round on the
# shapes pack (sample -> judge -> curate -> LoRA-train -> evaluate -> report) started
# with the shapes preset; prints live progress, the headline figures and where the
# report is. State and artifacts go to build/demo.
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
cli=(node_modules/.bin/tsx cli/selfreward.ts)

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"${cli[@]}" stack --state "$demo/stack" > "$demo/stack.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do
  grep -q "^Temporal at" "$demo/stack.log" && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$demo/stack.log" >&2; exit 1; }
  sleep 1
done
grep -q "^Temporal at" "$demo/stack.log" || { echo "demo: Temporal did not start; see $demo/stack.log" >&2; exit 1; }
cat "$demo/stack.log"

"${cli[@]}" worker --role all-in-one > "$demo/worker.log" 2>&1 &
pids+=($!)
echo "worker log: $demo/worker.log"
"${cli[@]}" round --preset shapes --wait "$@"
