#!/usr/bin/env bash
# The replicated KV service as three real processes on loopback: write, retry a write
# with the same sequence number (answered from its session, not applied again), SIGKILL
# the leader, write again while the others snapshot and compact their logs past it,
# restart the killed node (it catches up by snapshot), read everything back by every
# read path, stop a node with SIGTERM. Exits non-zero on any mismatch or timeout. CI runs
# it after the tests.
#
#   bash examples/kv-cluster.sh
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
export KV_CERTS="$work/certs" # the client certificate, from `kv certs`

start() {
  local id=$1 peers=() other
  for other in 1 2 3; do
    [ "$other" = "$id" ] || peers+=("$other=$(addr "$other")")
  done
  local IFS=,
  RUST_LOG="${RUST_LOG:-info}" "$KV_BIN" serve --id "$id" --listen "$(addr "$id")" --peers "${peers[*]}" \
    --data-dir "$work/data-$id" --certs "$work/certs" --lease-reads \
    --snapshot-after-entries 16 --snapshot-keep-entries 4 >>"$work/node-$id.log" 2>&1 &
  pid[$id]=$!
}

"$KV_BIN" certs --dir "$work/certs" --ids 1,2,3 --clients client >/dev/null
for id in 1 2 3; do start "$id"; done
echo "kv-cluster: 3 nodes on $nodes"

leader="$(kv leader)"
echo "kv-cluster: node $leader leads"
for i in $(seq 1 20); do
  [ "$(kv put "key$i" "value $i")" = "ok" ] || die "put key$i"
done
echo "kv-cluster: 20 writes committed"

# A retried write: the same session and sequence number again, after another client
# overwrote the key. It is answered from the session and not applied again.
sid="$(kv session)"
[ "$(kv put r0 A --session "$sid" --seq 1)" = "ok" ] || die "put r0 A"
[ "$(kv put r0 B)" = "ok" ] || die "put r0 B"
note="$(kv put r0 A --session "$sid" --seq 1 2>&1 >/dev/null)" || die "retry of put r0 A"
grep -q "answered from the session" <<<"$note" || die "the retry was not recognised: $note"
[ "$(kv get r0)" = "B" ] || die "r0: the retried put was applied again (got $(kv get r0))"
[ "$(kv put r0 C --session "$sid" --seq 2)" = "ok" ] || die "put r0 C"
if err="$(kv put r0 A --session "$sid" --seq 1 2>&1)"; then die "a stale sequence number was accepted"; fi
grep -q "stale" <<<"$err" || die "unexpected refusal: $err"
echo "kv-cluster: a retried put was answered from its session, applied once"

# A paused node first in the list costs one connect timeout (1 s), not the request's.
for paused in 1 2 3; do [ "$paused" = "$leader" ] || break; done
kill -STOP "${pid[$paused]}"
started=$SECONDS
out="$(check_time; timeout 30 "$KV_BIN" put slow ok --nodes "$(addr "$paused"),$nodes")" || { kill -CONT "${pid[$paused]}"; die "put with node $paused paused"; }
took=$((SECONDS - started))
kill -CONT "${pid[$paused]}"
[ "$out" = "ok" ] && [ "$took" -le 4 ] || die "put with node $paused paused took ${took}s"
echo "kv-cluster: a put with node $paused paused first in the list took ${took}s"

# Deletes, and absent keys (exit code 3).
[ "$(kv put gone soon)" = "ok" ] || die "put gone"
[ "$(kv delete gone)" = "ok" ] || die "delete gone"
status=0; kv delete gone 2>/dev/null || status=$?
[ "$status" = 3 ] || die "deleting an absent key: exit $status, expected 3"
if kv put "" value 2>/dev/null; then die "an empty key was accepted"; fi

killed_at="$(timeout 30 "$KV_BIN" status --lines --nodes "$(addr "$leader")" | sed -n 's/.* applied=\([0-9]*\).*/\1/p')"
{ kill -9 "${pid[$leader]}" && wait "${pid[$leader]}"; } 2>/dev/null || true
unset "pid[$leader]"
echo "kv-cluster: SIGKILLed the leader, node $leader (applied up to $killed_at)"

for i in $(seq 21 40); do
  [ "$(kv put "key$i" "value $i")" = "ok" ] || die "put key$i after the crash"
done
[ "$(kv put key1 "rewritten")" = "ok" ] || die "overwrite key1"
new_leader="$(kv leader)"
[ "$new_leader" != "$leader" ] || die "the killed node still leads?"
echo "kv-cluster: node $new_leader leads; 21 more writes committed"
# Snapshots every 16 entries, 4 kept behind: the live nodes compacted past the dead one.
status="$(timeout 30 "$KV_BIN" status --lines --nodes "$(addr "$new_leader")")"
compacted="$(sed -n 's/.* snapshot=\([0-9]*\).*/\1/p' <<<"$status")"
[ -n "$compacted" ] && [ "$compacted" -gt $((killed_at + 4)) ] || die "node $new_leader did not compact past $killed_at: $status"
[ -s "$work/data-$new_leader.snapshots/snapshot" ] || die "no snapshot file beside node $new_leader's RocksDB"
echo "kv-cluster: node $new_leader snapshotted up to $compacted and compacted its log"

start "$leader"
echo "kv-cluster: restarted node $leader from its RocksDB"

# Everything reads back, by every read path (a read index on the leader by default).
for read in index log lease follower; do
  [ "$(kv get key1 --read "$read")" = "rewritten" ] || die "key1 ($read): expected rewritten, got $(kv get key1 --read "$read")"
  for i in $(seq 2 40); do
    got="$(kv get "key$i" --read "$read")"
    [ "$got" = "value $i" ] || die "key$i ($read): expected 'value $i', got '$got'"
  done
  status=0; kv get missing --read "$read" >/dev/null 2>&1 || status=$?
  [ "$status" = 3 ] || die "a missing key ($read): exit $status, expected 3 (not found)"
done
echo "kv-cluster: all 40 keys read back by every read path (index, log, lease, follower)"

# The restarted node rejoins as a follower and applies the whole log.
target="$(KV_NODES="$(addr "$new_leader")" timeout 30 "$KV_BIN" status --lines)"
commit="$(sed -n 's/.* commit=\([0-9]*\).*/\1/p' <<<"$target")"
while :; do
  check_time
  status="$(timeout 30 "$KV_BIN" status --lines --nodes "$(addr "$leader")")"
  applied="$(sed -n 's/.* applied=\([0-9]*\).*/\1/p' <<<"$status")"
  if grep -q "role=follower" <<<"$status" && [ -n "$applied" ] && [ "$applied" -ge "$commit" ]; then
    break
  fi
  sleep 0.1
done
grep -q "installed a snapshot" "$work/node-$leader.log" || die "node $leader did not catch up by snapshot"
echo "kv-cluster: node $leader caught up by snapshot (InstallSnapshot), follows again and applied up to $commit"

# A graceful stop: SIGTERM, exit 0.
kill -TERM "${pid[$leader]}"
status=0; wait "${pid[$leader]}" || status=$?
unset "pid[$leader]"
[ "$status" = 0 ] || die "node $leader exited with $status after SIGTERM"
grep -q "stopped" "$work/node-$leader.log" || die "node $leader did not report stopping"
if grep -q $'\x1b\[' "$work"/node-*.log; then die "colour codes in logs written to a file"; fi
echo "kv-cluster: node $leader stopped gracefully on SIGTERM"

# One node of three left: no majority, and the client says so.
{ kill -9 "${pid[$new_leader]}" && wait "${pid[$new_leader]}"; } 2>/dev/null || true
unset "pid[$new_leader]"
if err="$(kv put lonely write --timeout 3 2>&1)"; then die "a write succeeded without a majority"; fi
grep -q "no leader known: does the cluster have a majority?" <<<"$err" || die "unclear error without a majority: $err"
echo "kv-cluster: without a majority the client says so"
echo "kv-cluster: PASS"
