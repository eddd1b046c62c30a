#!/usr/bin/env bash
# The verification-plane benchmark: Latchkey's gRPC VerifyToken and HTTP /introspect on one
# core, the load generator on the other, measured per server CPU-second against the bare
# Ed25519 verification rate of the same core and against oidc-provider's introspection in
# the same run. Loopback only. Usage: bench/run.sh   (SECS=10 by default)
#
# Needs: wrk (apt), and for the peer comparison oidc-provider@9 installed in $PEER_DIR
# (see ../shared/bench/README.md). Every process started here is stopped by its pid.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
PEER_DIR=${PEER_DIR:-/tmp/peer}
SECS=${SECS:-10}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
HTTP_PORT=18080 GRPC_PORT=15051 PEER_PORT=3400
GATEWAY_SECRET=bench-gateway-secret-0123456789abcdef
RESOURCE=https://mcp.example.com/mcp

cargo build --release -q -p latchkey -p latchkey-bench --manifest-path "$ROOT/Cargo.toml"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/latchkey
BENCH=$TARGET/release/latchkey-bench
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# The server runs with its default log level (info), as it would in production.
export LATCHKEY_HTTP_ADDR=127.0.0.1:$HTTP_PORT LATCHKEY_GRPC_ADDR=127.0.0.1:$GRPC_PORT \
  LATCHKEY_ISSUER=http://127.0.0.1:$HTTP_PORT LATCHKEY_GATEWAY_SECRET=$GATEWAY_SECRET
cd "$WORK"
taskset -c "$SERVER_CPU" "$BIN" serve >"$WORK/latchkey.log" 2>&1 &
LK_PID=$!; PIDS+=("$LK_PID")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/health" >/dev/null && break; sleep 0.1; done
creds=$("$BIN" client add --name bench-rs --grant-type client_credentials --resource "$RESOURCE" --audience "$RESOURCE")
CLIENT_ID=$(awk '/^client_id:/{print $2}' <<<"$creds")
CLIENT_SECRET=$(awk '/^client_secret:/{print $2}' <<<"$creds")

echo "# machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo); server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; ${SECS}s per run"
# The bare rate drifts with the machine's load, so it is measured again just before each run.
run() {
  BARE=$(taskset -c "$SERVER_CPU" "$BENCH" bare --seconds 3 | cut -d= -f2)
  echo "bare Ed25519 verify on the server's core: $BARE/s"
  taskset -c "$LOAD_CPU" "$BENCH" verify --grpc "http://127.0.0.1:$GRPC_PORT" --gateway-secret "$GATEWAY_SECRET" \
  --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --audience "$RESOURCE" --seconds "$SECS" \
  --pid "$LK_PID" --bare-rate "$BARE" "$@"
}
run --label verify_distinct_c32 --tokens 0 --concurrency 32
run --label verify_mix1000_c32 --tokens 1000 --concurrency 32
run --label verify_c1 --tokens 1000 --concurrency 1

# HTTP /introspect, Latchkey vs oidc-provider, with the shared wrk helper.
export PEERS_DIR=$SHARED
# shellcheck source=/dev/null
source "$SHARED/lib-load.sh"
AT=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" "http://127.0.0.1:$HTTP_PORT/token" -d grant_type=client_credentials -d resource=$RESOURCE | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
export WRK_BODY="token=$AT" WRK_AUTH="Basic $(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)"
lk32=$(wrk_run latchkey_introspect_c32 "$LK_PID" "http://127.0.0.1:$HTTP_PORT/introspect" "$SECS" 32); echo "$lk32"
lk1=$(WRK_THREADS=1 wrk_run latchkey_introspect_c1 "$LK_PID" "http://127.0.0.1:$HTTP_PORT/introspect" "$SECS" 1); echo "$lk1"

if [ -d "$PEER_DIR/node_modules/oidc-provider" ]; then
  NODE=${NODE:-$(command -v node)}
  # oidc-provider cannot introspect JWT access tokens ("Structured JWT Tokens cannot be
  # introspected"), so its introspection is measured on its opaque tokens.
  (cd "$PEER_DIR" && AT_FORMAT=opaque PORT=$PEER_PORT taskset -c "$SERVER_CPU" "$NODE" oidc-provider-server.mjs >"$WORK/peer.log" 2>&1) &
  sleep 0.5; PEER_PID=$(pgrep -n -f "oidc-provider-server.mjs" || true); PIDS+=("$PEER_PID")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration" >/dev/null && break; sleep 0.1; done
  PEER_AUTH="Basic $(printf 'bench:bench-secret-0123456789abcdef0123456789abcdef' | base64 -w0)"
  PAT=$(curl -s -H "Authorization: $PEER_AUTH" "http://127.0.0.1:$PEER_PORT/token" -d grant_type=client_credentials -d scope=mcp:tools -d resource=$RESOURCE | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  export WRK_BODY="token=$PAT" WRK_AUTH="$PEER_AUTH"
  p32=$(wrk_run oidc_provider_introspect_c32 "$PEER_PID" "http://127.0.0.1:$PEER_PORT/token/introspection" "$SECS" 32); echo "$p32"
  p1=$(WRK_THREADS=1 wrk_run oidc_provider_introspect_c1 "$PEER_PID" "http://127.0.0.1:$PEER_PORT/token/introspection" "$SECS" 1); echo "$p1"
  field() { sed -E "s/.*$1=([^ ]+).*/\1/" <<<"$2"; }
  ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else {sub(/s$/,"",v); print v*1000} }'; }
  awk -v a="$(field rps_per_server_cpu_s "$lk32")" -v b="$(field rps_per_server_cpu_s "$p32")" 'BEGIN{printf "ratio introspect_per_cpu latchkey/oidc-provider = %.2f (target >= 3)\n", a/b}'
  awk -v a="$(ms "$(field p50 "$lk1")")" -v b="$(ms "$(field p50 "$p1")")" 'BEGIN{printf "ratio introspect_p50_c1 latchkey/oidc-provider = %.2f (target <= 0.5)\n", a/b}'
else
  echo "oidc-provider not installed in $PEER_DIR: peer comparison skipped"
fi
