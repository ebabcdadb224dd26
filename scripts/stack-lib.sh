# Shared by demo.sh and line-demo.sh (sourced, not run): starts the local stack (Temporal dev
# server with its Web UI, state in $demo/stack) and an all-in-one worker in the background, and
# stops both when the calling script exits. Needs $root and $demo.
cli=(node_modules/.bin/tsx cli/selfreward.ts)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start_stack_and_worker() {
  "${cli[@]}" stack --state "$demo/stack" > "$demo/stack.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 120); do
    grep -q "^Temporal at" "$demo/stack.log" && break
    kill -0 "${pids[0]}" 2>/dev/null || { cat "$demo/stack.log" >&2; exit 1; }
    sleep 1
  done
  grep -q "^Temporal at" "$demo/stack.log" || { echo "$0: Temporal did not start; see $demo/stack.log" >&2; exit 1; }
  cat "$demo/stack.log"
  "${cli[@]}" worker --role all-in-one > "$demo/worker.log" 2>&1 &
  pids+=($!)
  echo "worker log: $demo/worker.log"
}
