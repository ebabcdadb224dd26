#!/usr/bin/env bash
# Screens loop settings with the product on the shapes pack (scripts/screen.ts): the demo's
# stack (local Temporal dev server, all-in-one worker, store under build/screen) runs one round
# per variant with several trainer seeds, and prints their validation figures.
#   ./scripts/screen.sh --seeds 3 --variant '{"lora":{"maxSteps":600,"lrScheduler":"constant"}}' --variant '{}'
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-python.sh"
"$root/scripts/setup-servers.sh"
"$root/scripts/setup-node.sh"
cd "$root"
demo="$root/build/screen"
mkdir -p "$demo"
export SELF_REWARD_STORE="$demo/store" SELF_REWARD_WORK_DIR="$demo/work"
source "$root/scripts/stack-lib.sh"
start_stack_and_worker
node_modules/.bin/tsx scripts/screen.ts --preset shapes "$@"
