#!/usr/bin/env bash
# Load test of the full login-to-token path over loopback on PostgreSQL and Redis:
# register -> authorize -> login -> consent -> token -> refresh, by `latchkey-bench flow`.
# Reports completed flows per second, p50/p99 per step, and the server's peak RSS.
# Usage: bench/flow.sh   (SECS=20 CONC=8; PG at 127.0.0.1:5432, Redis at 127.0.0.1:6379)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SECS:-20}
CONC=${CONC:-8}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${REDIS:-redis://127.0.0.1:6379}
HTTP_PORT=18081 GRPC_PORT=15052

cargo build --release -q -p latchkey -p latchkey-bench --manifest-path "$ROOT/Cargo.toml"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/latchkey
BENCH=$TARGET/release/latchkey-bench
DB=lk_flow_$$
psql "$PG_ADMIN" -qc "CREATE DATABASE $DB"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; }
trap cleanup EXIT

# Sessions in Redis are sealed under a key derived from the key-encryption key: Redis needs one.
export LATCHKEY_DATABASE_URL=${PG_ADMIN%/*}/$DB LATCHKEY_REDIS_URL=$REDIS \
  LATCHKEY_KEY_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64) \
  LATCHKEY_HTTP_ADDR=127.0.0.1:$HTTP_PORT LATCHKEY_GRPC_ADDR=127.0.0.1:$GRPC_PORT LATCHKEY_METRICS_ADDR=127.0.0.1:19091 \
  LATCHKEY_FORWARD_AUTH_ADDR=127.0.0.1:18084 \
  LATCHKEY_ISSUER=http://127.0.0.1:$HTTP_PORT RUST_LOG=warn \
  LATCHKEY_RATE_LIMIT_TOKEN_PER_MIN=0 LATCHKEY_RATE_LIMIT_AUTHORIZE_PER_MIN=0 \
  LATCHKEY_RATE_LIMIT_LOGIN_PER_MIN=0 LATCHKEY_RATE_LIMIT_REGISTER_PER_MIN=0
echo 'load test password' | "$BIN" user add load@example.com --password-stdin >/dev/null
taskset -c "$SERVER_CPU" "$BIN" serve >/dev/null 2>&1 &
PID=$!; PIDS+=("$PID")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/health/ready" >/dev/null && break; sleep 0.1; done
echo "# $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo); server on CPU $SERVER_CPU (PostgreSQL + Redis), load on CPU $LOAD_CPU; ${SECS}s, $CONC concurrent flows"
taskset -c "$LOAD_CPU" "$BENCH" flow --base "http://127.0.0.1:$HTTP_PORT" --email load@example.com --password 'load test password' \
  --concurrency "$CONC" --seconds "$SECS" --pid "$PID"
