#!/usr/bin/env bash
# A Client ID Metadata Document client's whole authorization code flow in headless Chromium,
# against a Latchkey and the example MCP server started here from binaries built elsewhere.
#
#   (cd tests/browser && npm ci) && \
#     tests/browser/run.sh target/debug/latchkey target/debug/latchkey-example-mcp
#
# Needs Chromium (Debian: apt-get install chromium; CHROMIUM=/path overrides
# /usr/bin/chromium) and openssl. Makes a CA and a certificate for 127.0.0.1 with openssl;
# Latchkey, in development mode, trusts that CA for its outbound fetches
# (LATCHKEY_OUTBOUND_CA_FILE) and may reach loopback (LATCHKEY_OUTBOUND_ALLOW_LOOPBACK), so
# flow.mjs can serve the client's document from this machine. The consent page's screenshot
# is kept in a temporary directory whose path is printed (KEEP_SCREENSHOTS=DIR keeps it
# there instead). Only the processes started here are stopped, by pid; every wait is bounded.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../support/processes.sh
source "$here/../support/processes.sh"

[ $# -eq 2 ] || die "usage: $0 path/to/latchkey path/to/latchkey-example-mcp"
bin=$(realpath "$1")
mcp_bin=$(realpath "$2")
[ -x "$bin" ] || die "$1 is not an executable"
[ -x "$mcp_bin" ] || die "$2 is not an executable"
[ -d "$here/node_modules/playwright-core" ] || die "playwright-core is not installed: run npm ci in $here"
chromium_bin=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium_bin" ] || die "no Chromium at $chromium_bin (apt-get install chromium)"
command -v openssl >/dev/null || die "openssl is needed"

work=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-browser.XXXXXX")
cleanup() {
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT

# The document server's CA and certificate (P-256, two days). rustls wants v3 extensions:
# a CA that may sign certificates, a leaf for serverAuth naming 127.0.0.1 and localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj '/CN=Latchkey browser test CA' \
  -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=127.0.0.1' \
  -keyout "$work/doc.key" -out "$work/doc.csr" 2>/dev/null
printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
  'extendedKeyUsage=serverAuth' 'subjectAltName=IP:127.0.0.1,DNS:localhost' >"$work/doc.ext"
openssl x509 -req -in "$work/doc.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/doc.ext" -out "$work/doc.pem" 2>/dev/null

mapfile -t ports < <(free_ports 5)
http=${ports[0]} grpc=${ports[1]} metrics=${ports[2]} forward_auth=${ports[3]} mcp=${ports[4]}
issuer="http://127.0.0.1:$http"
resource="http://127.0.0.1:$mcp/mcp"
latchkey_env "$work" "$http" "$grpc" "$metrics" "$forward_auth"
export LATCHKEY_OUTBOUND_CA_FILE="$work/ca.pem"
export LATCHKEY_OUTBOUND_ALLOW_LOOPBACK=true
cd "$work"

email=browser@example.com
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$password" | "$bin" user add "$email" --password-stdin >"$work/setup.log" 2>&1 ||
  { cat "$work/setup.log"; die "latchkey user add failed"; }
# The example MCP server's resource, and the confidential client it verifies tokens as.
"$bin" resource add "$resource" --default >>"$work/setup.log" 2>&1 ||
  { cat "$work/setup.log"; die "latchkey resource add failed"; }
rs=$("$bin" client add --name example-mcp --resource "$resource" 2>>"$work/setup.log") ||
  { cat "$work/setup.log"; die "latchkey client add failed"; }
rs_id=$(awk '/^client_id:/ {print $2}' <<<"$rs")
rs_secret=$(awk '/^client_secret:/ {print $2}' <<<"$rs")
if [ -z "$rs_id" ] || [ -z "$rs_secret" ]; then die "client add printed no credentials"; fi

start_bg "$work/latchkey.log" "$bin" serve
latchkey_pid=$LAST_PID
wait_http "$issuer/health/ready" 60 "$latchkey_pid" "$work/latchkey.log"
echo "latchkey ready at $issuer (pid $latchkey_pid)"

start_bg "$work/mcp.log" env MCP_RESOURCE="$resource" MCP_LISTEN="127.0.0.1:$mcp" \
  LATCHKEY_AUTH_URL="http://127.0.0.1:$grpc" RS_CLIENT_ID="$rs_id" RS_CLIENT_SECRET="$rs_secret" \
  "$mcp_bin"
mcp_pid=$LAST_PID
wait_http "http://127.0.0.1:$mcp/.well-known/oauth-protected-resource/mcp" 60 "$mcp_pid" "$work/mcp.log"
echo "example MCP server ready at $resource (pid $mcp_pid)"

shots=${KEEP_SCREENSHOTS:-$(mktemp -d "${TMPDIR:-/tmp}/latchkey-browser-screenshots.XXXXXX")}
mkdir -p "$shots"
rc=0
ISSUER=$issuer MCP_URL=$resource DOC_CERT="$work/doc.pem" DOC_KEY="$work/doc.key" \
  USER_EMAIL=$email USER_PASSWORD=$password SCREENSHOT_DIR=$shots CHROMIUM=$chromium_bin \
  timeout 180 node "$here/flow.mjs" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "--- latchkey log (last 60 lines) ---"
  tail -n 60 "$work/latchkey.log"
  echo "--- example MCP server log (last 30 lines) ---"
  tail -n 30 "$work/mcp.log"
  [ "$rc" -eq 124 ] && die "the browser flow did not finish within 180 s"
  die "the browser flow failed (screenshots in $shots)"
fi
echo "screenshots: $shots"
