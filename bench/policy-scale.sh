#!/usr/bin/env bash
# Warm `opkssh verify` (no network) against auth_id files of 1, 10,000 and 100,000 rows, the
# matching row last, all in one hyperfine run so the three are measured under the same load.
#
#   bench/policy-scale.sh [vector-name]     (default rs256-ecdsa; root: 0640 root-owned files)
#
# Targets (issue 12): 10,000 rows at most 1.5x one row, 100,000 rows at most 2x one row. Rows
# for other principals are counted, not parsed, and the file is read in 64 KiB pieces
# (AuthIdFile::read_for).
# Measured here (2026-12-04, 2 cores, another build running; auth_id 57 B, 0.57 MB, 5.7 MB):
#   1 row 3.21 ms, 10,000 rows 3.38 ms (1.06x), 100,000 rows 5.38 ms (1.68x), medians of 200.
#   Instructions for one warm verify at 100,000 rows (callgrind): 22.7 M, of which the line
#   scan 6.6 M and memchr 6.1 M. Before streaming and the first-byte test: 12.54 ms (3.99x),
#   most of it the kernel faulting in a 5.7 MB read buffer; before this work, 10,000 rows
#   cost 17.3 ms against 3.9 ms for one. With the whole issue merged (proxy choice, OpenSSH
#   version cache), quiet machine: 1 row 4.74 ms, 10,000 rows 5.49 ms (1.16x), 100,000 rows
#   6.68 ms (1.41x).
set -euo pipefail
cd "$(dirname "$0")/.."
vector=${1:-rs256-ecdsa}
dir=tests/vectors/go-opkssh/accept/$vector
[ -d "$dir" ] || { echo "no vector $dir" >&2; exit 1; }
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }

target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -p opkssh-cli >/dev/null
bin=$(realpath "$target/release/opkssh")
work=$(mktemp -d)
trap 'kill ${server:-} 2>/dev/null || true; rm -rf "$work"' EXIT

. bench/lib/warm-vector.sh
warm_vector "$dir" "$work"

commands=()
for rows in 1 10000 100000; do
  etc=$work/etc-$rows
  mkdir -p "$etc"
  cp -p "$work/etc/providers" "$etc/providers"
  python3 - "$rows" "$email" "$issuer" > "$etc/auth_id" <<'PY'
import sys
rows, email, issuer = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = sys.stdout
for index in range(1, rows):
    out.write(f"user{index:06d} user{index:06d}@example.com {issuer}\n")
out.write(f"alice {email} {issuer}\n")
PY
  chmod 0640 "$etc/auth_id"
  echo "auth_id with $rows rows: $(stat -c %s "$etc/auth_id") bytes"
  commands+=("$(printf '%q ' "$bin" verify --config-dir "$etc" --cache-dir "$work/cache" --log-file "$work/opkssh-$rows.log" alice "$key_b64" "$key_type")")
done

serve_issuer "$work"
for command in "${commands[@]}"; do
  eval "$command" >/dev/null || { echo "warm-up verify denied: $command" >&2; cat "$work"/opkssh-*.log >&2; exit 1; }
done
stop_issuer

hyperfine --warmup 20 --runs 200 -N --export-json "$work/hyperfine.json" "${commands[@]}"
python3 - "$work/hyperfine.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
medians = [r["median"] * 1000 for r in results]
base = medians[0]
for rows, median, target in zip([1, 10000, 100000], medians, [None, 1.5, 2.0]):
    ratio = median / base
    verdict = "" if target is None else (f" (target <= {target}x: {'met' if ratio <= target else 'MISSED'})")
    print(f"{rows:>7} rows: median {median:.2f} ms, {ratio:.2f}x one row{verdict}")
PY
