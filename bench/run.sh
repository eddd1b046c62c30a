#!/usr/bin/env bash
# Latchkey's speed, measured side by side in one run: each server under test on one core
# (SERVER_CPU), the load generator on the other (LOAD_CPU), loopback only. Figures per server
# CPU-second compare across runs; absolute ones do not. Prints each measurement as it ends,
# then one table of figures and ratios. What each scenario means: bench/README.md.
#
#   client_credentials at /token   Latchkey vs latchkey-ceiling token (the floor) vs oidc-provider (EdDSA JWT)
#   gRPC VerifyToken               all-distinct and 1,000 live tokens vs the bare Ed25519 verify rate,
#                                  and vs latchkey-ceiling ping (a unary RPC that does nothing);
#                                  1,000 live tokens over TLS too (TLS=0 skips it; needs openssl)
#   HTTP /introspect               Latchkey vs oidc-provider (opaque tokens), 32 connections and 1
#   idle RSS                       of `latchkey serve`, started and unloaded
#
# Usage: bench/run.sh   (SECS=10 per measurement; ROUNDS=3 of the VerifyToken/ping pair and of
# the HTTP measurements, medians reported; ports overridable, see below)
# Needs: wrk (apt), and for the peer oidc-provider@9 installed in $PEER_DIR with
# oidc-provider-server.mjs beside it (see ../shared/bench/README.md). Every process started
# here is stopped by its own pid, and every wait is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
PEER_DIR=${PEER_DIR:-/tmp/peer}
SECS=${SECS:-10}
# Unmeasured load before each HTTP measurement, for every server alike: Node's JIT needs it,
# and a cold server would be measured otherwise.
WARMUP=${WARMUP:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
HTTP_PORT=${HTTP_PORT:-18080} GRPC_PORT=${GRPC_PORT:-15051} ADMIN_PORT=${ADMIN_PORT:-19464}
TLS=${TLS:-1}
FORWARD_AUTH_PORT=${FORWARD_AUTH_PORT:-18083}
PEER_PORT=${PEER_PORT:-3400} CEIL_HTTP_PORT=${CEIL_HTTP_PORT:-18090} CEIL_GRPC_PORT=${CEIL_GRPC_PORT:-15060}
GATEWAY_SECRET=bench-gateway-secret-0123456789abcdef
RESOURCE=https://mcp.example.com/mcp
SCOPE=mcp:tools
PEER_SECRET=bench-secret-0123456789abcdef0123456789abcdef

for port in "$HTTP_PORT" "$GRPC_PORT" "$ADMIN_PORT" $((HTTP_PORT + 1)) $((GRPC_PORT + 1)) $((ADMIN_PORT + 1)) \
  $((GRPC_PORT + 2)) $((ADMIN_PORT + 2)) "$FORWARD_AUTH_PORT" $((FORWARD_AUTH_PORT + 1)) "$PEER_PORT" $((PEER_PORT + 1)) "$CEIL_HTTP_PORT" "$CEIL_GRPC_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port on 127.0.0.1 is in use: set the *_PORT variables" >&2; exit 1
  fi
done

cargo build --release -q -p latchkey -p latchkey-bench --manifest-path "$ROOT/Cargo.toml"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/latchkey
BENCH=$TARGET/release/latchkey-bench
CEILING=$TARGET/release/latchkey-ceiling
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
# stop PID: ends one process this script started, waiting at most 5 s.
stop() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
# wait_for URL [CURL ARGS...]: until URL answers 2xx, at most 10 s.
wait_for() {
  local url=$1; shift
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$@" "$url" && return 0; sleep 0.1; done
  echo "no answer from $url" >&2; return 1
}
rss_mb() { awk '/^VmRSS:/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
# field NAME TEXT: the value of NAME=value in TEXT.
field() { sed -nE "s/.*[ :]$1=([^ ]+).*/\1/p" <<<"$2" | tail -1; }
# ms VALUE: wrk's 123.45us / 1.23ms / 1.2s as milliseconds.
ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else {sub(/s$/,"",v); print v*1000} }'; }
ROUNDS=${ROUNDS:-3}
# median NUMBERS...: the middle one (the mean of the middle two for an even count).
median() {
  printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g \
    | awk '{a[NR]=$1} END{ if (NR == 0) exit; m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2;
        if (m >= 100) printf "%.0f\n", m; else printf "%.3g\n", m }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "" && b != "" && b+0 > 0) printf "%.2f", a/b; else print "n/a" }'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo); server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; ${SECS}s per run"

# Latchkey with its defaults (SQLite, in-memory shared state, info logging), as in production,
# except the per-IP limit on /token: every request here comes from 127.0.0.1, so it is set
# too high to trip, and the limiter still counts every request.
export LATCHKEY_HTTP_ADDR=127.0.0.1:$HTTP_PORT LATCHKEY_GRPC_ADDR=127.0.0.1:$GRPC_PORT \
  LATCHKEY_ADMIN_ADDR=127.0.0.1:$ADMIN_PORT LATCHKEY_FORWARD_AUTH_ADDR=127.0.0.1:$FORWARD_AUTH_PORT \
  LATCHKEY_ISSUER=http://127.0.0.1:$HTTP_PORT LATCHKEY_GATEWAY_SECRET=$GATEWAY_SECRET \
  LATCHKEY_RATE_LIMIT_TOKEN_PER_MIN=4000000000
cd "$WORK"
taskset -c "$SERVER_CPU" "$BIN" serve >"$WORK/latchkey.log" 2>&1 &
LK_PID=$!; PIDS+=("$LK_PID")
wait_for "http://127.0.0.1:$HTTP_PORT/health"
sleep 3
LK_IDLE_RSS=$(rss_mb "$LK_PID")
echo "latchkey_idle_rss_mb=$LK_IDLE_RSS"
# The same, with mimalloc told not to ask for transparent huge pages: where THP is in
# `madvise` mode, each heap mimalloc touches is backed by a whole 2 MiB page.
mkdir "$WORK/nothp"
(cd "$WORK/nothp" && LATCHKEY_HTTP_ADDR=127.0.0.1:$((HTTP_PORT + 1)) LATCHKEY_GRPC_ADDR=127.0.0.1:$((GRPC_PORT + 1)) \
  LATCHKEY_ADMIN_ADDR=127.0.0.1:$((ADMIN_PORT + 1)) LATCHKEY_FORWARD_AUTH_ADDR=127.0.0.1:$((FORWARD_AUTH_PORT + 1)) MIMALLOC_ALLOW_THP=0 \
  exec taskset -c "$SERVER_CPU" "$BIN" serve >"$WORK/nothp.log" 2>&1) &
NOTHP_PID=$!; PIDS+=("$NOTHP_PID")
wait_for "http://127.0.0.1:$((HTTP_PORT + 1))/health"
sleep 3
LK_IDLE_RSS_NOTHP=$(rss_mb "$NOTHP_PID")
echo "latchkey_idle_rss_mb_without_thp=$LK_IDLE_RSS_NOTHP (MIMALLOC_ALLOW_THP=0; THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null))"
stop "$NOTHP_PID"

# An operator's client: only those may use client_credentials.
creds=$("$BIN" client add --name bench --grant-type client_credentials --resource "$RESOURCE" --audience "$RESOURCE" 2>"$WORK/cli.log")
CLIENT_ID=$(awk '/^client_id:/{print $2}' <<<"$creds")
CLIENT_SECRET=$(awk '/^client_secret:/{print $2}' <<<"$creds")
TOKEN_BODY="grant_type=client_credentials&resource=https%3A%2F%2Fmcp.example.com%2Fmcp&scope=mcp%3Atools"
LK_AUTH="Basic $(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)"
# The resource the CLI wrote reaches the server's directory on its next poll.
wait_for "http://127.0.0.1:$HTTP_PORT/token" -H "Authorization: $LK_AUTH" -d "$TOKEN_BODY"
AT=$(curl -s -H "Authorization: $LK_AUTH" "http://127.0.0.1:$HTTP_PORT/token" -d "$TOKEN_BODY" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

# gRPC VerifyToken. The bare rate drifts with the machine's load, so it is measured again
# just before each run.
run() {
  BARE=$(taskset -c "$SERVER_CPU" "$BENCH" bare --seconds 3 | cut -d= -f2)
  echo "bare Ed25519 verify on the server's core: $BARE/s"
  taskset -c "$LOAD_CPU" "$BENCH" verify --grpc "http://127.0.0.1:$GRPC_PORT" --gateway-secret "$GATEWAY_SECRET" \
  --client-id="$CLIENT_ID" --client-secret="$CLIENT_SECRET" --audience "$RESOURCE" --seconds "$SECS" \
  --pid "$LK_PID" --bare-rate "$BARE" "$@"
}
v_distinct=$(run --label verify_distinct_c32 --tokens 0 --concurrency 32); echo "$v_distinct"

# The bare tonic unary RPC on the same core, loaded as VerifyToken is: the same channels,
# streams and metadata, and a request as large as a VerifyToken request. The 1,000-token mix
# and the ping run back to back in each of ROUNDS rounds (see the HTTP rounds below).
taskset -c "$SERVER_CPU" "$CEILING" ping --addr "127.0.0.1:$CEIL_GRPC_PORT" >"$WORK/ping.log" 2>&1 &
PING_PID=$!; PIDS+=("$PING_PID")
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$CEIL_GRPC_PORT") 2>/dev/null && break; sleep 0.1; done
MIX=() PING=() R_PING=()
for round in $(seq 1 "$ROUNDS"); do
  v_mix=$(run --label "verify_mix1000_c32_r$round" --tokens 1000 --concurrency 32); echo "$v_mix"
  ping_out=$(taskset -c "$LOAD_CPU" "$BENCH" ping --grpc "http://127.0.0.1:$CEIL_GRPC_PORT" --client-id="$CLIENT_ID" \
    --client-secret="$CLIENT_SECRET" --payload-bytes $(( ${#AT} + ${#RESOURCE} + ${#SCOPE} )) \
    --concurrency 32 --seconds "$SECS" --pid "$PING_PID" --label "ping_c32_r$round"); echo "$ping_out"
  MIX+=("$(field rps_per_server_cpu_s "$v_mix")"); PING+=("$(field rps_per_server_cpu_s "$ping_out")")
  R_PING+=("$(ratio "${MIX[-1]}" "${PING[-1]}")")
  echo "round $round ratio: VerifyToken/ping ${R_PING[-1]}"
done
stop "$PING_PID"
v_c1=$(run --label verify_c1 --tokens 1000 --concurrency 1); echo "$v_c1"

# VerifyToken over TLS: a second AuthService (`serve auth`) on the same database, its gRPC port
# serving a certificate made here, loaded as the 1,000-token mix above was. The plaintext
# `serve` stays up, idle, for the HTTP runs below.
v_tls=""
if [ "$TLS" = 1 ] && command -v openssl >/dev/null; then
  TLS_DIR=$WORK/tls; mkdir -p "$TLS_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
    -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$TLS_DIR/ext"
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days 1 -extfile "$TLS_DIR/ext" -out "$TLS_DIR/server.crt" 2>/dev/null
  LATCHKEY_GRPC_ADDR=127.0.0.1:$((GRPC_PORT + 2)) LATCHKEY_ADMIN_ADDR=127.0.0.1:$((ADMIN_PORT + 2)) \
    LATCHKEY_GRPC_TLS_CERT=$TLS_DIR/server.crt LATCHKEY_GRPC_TLS_KEY=$TLS_DIR/server.key \
    taskset -c "$SERVER_CPU" "$BIN" serve auth >"$WORK/latchkey-tls.log" 2>&1 &
  TLS_PID=$!; PIDS+=("$TLS_PID")
  wait_for "http://127.0.0.1:$((ADMIN_PORT + 2))/health/ready"
  BARE=$(taskset -c "$SERVER_CPU" "$BENCH" bare --seconds 3 | cut -d= -f2)
  v_tls=$(taskset -c "$LOAD_CPU" "$BENCH" verify --grpc "https://127.0.0.1:$((GRPC_PORT + 2))" \
    --ca-file "$TLS_DIR/ca.crt" --gateway-secret "$GATEWAY_SECRET" --client-id="$CLIENT_ID" \
    --client-secret="$CLIENT_SECRET" --audience "$RESOURCE" --seconds "$SECS" --pid "$TLS_PID" \
    --bare-rate "$BARE" --label verify_mix1000_c32_tls --tokens 1000 --concurrency 32); echo "$v_tls"
  stop "$TLS_PID"
else
  echo "TLS=0 or no openssl: VerifyToken over TLS skipped"
fi

# HTTP, with the shared wrk helper.
export PEERS_DIR=$SHARED
# shellcheck source=/dev/null
source "$SHARED/lib-load.sh"

# warm URL: WARMUP seconds of the same load, not measured.
warm() { ${LOAD_CPU:+taskset -c $LOAD_CPU} wrk -t2 -c32 -d"${WARMUP}s" -s "$PEERS_DIR/wrk-post.lua" "$1" >/dev/null 2>&1 || true; }
# warmed LABEL PID URL: the warm-up, then SECS measured at 32 connections; prints wrk_run's line.
warmed() { warm "$3"; wrk_run "$1" "$2" "$3" "$SECS" 32; }

# The floor, and oidc-provider twice: with EdDSA JWT access tokens for /token, and with
# opaque ones for introspection (it refuses to introspect its JWTs: "Structured JWT Tokens
# cannot be introspected"). All are started once and stay idle while another is measured.
taskset -c "$SERVER_CPU" "$CEILING" token --addr "127.0.0.1:$CEIL_HTTP_PORT" --client-id="$CLIENT_ID" \
  --client-secret="$CLIENT_SECRET" --audience "$RESOURCE" --scope "$SCOPE" >"$WORK/ceiling.log" 2>&1 &
CEIL_PID=$!; PIDS+=("$CEIL_PID")
wait_for "http://127.0.0.1:$CEIL_HTTP_PORT/token" -H "Authorization: $LK_AUTH" -d "$TOKEN_BODY"
CEIL_IDLE_RSS=$(rss_mb "$CEIL_PID")
# start_peer FORMAT PORT: oidc-provider on the server's core; sets PEER_PID.
start_peer() {
  AT_FORMAT=$1 PORT=$2 taskset -c "$SERVER_CPU" "$NODE" "$PEER_DIR/oidc-provider-server.mjs" >"$WORK/peer-$1.log" 2>&1 &
  PEER_PID=$!; PIDS+=("$PEER_PID")
  wait_for "http://127.0.0.1:$2/.well-known/openid-configuration"
}
PEER=""; PEER_IDLE_RSS=""
OPAQUE_PORT=$((PEER_PORT + 1))
if [ -d "$PEER_DIR/node_modules/oidc-provider" ] && [ -f "$PEER_DIR/oidc-provider-server.mjs" ]; then
  PEER=1
  NODE=${NODE:-$(command -v node)}
  PEER_AUTH="Basic $(printf 'bench:%s' "$PEER_SECRET" | base64 -w0)"
  start_peer jwt "$PEER_PORT"; JWT_PID=$PEER_PID
  sleep 2; PEER_IDLE_RSS=$(rss_mb "$JWT_PID")
  start_peer opaque "$OPAQUE_PORT"; OPAQUE_PID=$PEER_PID
  PAT=$(curl -s -H "Authorization: $PEER_AUTH" "http://127.0.0.1:$OPAQUE_PORT/token" -d "$TOKEN_BODY" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
else
  echo "oidc-provider not installed in $PEER_DIR: peer comparisons skipped"
fi

# ROUNDS rounds. In each, every server is measured back to back on the same load, so that
# the round's ratios compare servers within a minute of each other: this machine's speed
# drifts by a third over minutes, so a ratio across minutes measures the machine. The table
# gives the median of the rounds' figures and of their ratios.
LK_TOK=() CEIL_TOK=() P_TOK=() LK32=() P32=() LK1=() P1=()
R_TOK_PEER=() R_TOK_CEIL=() R_INT=() R_P50=()
lk_tok="" ceil_tok="" p_tok="" lk32="" p32="" lk1="" p1=""
for round in $(seq 1 "$ROUNDS"); do
  # client_credentials at /token: Latchkey, its floor with the same client and body, the peer.
  export WRK_BODY="$TOKEN_BODY" WRK_AUTH="$LK_AUTH"
  lk_tok=$(warmed "latchkey_token_c32_r$round" "$LK_PID" "http://127.0.0.1:$HTTP_PORT/token"); echo "$lk_tok"
  ceil_tok=$(warmed "ceiling_token_c32_r$round" "$CEIL_PID" "http://127.0.0.1:$CEIL_HTTP_PORT/token"); echo "$ceil_tok"
  # /introspect on Latchkey, by the same client.
  export WRK_BODY="token=$AT"
  lk32=$(warmed "latchkey_introspect_c32_r$round" "$LK_PID" "http://127.0.0.1:$HTTP_PORT/introspect"); echo "$lk32"
  lk1=$(WRK_THREADS=1 wrk_run "latchkey_introspect_c1_r$round" "$LK_PID" "http://127.0.0.1:$HTTP_PORT/introspect" "$SECS" 1); echo "$lk1"
  LK_TOK+=("$(field rps_per_server_cpu_s "$lk_tok")"); CEIL_TOK+=("$(field rps_per_server_cpu_s "$ceil_tok")")
  LK32+=("$(field rps_per_server_cpu_s "$lk32")"); LK1+=("$(ms "$(field p50 "$lk1")")")
  R_TOK_CEIL+=("$(ratio "${LK_TOK[-1]}" "${CEIL_TOK[-1]}")")
  if [ -n "$PEER" ]; then
    export WRK_BODY="$TOKEN_BODY" WRK_AUTH="$PEER_AUTH"
    p_tok=$(warmed "oidc_provider_token_c32_r$round" "$JWT_PID" "http://127.0.0.1:$PEER_PORT/token"); echo "$p_tok"
    export WRK_BODY="token=$PAT"
    p32=$(warmed "oidc_provider_introspect_c32_r$round" "$OPAQUE_PID" "http://127.0.0.1:$OPAQUE_PORT/token/introspection"); echo "$p32"
    p1=$(WRK_THREADS=1 wrk_run "oidc_provider_introspect_c1_r$round" "$OPAQUE_PID" "http://127.0.0.1:$OPAQUE_PORT/token/introspection" "$SECS" 1); echo "$p1"
    P_TOK+=("$(field rps_per_server_cpu_s "$p_tok")"); P32+=("$(field rps_per_server_cpu_s "$p32")"); P1+=("$(ms "$(field p50 "$p1")")")
    R_TOK_PEER+=("$(ratio "${LK_TOK[-1]}" "${P_TOK[-1]}")"); R_INT+=("$(ratio "${LK32[-1]}" "${P32[-1]}")")
    R_P50+=("$(ratio "${LK1[-1]}" "${P1[-1]}")")
    echo "round $round ratios: token/ceiling ${R_TOK_CEIL[-1]}, token/oidc-provider ${R_TOK_PEER[-1]}," \
      "introspect c32/oidc-provider ${R_INT[-1]}, introspect p50 c1/oidc-provider ${R_P50[-1]}"
  else
    echo "round $round ratios: token/ceiling ${R_TOK_CEIL[-1]}"
  fi
done
LK_LOADED_RSS=$(rss_mb "$LK_PID")
stop "$CEIL_PID"
if [ -n "$PEER" ]; then stop "$JWT_PID"; stop "$OPAQUE_PID"; fi

# The table: medians of the rounds. "per CPU-s" is requests per second of the server's own
# CPU time.
lk_tok_cpu=$(median "${LK_TOK[@]}"); ceil_tok_cpu=$(median "${CEIL_TOK[@]}"); p_tok_cpu=$(median "${P_TOK[@]}")
mix_cpu=$(median "${MIX[@]}"); ping_cpu=$(median "${PING[@]}")
lk32_cpu=$(median "${LK32[@]}"); p32_cpu=$(median "${P32[@]}")
lk1_p50=$(median "${LK1[@]}"); p1_p50=$(median "${P1[@]}")
verdict() { awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN{ if (r == "n/a") print "n/a"; else if ((op == ">=" && r+0 >= t) || (op == "<=" && r+0 <= t)) print "met"; else print "MISSED" }'; }
row() { printf '| %s | %s | %s | %s | %s %s | %s |\n' "$1" "$2" "$3" "$4" "$5" "$6" "$(verdict "$4" "$5" "$6")"; }
na() { [ -n "$1" ] && echo "$1" || echo n/a; }
r_tok_peer=$(na "$(median "${R_TOK_PEER[@]}")"); r_tok_ceil=$(na "$(median "${R_TOK_CEIL[@]}")")
r_int=$(na "$(median "${R_INT[@]}")"); r_p50=$(na "$(median "${R_P50[@]}")")
r_ping=$(na "$(median "${R_PING[@]}")")
r_distinct=$(field ratio_vs_bare "$v_distinct"); r_mix=$(field ratio_vs_bare "$v_mix")
echo
echo "Medians of $ROUNDS rounds. Each round's ratios: VerifyToken/ping ${R_PING[*]}; token/ceiling ${R_TOK_CEIL[*]}; token/oidc-provider ${R_TOK_PEER[*]:-n/a};" \
  "introspect p50 c1/oidc-provider ${R_P50[*]:-n/a}"
echo "| figure | Latchkey | reference | ratio | target | verdict |"
echo "| --- | --- | --- | --- | --- | --- |"
row "client_credentials /token, 32 conns, per CPU-s" "$lk_tok_cpu" "oidc-provider EdDSA JWT: ${p_tok_cpu:-n/a}" "$r_tok_peer" ">=" 5
row "client_credentials /token, 32 conns, per CPU-s" "$lk_tok_cpu" "latchkey-ceiling: $ceil_tok_cpu" "$r_tok_ceil" ">=" 0.6
row "/introspect p50, 1 conn (ms)" "$lk1_p50" "oidc-provider (opaque): ${p1_p50:-n/a}" "$r_p50" "<=" 0.5
row "/introspect, 32 conns, per CPU-s" "$lk32_cpu" "oidc-provider (opaque): ${p32_cpu:-n/a}" "$r_int" ">=" 3
row "VerifyToken, 1,000 live tokens, 32 streams, per CPU-s" "$mix_cpu" "tonic ping: $ping_cpu" "$r_ping" ">=" 0.85
row "VerifyToken, 1,000 live tokens, 32 streams, per CPU-s (last round)" "$(field rps_per_server_cpu_s "$v_mix")" "bare Ed25519 verify: $(field bare_verify_per_s "$v_mix")" "$r_mix" ">=" 2
row "VerifyToken, all-distinct tokens, 32 streams, per CPU-s" "$(field rps_per_server_cpu_s "$v_distinct")" "bare Ed25519 verify: $(field bare_verify_per_s "$v_distinct")" "$r_distinct" ">=" 0.7
row "VerifyToken p50, 1 stream (ms)" "$(field p50_ms "$v_c1")" "" "$(field p50_ms "$v_c1")" "<=" 0.3
row "idle RSS of latchkey serve (MB)" "$LK_IDLE_RSS" "oidc-provider ${PEER_IDLE_RSS:-n/a}, ceiling $CEIL_IDLE_RSS" "$LK_IDLE_RSS" "<=" 30
echo
echo "throughput in the last round (req/s): latchkey token $(field rps "$lk_tok"), ceiling token $(field rps "$ceil_tok"), oidc-provider token $(field rps "$p_tok");" \
  "VerifyToken mix $(field rps "$v_mix"), ping $(field rps "$ping_out")"
if [ -n "$v_tls" ]; then
  echo "VerifyToken, 1,000 live tokens, 32 streams, per CPU-s: plaintext $mix_cpu, TLS $(field rps_per_server_cpu_s "$v_tls")" \
    "(ratio $(ratio "$(field rps_per_server_cpu_s "$v_tls")" "$mix_cpu")); p50 plaintext $(field p50_ms "$v_mix") ms, TLS $(field p50_ms "$v_tls") ms"
fi
echo "RSS of latchkey serve: idle $LK_IDLE_RSS MB, idle with MIMALLOC_ALLOW_THP=0 $LK_IDLE_RSS_NOTHP MB, after the load $LK_LOADED_RSS MB"
echo "non-2xx in the last round: latchkey token $(field non2xx "$lk_tok"), ceiling $(field non2xx "$ceil_tok"), oidc-provider token $(field non2xx "$p_tok"), latchkey introspect $(field non2xx "$lk32")"
