# shellcheck shell=bash
# Sourced by tests/conformance/run.sh and tests/browser/run.sh: free loopback ports, a
# Latchkey environment that inherits nothing, background processes recorded by pid, and
# waits that all end. Only the processes started through `start_bg` are ever signalled.

# The pids started here, stopped by `stop_all` (the scripts' EXIT trap).
STARTED_PIDS=()

die() {
  echo "error: $*" >&2
  exit 1
}

# N distinct free TCP ports on 127.0.0.1, one a line. All are held open until every one is
# chosen, so they differ; another program could still take one before it is used.
free_ports() {
  node -e '
    const net = require("net");
    const n = Number(process.argv[1]);
    const servers = [];
    const next = () => {
      if (servers.length === n) {
        console.log(servers.map((s) => s.address().port).join("\n"));
        servers.forEach((s) => s.close());
        return;
      }
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => { servers.push(s); next(); });
    };
    next();
  ' "$1"
}

# Forgets every LATCHKEY_* variable this shell inherited (CI exports test settings), so the
# Latchkey started here runs on exactly what the script sets.
forget_latchkey_env() {
  local v
  for v in $(compgen -e | grep '^LATCHKEY_' || true); do
    unset "$v"
  done
}

# start_bg LOG COMMAND...: runs COMMAND in the background with its output in LOG and records
# its pid, which is also left in LAST_PID for the caller.
start_bg() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  # shellcheck disable=SC2034 # read by the scripts that source this file
  LAST_PID=$pid
}

# wait_exit PID SECONDS: waits for a process started here to end, at most SECONDS. Returns
# its exit status, or 124 when it is still running. Once reaped, its pid is forgotten: the
# system may give it to another process, which must never be signalled.
wait_exit() {
  local pid=$1 limit=$2 i p
  for ((i = 0; i < limit * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      local rc=0
      wait "$pid" 2>/dev/null || rc=$?
      local kept=()
      for p in "${STARTED_PIDS[@]}"; do
        [ "$p" = "$pid" ] || kept+=("$p")
      done
      STARTED_PIDS=("${kept[@]}")
      return "$rc"
    fi
    sleep 0.1
  done
  return 124
}

# stop_all: TERM to every process started here, then KILL to any still running 10 s later.
stop_all() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  # wait_exit forgets each pid it reaps, so walk over a copy.
  local pids=("${STARTED_PIDS[@]}")
  for pid in "${pids[@]}"; do
    local rc=0
    wait_exit "$pid" 10 || rc=$?
    if [ "$rc" -eq 124 ]; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_exit "$pid" 5 || true
    fi
  done
  STARTED_PIDS=()
}

# wait_http URL SECONDS PID LOG: polls URL until it answers 2xx. Fails, showing LOG, if the
# process PID ends first or SECONDS pass.
wait_http() {
  local url=$1 limit=$2 pid=$3 log=$4 i
  for ((i = 0; i < limit * 4; i++)); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      die "the process behind $url ended before answering"
    fi
    sleep 0.25
  done
  tail -n 50 "$log" >&2
  die "$url did not answer within ${limit}s"
}

# wait_line FILE PATTERN SECONDS PID: waits until FILE has a line matching the extended
# regular expression PATTERN, and prints the first one. Fails if PID ends first.
wait_line() {
  local file=$1 pattern=$2 limit=$3 pid=$4 i line
  for ((i = 0; i < limit * 10; i++)); do
    line=$(grep -E -m1 "$pattern" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then
      printf '%s\n' "$line"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$file" >&2
      die "the process writing $file ended before printing /$pattern/"
    fi
    sleep 0.1
  done
  cat "$file" >&2
  die "no line matching /$pattern/ in $file within ${limit}s"
}

# json_field FIELD: reads a JSON object on stdin and prints FIELD (a top-level key).
json_field() {
  node -e '
    let s = "";
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const v = JSON.parse(s)[process.argv[1]];
      if (v === undefined) { console.error("no " + process.argv[1] + " in " + s); process.exit(1); }
      console.log(v);
    });
  ' "$1"
}

# latchkey_env WORK HTTP_PORT GRPC_PORT METRICS_PORT FORWARD_AUTH_PORT: exports the settings
# of a development Latchkey on loopback (every listener on a port given here, none on its
# fixed default), its SQLite file in WORK, and nothing inherited.
latchkey_env() {
  forget_latchkey_env
  export LATCHKEY_ENV=development
  export LATCHKEY_ISSUER="http://127.0.0.1:$2"
  export LATCHKEY_HTTP_ADDR="127.0.0.1:$2"
  export LATCHKEY_GRPC_ADDR="127.0.0.1:$3"
  export LATCHKEY_METRICS_ADDR="127.0.0.1:$4"
  export LATCHKEY_FORWARD_AUTH_ADDR="127.0.0.1:$5"
  export LATCHKEY_DATABASE_URL="sqlite://$1/latchkey.db?mode=rwc"
}
