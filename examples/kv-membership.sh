#!/usr/bin/env bash
# Replacing a member of a live KV cluster, as real processes on loopback: three nodes
# serve continuous client writes while a fourth node starts empty, joins as a learner,
# is promoted to voter once it caught up, and one of the original nodes (the leader, to
# make it harder) is removed and its process stopped. Not one write may fail, and every
# acknowledged write must read back at the end, from the new node too. Then the
# leadership moves to the new node on request. CI runs it after the tests.
#
#   bash examples/kv-membership.sh
#
# KV_BIN=path/to/kv skips the build; KV_BASE_PORT picks the ports (default: random);
# KV_VERBOSE=1 prints the nodes' logs at the end (they always print on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/actraft-target}"
if [ -z "${KV_BIN:-}" ]; then
  cargo build --release --quiet -p actraft-examples --features rocks --example kv
  KV_BIN="$CARGO_TARGET_DIR/release/examples/kv"
fi

deadline=$((SECONDS + 240)) # the whole scenario, start to finish
work="$(mktemp -d)"
base="${KV_BASE_PORT:-$((20000 + RANDOM % 12000))}" # below the ephemeral range
declare -A pid
writer=""

addr() { echo "127.0.0.1:$((base + $1))"; }
all_nodes="$(addr 1),$(addr 2),$(addr 3),$(addr 4)"

cleanup() {
  local status=$?
  [ -n "$writer" ] && { kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null; } || true
  for id in "${!pid[@]}"; do
    { kill -9 "${pid[$id]}" && wait "${pid[$id]}"; } 2>/dev/null || true
  done
  if [ "$status" -ne 0 ] || [ -n "${KV_VERBOSE:-}" ]; then
    for log in "$work"/node-*.log "$work"/writer.log; do
      [ -f "$log" ] && { echo "--- $log"; tail -n 30 "$log"; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

die() { echo "kv-membership: FAIL: $*" >&2; exit 1; }
check_time() { [ "$SECONDS" -lt "$deadline" ] || die "scenario took too long"; }

kv() { check_time; timeout 60 "$KV_BIN" "$@" --nodes "$all_nodes"; }
export KV_CERTS="$work/certs" # the client certificate, from `kv certs`

# start ID [--join]: node ID, knowing nodes 1-3 as its peers (the first configuration).
start() {
  local id=$1 peers=() other
  shift
  for other in 1 2 3; do
    [ "$other" = "$id" ] || peers+=("$other=$(addr "$other")")
  done
  local IFS=,
  RUST_LOG="${RUST_LOG:-info}" "$KV_BIN" serve --id "$id" --listen "$(addr "$id")" --peers "${peers[*]}" \
    --data-dir "$work/data-$id" --certs "$work/certs" "$@" >>"$work/node-$id.log" 2>&1 &
  pid[$id]=$!
}

# Certificates for all four nodes up front: the cluster's CA signs the newcomer's too.
"$KV_BIN" certs --dir "$work/certs" --ids 1,2,3,4 --clients client >/dev/null
for id in 1 2 3; do start "$id"; done
leader="$(kv leader)"
echo "kv-membership: nodes 1-3 up, node $leader leads"

# Continuous writes, one after another, each acknowledged before the next: any failure
# is recorded. Stops when the file `stop` appears.
(
  i=0
  while [ ! -e "$work/stop" ]; do
    i=$((i + 1))
    if out="$(timeout 60 "$KV_BIN" put "w$i" "v$i" --nodes "$all_nodes" 2>&1)" && [ "$out" = "ok" ]; then
      echo "$i" >"$work/acked.tmp" && mv "$work/acked.tmp" "$work/acked"
    else
      echo "write w$i failed: $out" >>"$work/failures"
    fi
  done
) >"$work/writer.log" 2>&1 &
writer=$!
acked() { local n; n="$(cat "$work/acked" 2>/dev/null || true)"; echo "${n:-0}"; }
wait_writes() { # wait until at least $1 more writes were acknowledged
  local target
  target=$(($(acked) + $1))
  while [ "$(acked)" -lt "$target" ]; do
    check_time
    [ ! -s "$work/failures" ] || die "$(head -n 3 "$work/failures")"
    sleep 0.1
  done
}
wait_writes 20
echo "kv-membership: writes flowing"

start 4 --join
kv add-node --id 4 --addr "$(addr 4)" --learner >/dev/null || die "add node 4 as a learner"
kv members | grep -q "learners=4" || die "node 4 is not a learner: $(kv members)"
echo "kv-membership: node 4 joined as a learner"
wait_writes 20

kv add-node --id 4 --addr "$(addr 4)" >/dev/null || die "promote node 4"
members="$(kv members)"
grep -q "voters=1,2,3,4 " <<<"$members" || die "node 4 is not a voter: $members"
echo "kv-membership: node 4 promoted to voter ($members)"
wait_writes 20

old="$(kv leader)"
kv remove-node --id "$old" >/dev/null || die "remove node $old"
members="$(kv members)"
voters="$(sed -n 's/^voters=\([0-9,]*\).*/\1/p' <<<"$members")"
[[ ",$voters," != *",$old,"* ]] || die "node $old is still a voter: $members"
echo "kv-membership: removed node $old (the leader); now $members"
wait_writes 20
kill -TERM "${pid[$old]}"
wait "${pid[$old]}" 2>/dev/null || true
unset "pid[$old]"
echo "kv-membership: stopped node $old's process"
wait_writes 20

touch "$work/stop"
wait "$writer" || true
writer=""
[ ! -s "$work/failures" ] || die "failed writes: $(head -n 3 "$work/failures")"
acked="$(acked)"
echo "kv-membership: $acked writes, none failed"

# Everything reads back, through the leader and from the new node (a follower read).
remaining=""
for id in 1 2 3 4; do [ "$id" = "$old" ] || remaining="$remaining,$(addr "$id")"; done
remaining="${remaining#,}"
for i in $(seq 1 "$acked"); do
  got="$(check_time; timeout 30 "$KV_BIN" get "w$i" --nodes "$remaining")"
  [ "$got" = "v$i" ] || die "w$i: expected v$i, got '$got'"
done
got="$(timeout 30 "$KV_BIN" get "w$acked" --read follower --nodes "$(addr 4)")"
[ "$got" = "v$acked" ] || die "node 4 (follower read) has w$acked = '$got'"
echo "kv-membership: all $acked writes read back, node 4 serves them too"

moved="$(timeout 60 "$KV_BIN" transfer-leader --to 4 --nodes "$remaining")" || die "transfer to node 4"
[ "$(timeout 30 "$KV_BIN" leader --nodes "$remaining")" = 4 ] || die "node 4 does not lead after: $moved"
[ "$(timeout 30 "$KV_BIN" put after transfer --nodes "$remaining")" = ok ] || die "write after the transfer"
echo "kv-membership: leadership moved to node 4 on request; writes go on"
echo "kv-membership: PASS"
