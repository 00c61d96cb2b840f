#!/usr/bin/env bash
# Times `opkssh verify` as sshd runs it, on a Go vector, with a warm discovery/JWKS cache (so no
# network), and reports the median and the peak RSS.
#
#   bench/verify.sh [vector-name]      (default rs256-ecdsa; needs root for 0640 root-owned files)
#
# Targets: median at most 3 ms per verify, peak RSS at most 12 MB (Go: ~28 ms per call against a
# local issuer). Measured here (2 cores, another build running): median 2.28 ms, mean 3.0 ms,
# min 1.9 ms over 300 runs; peak RSS 5.7 MB. With the decision trace recorded on every verify
# (explain): median 2.04 ms, mean 2.06 ms, min 1.99 ms over 300 runs; peak RSS 7.0 MB.
# On a slower machine (2026-12-03; the unchanged criterion GQ256 verify took 3.53 ms there, 1.38 ms
# on the first): median 4.07 ms, mean 4.04 ms, min 3.02 ms over 300 runs, peak RSS 6.8 MB; there
# `opkssh --version` alone took 1.8 ms and /bin/true 0.7 ms. Instruction count (callgrind, one
# warm verify): 8.1 M, of which the two P-256 signature checks (certificate, CIC) are 4.8 M.
# 2026-12-04, after the restructure (verifier::decide), the escaping, the streaming auth_id
# reader, the proxy choice and the OpenSSH version cache: median 3.38 ms, mean 3.57 ms, min
# 3.15 ms over 300 runs, peak RSS 6.9 MB (3.93 ms median before, same conditions).
set -euo pipefail
cd "$(dirname "$0")/.."
vector=${1:-rs256-ecdsa}
dir=tests/vectors/go-opkssh/accept/$vector
[ -d "$dir" ] || { echo "no vector $dir" >&2; exit 1; }
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }

cargo build --release --locked -p opkssh-cli >/dev/null
bin=$PWD/target/release/opkssh
work=$(mktemp -d)
trap 'kill ${server:-} 2>/dev/null || true; rm -rf "$work"' EXIT

. bench/lib/warm-vector.sh
warm_vector "$dir" "$work"
printf 'alice %s %s\n' "$email" "$issuer" > "$work/etc/auth_id"
chmod 0640 "$work/etc/auth_id"
run=("$bin" verify --config-dir "$work/etc" --cache-dir "$work/cache" --log-file "$work/opkssh.log" alice "$key_b64" "$key_type")
serve_issuer "$work"
"${run[@]}" >/dev/null || { echo "warm-up verify denied:" >&2; cat "$work/opkssh.log" >&2; exit 1; }
stop_issuer

hyperfine --warmup 20 --runs 300 -N --export-json "$work/hyperfine.json" "$(printf '%q ' "${run[@]}")"
python3 - "$work/hyperfine.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"median {r['median']*1000:.2f} ms, mean {r['mean']*1000:.2f} ms, min {r['min']*1000:.2f} ms, max {r['max']*1000:.2f} ms")
PY
/usr/bin/time -f "peak RSS %M KB" "${run[@]}" >/dev/null
