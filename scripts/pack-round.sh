#!/usr/bin/env bash
# The product's own round on the shapes pack, for the pack's model card: the demo's stack
# (local Temporal dev server, all-in-one worker, local store under build/pack-round) runs one
# round with the shapes preset, and its whole RoundResult is written as JSON to the file named
# first. The pack builder's `round` stage runs this; further arguments go to `selfreward round`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 RESULT.json [selfreward round options]" >&2; exit 2; }
out="$(realpath -m "$1")"
shift
"$root/scripts/setup-python.sh"
"$root/scripts/setup-servers.sh"
"$root/scripts/setup-node.sh"
cd "$root"
demo="$root/build/pack-round"
rm -rf "$demo"
mkdir -p "$demo" "$(dirname "$out")"
export SELF_REWARD_STORE="$demo/store" SELF_REWARD_WORK_DIR="$demo/work"
source "$root/scripts/stack-lib.sh"
start_stack_and_worker
id="pack-round-$(date -u +%Y%m%dT%H%M%S)"
"${cli[@]}" round --preset shapes --id "$id" --wait "$@"
"${cli[@]}" result "$id" --json > "$out"
echo "round result: $out"
