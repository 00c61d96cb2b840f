#!/usr/bin/env bash
# What `chain_authorized_keys_command` adds to `opkssh verify`: the same plain key (ssh-ed25519)
# verified with no chain, chained to `cat` of a key file, and chained to a /bin/sh script run
# with `%u %f`; each chained command also timed alone, so verify's own share (config read,
# fork/exec in a process group, pipes, %f, line filter) is the difference. And an opkssh
# certificate (Go vector, warm cache) with and without a chain configured: the chain must cost
# nothing when opkssh lets the key in.
#
#   bench/chain.sh [runs]      (default 300; root: config files must be root-owned, group
#                               opksshuser as install-server makes them)
#
# Measured here (2 cores shared with other engineers' builds, 2026-12-06, 300 runs, medians):
#   plain key, no chain 1.49 ms; chained to cat 2.61 ms (cat alone 0.83 ms), so verify's own
#   share is 0.29 ms; chained to a sh script with %u %f 3.26 ms (the script alone 1.49 ms),
#   again 0.29 ms of verify's own. An opkssh certificate allowed: 3.59 ms without a chain,
#   4.43 ms with one configured (not run; the difference is noise here: -0.48 ms on the run
#   before). Before the runner polled the exit status in growing steps (a fixed 5 ms step), the
#   same share was 0.80 ms (cat) and 1.92 ms (sh).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
vector=tests/vectors/go-opkssh/accept/rs256-ecdsa
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
getent group opksshuser >/dev/null || { echo "no group opksshuser (install-server creates it)" >&2; exit 1; }

cargo build --release --locked -p opkssh-cli >/dev/null
bin=$PWD/target/release/opkssh
work=$(mktemp -d)
chmod 0755 "$work"
trap 'kill ${server:-} 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

. bench/lib/warm-vector.sh
warm_vector "$vector" "$work"
printf 'alice %s %s\n' "$email" "$issuer" > "$work/etc/auth_id"
chmod 0640 "$work/etc/auth_id"

# The plain key and what the chained commands print for it. The chain runs only for an account
# that exists (sshd would not ask for another): the plain key is offered for root.
ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/plain"
read -r plain_type plain_b64 _ < "$work/plain.pub"
cp "$work/plain.pub" "$work/keys"
chmod 0644 "$work/keys"
printf '#!/bin/sh\n[ "$1" = root ] && cat %s\n' "$work/keys" > "$work/chain.sh"
chmod 0755 "$work/chain.sh"

config() { # config.yml as verify requires it: 0640 root:opksshuser
  if [ -z "$1" ]; then rm -f "$work/etc/config.yml"; return; fi
  printf 'chain_authorized_keys_command: "%s"\n' "$1" > "$work/etc/config.yml"
  chown root:opksshuser "$work/etc/config.yml"
  chmod 0640 "$work/etc/config.yml"
}

verify=("$bin" verify --config-dir "$work/etc" --cache-dir "$work/cache" --log-file "$work/opkssh.log")
plain=("${verify[@]}" root "$plain_b64" "$plain_type")
cert=("${verify[@]}" alice "$key_b64" "$key_type")
quote() { printf '%q ' "$@"; }

serve_issuer "$work"
"${cert[@]}" >/dev/null || { echo "warm-up verify denied:" >&2; cat "$work/opkssh.log" >&2; exit 1; }
stop_issuer

time_it() { # name, command...
  local name=$1; shift
  hyperfine --warmup 20 --runs "$runs" -N -i --export-json "$work/$name.json" "$(quote "$@")" >/dev/null
}

config ""
time_it plain_no_chain "${plain[@]}"
time_it cert_no_chain "${cert[@]}"
config "/usr/bin/cat $work/keys"
out=$("${plain[@]}"); [ "$out" = "$(cat "$work/keys")" ] || { echo "cat chain passed: $out" >&2; exit 1; }
time_it plain_chain_cat "${plain[@]}"
time_it cat_alone /usr/bin/cat "$work/keys"
config "$work/chain.sh %u %f"
out=$("${plain[@]}"); [ "$out" = "$(cat "$work/keys")" ] || { echo "sh chain passed: $out" >&2; exit 1; }
time_it plain_chain_sh "${plain[@]}"
time_it sh_alone "$work/chain.sh" root "SHA256:x"
time_it cert_with_chain "${cert[@]}"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
m = {}
for name in ["plain_no_chain", "cert_no_chain", "plain_chain_cat", "cat_alone",
             "plain_chain_sh", "sh_alone", "cert_with_chain"]:
    r = json.load(open(f"{work}/{name}.json"))["results"][0]
    m[name] = r["median"] * 1000
    print(f"{name:16} median {r['median']*1000:6.2f} ms  mean {r['mean']*1000:6.2f} ms  min {r['min']*1000:6.2f} ms")
print()
print(f"plain key, chain = cat:       +{m['plain_chain_cat'] - m['plain_no_chain']:.2f} ms over no chain "
      f"(cat alone {m['cat_alone']:.2f} ms; verify's own share {m['plain_chain_cat'] - m['plain_no_chain'] - m['cat_alone']:.2f} ms)")
print(f"plain key, chain = sh %u %f:  +{m['plain_chain_sh'] - m['plain_no_chain']:.2f} ms over no chain "
      f"(script alone {m['sh_alone']:.2f} ms; verify's own share {m['plain_chain_sh'] - m['plain_no_chain'] - m['sh_alone']:.2f} ms)")
print(f"opkssh certificate allowed:   {m['cert_with_chain'] - m['cert_no_chain']:+.2f} ms with a chain configured (not run)")
PY
