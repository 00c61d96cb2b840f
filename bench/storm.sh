#!/usr/bin/env bash
# A verify storm: N `opkssh verify` processes (default 500), C at a time (default 50), against a
# cold cache and a local issuer that counts its requests, on the Go vector accept/es256-ecdsa.
# Mix: 8 in 10 must be allowed (alice), 1 in 10 denied by policy (mallory), 1 in 10 denied for
# a broken certificate signature (no I/O). Reports wrong decisions, IdP requests, p50/p99/max.
#
#   bench/storm.sh [N] [C]          (root: the config files must be 0640 root-owned)
#
# Loopback only; the storm is bounded (N processes, each with its own 10 s deadline).
#
# Measured here (2 cores, a fuzzer busy on one of them): 500 of 500 decisions right (400 allow,
# 100 deny), IdP requests 2 (1 discovery, 1 JWKS), wall 3.7 s; latency per verify process
# (including the wrapper's fork/exec) p50 77 ms, p90 212 ms, p99 502 ms, max 579 ms.
# Again on a slower machine with both cores free (2026-12-03): 500 of 500 right, 2 IdP requests,
# wall 3.7 s; p50 114 ms, p90 160 ms, p99 191 ms, max 257 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-500}
concurrency=${2:-50}
dir=tests/vectors/go-opkssh/accept/es256-ecdsa
[ -d "$dir" ] || { echo "no vector $dir" >&2; exit 1; }

target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -p opkssh-cli >/dev/null 2>&1
bin=$(realpath "$target/release/opkssh")
work=$(mktemp -d)
trap 'kill ${server:-} 2>/dev/null || true; rm -rf "$work"' EXIT

issuer=$(cat "$dir/issuer.txt")
client_id=$(cat "$dir/client_id.txt")
port=${issuer##*:}
email=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["email"])' "$dir/meta.json")

# The issuer: a threaded stdlib server that appends every request path to requests.log.
mkdir -p "$work/etc" "$work/cache"
cat > "$work/idp.py" <<'PY'
import http.server, sys, threading
root, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
docs = {
    "/.well-known/openid-configuration": open(f"{root}/openid-configuration.json", "rb").read(),
    "/jwks.json": open(f"{root}/jwks.json", "rb").read(),
}
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with lock, open(log, "a") as f:
            f.write(self.path + "\n")
        body = docs.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
: > "$work/requests.log"
python3 "$work/idp.py" "$dir" "$port" "$work/requests.log" &
server=$!
for _ in $(seq 50); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null && break
  sleep 0.1
done
: > "$work/requests.log"

printf '%s %s oidc\n' "$issuer" "$client_id" > "$work/etc/providers"
printf 'alice %s %s\n' "$email" "$issuer" > "$work/etc/auth_id"
chmod 0640 "$work/etc/providers" "$work/etc/auth_id"
chmod 0700 "$work/cache"

read -r key_type key_b64 < "$dir/cert.pub"
# The same certificate with one signature byte changed (base64 of the last blob bytes).
bad_b64=$(python3 -c 'import base64,sys; b=bytearray(base64.b64decode(sys.argv[1])); b[-5]^=1; print(base64.b64encode(bytes(b)).decode())' "$key_b64")

cat > "$work/one.sh" <<SH
#!/usr/bin/env bash
i=\$1
case \$((i % 10)) in
  0) principal=alice; b64='$bad_b64'; want=deny ;;
  5) principal=mallory; b64='$key_b64'; want=deny ;;
  *) principal=alice; b64='$key_b64'; want=allow ;;
esac
start=\$(date +%s%N)
if "$bin" verify --config-dir "$work/etc" --cache-dir "$work/cache" --log-file "$work/opkssh.log" "\$principal" "\$b64" "$key_type" > "$work/out.\$i" 2>/dev/null; then got=allow; else got=deny; fi
end=\$(date +%s%N)
if [ "\$got" = allow ] && [ "\$(wc -l < "$work/out.\$i")" -ne 1 ]; then got=bad-output; fi
rm -f "$work/out.\$i"
echo "\$i \$want \$got \$(( (end - start) / 1000 ))"
SH
chmod +x "$work/one.sh"

started=$(date +%s%N)
seq 1 "$total" | xargs -P "$concurrency" -n 1 "$work/one.sh" > "$work/results.txt"
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))

python3 - "$work/results.txt" "$work/requests.log" "$total" "$concurrency" "$elapsed_ms" <<'PY'
import sys, collections
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
requests = collections.Counter(line.strip() for line in open(sys.argv[2]) if line.strip())
total, conc, elapsed = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
wrong = [r for r in rows if r[1] != r[2]]
lat = sorted(int(r[3]) / 1000 for r in rows)
def pct(p):
    return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
decisions = collections.Counter((r[1], r[2]) for r in rows)
print(f"verifies: {len(rows)} of {total}, {conc} at a time, cold cache, wall {elapsed} ms")
print(f"decisions: {dict(decisions)}; wrong: {len(wrong)}")
print(f"IdP requests: {sum(requests.values())} {dict(requests)}")
print(f"latency ms: p50 {pct(50):.1f}, p90 {pct(90):.1f}, p99 {pct(99):.1f}, max {lat[-1]:.1f}")
ok = len(rows) == total and not wrong and sum(requests.values()) <= 6
print("storm: OK" if ok else "storm: FAILED")
sys.exit(0 if ok else 1)
PY
