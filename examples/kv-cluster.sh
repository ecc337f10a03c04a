#!/usr/bin/env bash
# The replicated KV service as three real processes on loopback: write, SIGKILL the
# leader, write again, restart the killed node, read everything back through the log.
# Exits non-zero on any mismatch or timeout. CI runs it after the tests.
#
#   bash examples/kv-cluster.sh
#
# KV_BIN=path/to/kv skips the build; KV_BASE_PORT picks the ports (default: random);
# KV_VERBOSE=1 prints the nodes' logs at the end (they always print on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/actraft-target}"
if [ -z "${KV_BIN:-}" ]; then
  cargo build --release --quiet -p actraft-examples --example kv
  KV_BIN="$CARGO_TARGET_DIR/release/examples/kv"
fi

deadline=$((SECONDS + 180)) # the whole scenario, start to finish
work="$(mktemp -d)"
base="${KV_BASE_PORT:-$((20000 + RANDOM % 12000))}" # below the ephemeral range
declare -A pid

addr() { echo "127.0.0.1:$((base + $1))"; }
nodes="$(addr 1),$(addr 2),$(addr 3)"

cleanup() {
  local status=$?
  for id in "${!pid[@]}"; do
    { kill -9 "${pid[$id]}" && wait "${pid[$id]}"; } 2>/dev/null || true
  done
  if [ "$status" -ne 0 ] || [ -n "${KV_VERBOSE:-}" ]; then
    for log in "$work"/node-*.log; do
      [ -f "$log" ] && { echo "--- $log"; tail -n 30 "$log"; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

die() { echo "kv-cluster: FAIL: $*" >&2; exit 1; }
check_time() { [ "$SECONDS" -lt "$deadline" ] || die "scenario took too long"; }

kv() { check_time; timeout 30 "$KV_BIN" "$@" --nodes "$nodes"; }

start() {
  local id=$1 peers=() other
  for other in 1 2 3; do
    [ "$other" = "$id" ] || peers+=("$other=$(addr "$other")")
  done
  local IFS=,
  "$KV_BIN" serve --id "$id" --listen "$(addr "$id")" --peers "${peers[*]}" \
    --data-dir "$work/data-$id" --certs "$work/certs" >>"$work/node-$id.log" 2>&1 &
  pid[$id]=$!
}

"$KV_BIN" certs --dir "$work/certs" --ids 1,2,3 >/dev/null
for id in 1 2 3; do start "$id"; done
echo "kv-cluster: 3 nodes on $nodes"

leader="$(kv leader)"
echo "kv-cluster: node $leader leads"
for i in $(seq 1 20); do
  [ "$(kv put "key$i" "value $i")" = "ok" ] || die "put key$i"
done
echo "kv-cluster: 20 writes committed"

{ kill -9 "${pid[$leader]}" && wait "${pid[$leader]}"; } 2>/dev/null || true
unset "pid[$leader]"
echo "kv-cluster: SIGKILLed the leader, node $leader"

for i in $(seq 21 40); do
  [ "$(kv put "key$i" "value $i")" = "ok" ] || die "put key$i after the crash"
done
[ "$(kv put key1 "rewritten")" = "ok" ] || die "overwrite key1"
new_leader="$(kv leader)"
[ "$new_leader" != "$leader" ] || die "the killed node still leads?"
echo "kv-cluster: node $new_leader leads; 21 more writes committed"

start "$leader"
echo "kv-cluster: restarted node $leader from its RocksDB"

# Everything reads back, through the log (the leader answers a get once it commits).
[ "$(kv get key1)" = "rewritten" ] || die "key1: expected rewritten, got $(kv get key1)"
for i in $(seq 2 40); do
  got="$(kv get "key$i")"
  [ "$got" = "value $i" ] || die "key$i: expected 'value $i', got '$got'"
done
[ "$(kv get missing)" = "(nil)" ] || die "a missing key reads back as something"
echo "kv-cluster: all 40 keys read back"

# The restarted node rejoins as a follower and applies the whole log.
target="$(KV_NODES="$(addr "$new_leader")" timeout 30 "$KV_BIN" status)"
commit="$(sed -n 's/.* commit=\([0-9]*\).*/\1/p' <<<"$target")"
while :; do
  check_time
  status="$(timeout 30 "$KV_BIN" status --nodes "$(addr "$leader")")"
  applied="$(sed -n 's/.* applied=\([0-9]*\).*/\1/p' <<<"$status")"
  if grep -q "role=follower" <<<"$status" && [ -n "$applied" ] && [ "$applied" -ge "$commit" ]; then
    break
  fi
  sleep 0.1
done
echo "kv-cluster: node $leader follows again and applied up to $commit"
echo "kv-cluster: PASS"
