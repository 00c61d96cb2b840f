# Sourced by the bench scripts: a Go vector's issuer served once on loopback to warm verify's
# discovery/JWKS cache, then stopped, so the timed runs need no network.
#
#   warm_vector <vector-dir> <work-dir>
#
# Sets: issuer, client_id, email, key_type, key_b64; writes <work>/etc/providers (0640) and
# creates <work>/cache (0700). The caller writes auth_id and runs one verify to warm the cache
# with `serve_issuer` running, then calls `stop_issuer`.

warm_vector() {
  local dir=$1 work=$2
  issuer=$(cat "$dir/issuer.txt")
  client_id=$(cat "$dir/client_id.txt")
  email=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["email"])' "$dir/meta.json")
  read -r key_type key_b64 < "$dir/cert.pub"
  mkdir -p "$work/www/.well-known" "$work/etc" "$work/cache"
  cp "$dir/openid-configuration.json" "$work/www/.well-known/openid-configuration"
  cp "$dir/jwks.json" "$work/www/jwks.json"
  printf '%s %s oidc\n' "$issuer" "$client_id" > "$work/etc/providers"
  chmod 0640 "$work/etc/providers"
  chmod 0700 "$work/cache"
}

serve_issuer() {
  local work=$1 port=${issuer##*:}
  (cd "$work/www" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
  server=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/jwks.json" >/dev/null 2>&1 && break; sleep 0.1; done
}

stop_issuer() {
  kill "$server"; wait "$server" 2>/dev/null || true; server=
}
