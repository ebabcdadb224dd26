#!/bin/sh
# Prepares a Temporal cluster for self-reward rounds: the namespace (created when missing) and
# the rounds' custom search attributes (registered when missing). Safe to run again, and
# against any cluster: `docker compose run --rm --no-deps -e TEMPORAL_ADDRESS=host:7233 temporal-init`.
#
#   TEMPORAL_ADDRESS     the cluster's frontend, host:port
#   TEMPORAL_NAMESPACE   the namespace the workers use
#   SEARCH_ATTRIBUTES    space-separated NAME=Type pairs (config/searchAttributes.ts lists them;
#                        a test checks that docker-compose.yml passes every one)
#   NAMESPACE_RETENTION  how long closed workflows are kept (default 720h, 30 days)
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS must be set}"
: "${TEMPORAL_NAMESPACE:?TEMPORAL_NAMESPACE must be set}"
: "${SEARCH_ATTRIBUTES:?SEARCH_ATTRIBUTES must be set}"

# retry TRIES WHAT COMMAND...: runs COMMAND every 2 s until it succeeds, at most TRIES times.
retry() {
  tries=$1
  what=$2
  shift 2
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge "$tries" ]; then
      echo "setup-namespace: $what after $attempt tries" >&2
      exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
}

quietly() { "$@" >/dev/null 2>&1; }

retry 60 "Temporal at $TEMPORAL_ADDRESS is not healthy" quietly temporal operator cluster health --address "$TEMPORAL_ADDRESS"

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  echo "setup-namespace: namespace $TEMPORAL_NAMESPACE exists"
else
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "${NAMESPACE_RETENTION:-720h}" --address "$TEMPORAL_ADDRESS"
fi

# A namespace just created may not be served by every frontend yet: retry each registration.
registered="$(temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" 2>/dev/null || true)"
for pair in $SEARCH_ATTRIBUTES; do
  name="${pair%%=*}"
  type="${pair#*=}"
  if printf '%s\n' "$registered" | grep -qw "$name"; then
    echo "setup-namespace: search attribute $name exists"
    continue
  fi
  retry 30 "could not register search attribute $name ($type)" \
    temporal operator search-attribute create --name "$name" --type "$type" --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS"
done
echo "setup-namespace: done"
