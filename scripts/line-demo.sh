#!/usr/bin/env bash
# A model line on the shapes pack, nights back to back: the local stack and an all-in-one worker
# (as demo.sh), then NIGHTS nights (default 3) of line LINE (default shapes) started one after
# another, each sampling from the champion the previous one left. Prints each night's verdict and
# wall time, then the line. State and artifacts go to build/line-demo (a line there carries on
# from its last champion; remove the folder to start afresh).
#   ./scripts/line-demo.sh [NIGHTS] [LINE]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
nights="${1:-3}"
line="${2:-shapes}"
"$root/scripts/setup-python.sh"
"$root/scripts/setup-servers.sh"
"$root/scripts/setup-node.sh"
cd "$root"
demo="$root/build/line-demo"
mkdir -p "$demo"
export SELF_REWARD_STORE="$demo/store" SELF_REWARD_WORK_DIR="$demo/work"
source "$root/scripts/stack-lib.sh"
start_stack_and_worker
for night in $(seq "$nights"); do
  started=$(date +%s)
  "${cli[@]}" nightly --preset shapes --line "$line" --wait
  echo "night $night of this run: $(( $(date +%s) - started )) s wall time"
done
"${cli[@]}" line show "$line"
"${cli[@]}" line history "$line"
