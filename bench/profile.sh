#!/usr/bin/env bash
# Where `latchkey serve` spends its CPU under one load, and what its idle memory is made of:
# perf (cpu-clock, so it works without hardware counters) on the server pinned to SERVER_CPU
# while wrk loads one endpoint from LOAD_CPU, then the top symbols. Loopback only.
# Usage: bench/profile.sh token|introspect_c1|introspect_c32|ceiling_token|verify|ping   (SECS=8;
# needs perf and wrk). NO_BUILD=1 profiles the binaries already in $CARGO_TARGET_DIR (another
# commit's). ceiling_token profiles latchkey-ceiling's /token under the same load, to subtract
# from token. verify is gRPC VerifyToken (1,000 live tokens, 32 streams, as bench/run.sh loads
# it); ping is latchkey-ceiling's ping under the same load, to subtract from verify.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
SCENARIO=${1:-token}
SECS=${SECS:-8}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
HTTP_PORT=${HTTP_PORT:-18180} GRPC_PORT=${GRPC_PORT:-15151} ADMIN_PORT=${ADMIN_PORT:-19564}
RESOURCE=https://mcp.example.com/mcp
OUT=${OUT:-$PWD/profile-$SCENARIO}

[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p latchkey -p latchkey-bench --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey
CEILING=${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey-ceiling
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey-bench
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$OUT"

export LATCHKEY_HTTP_ADDR=127.0.0.1:$HTTP_PORT LATCHKEY_GRPC_ADDR=127.0.0.1:$GRPC_PORT \
  LATCHKEY_ADMIN_ADDR=127.0.0.1:$ADMIN_PORT LATCHKEY_ISSUER=http://127.0.0.1:$HTTP_PORT \
  LATCHKEY_FORWARD_AUTH_ADDR=127.0.0.1:18183 \
  LATCHKEY_GATEWAY_SECRET=bench-gateway-secret-0123456789abcdef LATCHKEY_RATE_LIMIT_TOKEN_PER_MIN=4000000000
cd "$WORK"
taskset -c "$SERVER_CPU" "$BIN" serve >"$OUT/latchkey.log" 2>&1 &
PID=$!; PIDS+=("$PID")
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/health" && break; sleep 0.1; done
sleep 3
# Idle memory: the largest resident mappings, and the threads.
awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6" "$2} /^Rss:/{print $2, name}' "/proc/$PID/smaps" | sort -rn | head -25 >"$OUT/idle-smaps.txt"
grep -E '^(Rss|Anonymous|Pss_File|Pss_Anon)' "/proc/$PID/smaps_rollup" >>"$OUT/idle-smaps.txt"
ls "/proc/$PID/task" | wc -l | sed 's/^/threads: /' >>"$OUT/idle-smaps.txt"
for t in /proc/$PID/task/*; do cat "$t/comm"; done | sort | uniq -c >>"$OUT/idle-smaps.txt"

creds=$("$BIN" client add --name bench --grant-type client_credentials --resource "$RESOURCE" --audience "$RESOURCE" 2>/dev/null)
ID=$(awk '/^client_id:/{print $2}' <<<"$creds"); SECRET=$(awk '/^client_secret:/{print $2}' <<<"$creds")
export WRK_AUTH="Basic $(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)"
TOKEN_BODY="grant_type=client_credentials&resource=https%3A%2F%2Fmcp.example.com%2Fmcp&scope=mcp%3Atools"
for _ in $(seq 1 50); do curl -sf -o /dev/null -H "Authorization: $WRK_AUTH" "http://127.0.0.1:$HTTP_PORT/token" -d "$TOKEN_BODY" && break; sleep 0.1; done
case $SCENARIO in
  token) export WRK_BODY=$TOKEN_BODY; URL=http://127.0.0.1:$HTTP_PORT/token; CONNS=32 ;;
  ceiling_token)
    taskset -c "$SERVER_CPU" "$CEILING" token --addr "127.0.0.1:$((HTTP_PORT + 10))" --client-id="$ID" \
      --client-secret="$SECRET" --audience "$RESOURCE" >"$OUT/ceiling.log" 2>&1 &
    PID=$!; PIDS+=("$PID")
    for _ in $(seq 1 50); do curl -sf -o /dev/null -H "Authorization: $WRK_AUTH" "http://127.0.0.1:$((HTTP_PORT + 10))/token" -d "$TOKEN_BODY" && break; sleep 0.1; done
    export WRK_BODY=$TOKEN_BODY; URL=http://127.0.0.1:$((HTTP_PORT + 10))/token; CONNS=32 ;;
  introspect_c1|introspect_c32)
    AT=$(curl -s -H "Authorization: $WRK_AUTH" "http://127.0.0.1:$HTTP_PORT/token" -d "$TOKEN_BODY" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
    export WRK_BODY="token=$AT"; URL=http://127.0.0.1:$HTTP_PORT/introspect; CONNS=${SCENARIO#introspect_c} ;;
  verify) ;;
  ping)
    taskset -c "$SERVER_CPU" "$CEILING" ping --addr "127.0.0.1:$((GRPC_PORT + 10))" >"$OUT/ceiling.log" 2>&1 &
    PID=$!; PIDS+=("$PID")
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$((GRPC_PORT + 10))") 2>/dev/null && break; sleep 0.1; done ;;
  *) echo "unknown scenario $SCENARIO" >&2; exit 2 ;;
esac
# load SECONDS: the scenario's load for that long, its report on stdout.
load() {
  local grpc=(--client-id="$ID" --client-secret="$SECRET" --concurrency 32 --seconds "$1" --pid "$PID")
  case $SCENARIO in
    verify)
      taskset -c "$LOAD_CPU" "$BENCH" verify --grpc "http://127.0.0.1:$GRPC_PORT" --gateway-secret "$LATCHKEY_GATEWAY_SECRET" \
        --audience "$RESOURCE" --tokens 1000 --label verify "${grpc[@]}" ;;
    ping)
      taskset -c "$LOAD_CPU" "$BENCH" ping --grpc "http://127.0.0.1:$((GRPC_PORT + 10))" --label ping "${grpc[@]}" ;;
    *) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$1s" --latency -s "$SHARED/wrk-post.lua" "$URL" ;;
  esac
}
load 3 >/dev/null
load "$((SECS + 2))" >"$OUT/wrk.txt" &
WRK=$!; PIDS+=("$WRK")
sleep 1
T0=$(awk '{print $14+$15}' "/proc/$PID/stat")
perf record -q -e cpu-clock -F 1999 --call-graph dwarf,${STACK:-16384} -p "$PID" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null
T1=$(awk '{print $14+$15}' "/proc/$PID/stat")
wait "$WRK" || true
echo "server CPU over the profile: $(awk -v a="$T0" -v b="$T1" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}') s of $SECS s" >>"$OUT/wrk.txt"
perf report --no-inline -i "$OUT/perf.data" --no-children --stdio --sort symbol -g none --percent-limit 0.7 2>/dev/null \
  | grep -v '^#' | grep -v '^$' >"$OUT/self.txt"
perf report --no-inline -i "$OUT/perf.data" --children --stdio --sort symbol -g none --percent-limit 2 2>/dev/null \
  | grep -v '^#' | grep -v '^$' >"$OUT/children.txt"
echo "$OUT: self.txt (self time), children.txt (inclusive), idle-smaps.txt, wrk.txt"
