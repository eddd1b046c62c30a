#!/usr/bin/env bash
# Two builds of `latchkey serve` in alternation, to tell a change from the machine's drift:
# client_credentials /token and /introspect at 32 connections, and gRPC VerifyToken (1,000 live
# tokens, 32 streams, as bench/run.sh loads it), each server pinned to SERVER_CPU and loaded from
# LOAD_CPU, PAIRS times. Prints requests per server CPU-second.
# Usage: bench/ab.sh BEFORE_BIN AFTER_BIN   (PAIRS=3, SECS=8, SCENARIOS="token introspect verify";
# loopback only; needs wrk, and latchkey-bench: BENCH, or this checkout's release build)
# e.g. git worktree add /tmp/wt-old <commit> && (cd /tmp/wt-old && CARGO_TARGET_DIR=/tmp/t-old \
#      cargo build --release -p latchkey) && bench/ab.sh /tmp/t-old/release/latchkey target/release/latchkey
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
PAIRS=${PAIRS:-3} SECS=${SECS:-8} SERVER_CPU=${SERVER_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-18280}
SCENARIOS=${SCENARIOS:-token introspect verify}
GATEWAY_SECRET=bench-gateway-secret-0123456789abcdef
BENCH=${BENCH:-${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey-bench}
RESOURCE=https%3A%2F%2Fmcp.example.com%2Fmcp
TOKEN_BODY="grant_type=client_credentials&resource=$RESOURCE&scope=mcp%3Atools"

# measure BIN LABEL: one server, both loads; stops the server by its pid.
measure() {
  local bin=$1 label=$2 work pid creds id secret token
  work=$(mktemp -d)
  (cd "$work" && LATCHKEY_HTTP_ADDR=127.0.0.1:$PORT LATCHKEY_GRPC_ADDR=127.0.0.1:$((PORT + 1)) \
    LATCHKEY_METRICS_ADDR=127.0.0.1:$((PORT + 2)) LATCHKEY_ADMIN_ADDR=127.0.0.1:$((PORT + 2)) \
    LATCHKEY_FORWARD_AUTH_ADDR=127.0.0.1:$((PORT + 3)) LATCHKEY_ISSUER=http://127.0.0.1:$PORT \
    LATCHKEY_GATEWAY_SECRET=$GATEWAY_SECRET \
    LATCHKEY_RATE_LIMIT_TOKEN_PER_MIN=4000000000 \
    exec taskset -c "$SERVER_CPU" "$bin" serve >"$work/log" 2>&1) &
  pid=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
  creds=$(cd "$work" && "$bin" client add --name bench --grant-type client_credentials \
    --resource https://mcp.example.com/mcp --audience https://mcp.example.com/mcp 2>/dev/null)
  id=$(awk '/^client_id:/{print $2}' <<<"$creds"); secret=$(awk '/^client_secret:/{print $2}' <<<"$creds")
  export WRK_AUTH="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  for _ in $(seq 1 50); do
    token=$(curl -sf -H "Authorization: $WRK_AUTH" "http://127.0.0.1:$PORT/token" -d "$TOKEN_BODY" \
      | sed -E 's/.*"access_token":"([^"]+)".*/\1/') && break
    sleep 0.1
  done
  for scenario in $SCENARIOS; do
    local url body t0 t1 out rps
    if [ "$scenario" = verify ]; then
      out=$(taskset -c "$LOAD_CPU" "$BENCH" verify --grpc "http://127.0.0.1:$((PORT + 1))" --gateway-secret "$GATEWAY_SECRET" \
        --client-id="$id" --client-secret="$secret" --audience https://mcp.example.com/mcp --tokens 1000 \
        --concurrency 32 --seconds "$SECS" --pid "$pid" --label verify 2>/dev/null)
      printf '%-7s %-10s rps=%-9s per_cpu_s=%s\n' "$label" verify "$(sed -nE 's/.* rps=([^ ]+).*/\1/p' <<<"$out")" \
        "$(sed -nE 's/.*rps_per_server_cpu_s=([^ ]+).*/\1/p' <<<"$out")"
      continue
    fi
    if [ "$scenario" = token ]; then url=http://127.0.0.1:$PORT/token; body=$TOKEN_BODY
    else url=http://127.0.0.1:$PORT/introspect; body="token=$token"; fi
    export WRK_BODY=$body
    taskset -c "$LOAD_CPU" wrk -t1 -c32 -d3s -s "$SHARED/wrk-post.lua" "$url" >/dev/null 2>&1 || true
    t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c32 -d"${SECS}s" -s "$SHARED/wrk-post.lua" "$url" 2>&1)
    t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    awk -v l="$label" -v s="$scenario" -v r="$rps" -v a="$t0" -v b="$t1" -v h="$(getconf CLK_TCK)" -v n="$SECS" \
      'BEGIN{c=(b-a)/h; printf "%-7s %-10s rps=%-9s server_cpu_s=%.2f per_cpu_s=%.0f\n", l, s, r, c, r*n/c}'
  done
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -rf "$work"
}

for _ in $(seq 1 "$PAIRS"); do
  measure "$1" before
  measure "$2" after
done
