// A real OpenID provider (npm oidc-provider, OpenID-certified) for the end-to-end tests.
// Test-only: never expose it beyond loopback. See ../../../../shared/docs/e2e-harness.md §2.
//
// Env: OP_PORT (9998; 0 = pick a free port), OP_HOST (127.0.0.1), OP_ISSUER (http://localhost:<port>),
//      OP_CLIENT_ID (opkssh-e2e), OP_KEYS_FILE (private JWKS; generated if missing),
//      OP_ID_TOKEN_TTL (3600), OP_APP_TYPE (native|web), OP_ACCOUNTS (JSON, extra accounts),
//      OP_SIGNING_ALG (RS256|ES256: the ID-token signing algorithm and the kind of generated keys),
//      OP_EXIT_ON_STDIN_EOF (1: exit when stdin closes, so the OP dies with a test process that was killed),
//      OP_DEVICE_FLOW (1; 0: no device authorization endpoint, no device_code grant),
//      OP_DEVICE_NONCE (1: the device authorization's `nonce` goes into the ID token, as Keycloak, Pocket ID
//                       and Rauthy do; 0: stock oidc-provider, which drops it, as Google and Entra do).
// Test-only endpoints:
//   POST /__test/rotate[?drop_old=1] -> a new key signs; the old ones stay in the JWKS unless drop_old=1.
//   GET  /__test/requests[?reset=1]  -> JSON request counts {discovery, jwks, userinfo, token, auth, paths}
//                                       (reset=1 zeroes them after answering).
// Prints one line when listening: OP_READY issuer=<issuer> port=<port> kid=<signing kid> alg=<alg>
import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const PORT = Number(process.env.OP_PORT || 9998);
const HOST = process.env.OP_HOST || '127.0.0.1';
let ISSUER = process.env.OP_ISSUER; // default filled in once the port is known
const CLIENT_ID = process.env.OP_CLIENT_ID || 'opkssh-e2e';
const KEYS_FILE = process.env.OP_KEYS_FILE || '';
const ID_TTL = Number(process.env.OP_ID_TOKEN_TTL || 3600);
const ALG = process.env.OP_SIGNING_ALG || 'RS256';
const DEVICE_FLOW = process.env.OP_DEVICE_FLOW !== '0';
const DEVICE_NONCE = process.env.OP_DEVICE_NONCE !== '0';
if (!['RS256', 'ES256'].includes(ALG)) {
  console.error(`OP_SIGNING_ALG must be RS256 or ES256, not ${ALG}`);
  process.exit(2);
}
const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true, groups: ['ssh-users', 'admins'], name: 'Alice' },
  bob: { email: 'bob@example.com', email_verified: false, groups: ['devs'], name: 'Bob' },
  ...JSON.parse(process.env.OP_ACCOUNTS || '{}'),
};

function newKey() {
  const kid = crypto.randomBytes(8).toString('hex');
  const { privateKey } = ALG === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: ALG, use: 'sig' };
}
function saveKeys() {
  if (KEYS_FILE) fs.writeFileSync(KEYS_FILE, JSON.stringify({ keys }), { mode: 0o600 });
}
const t0 = Date.now();
let keys;
if (KEYS_FILE && fs.existsSync(KEYS_FILE)) keys = JSON.parse(fs.readFileSync(KEYS_FILE, 'utf8')).keys;
else { keys = [newKey()]; saveKeys(); }
// Start-up phases go to stderr, so a stalled start shows where it stopped.
console.error(`op: keys ready after ${Date.now() - t0} ms (uptime ${Math.round(process.uptime() * 1000)} ms)`);

function build(jwksKeys) {
  const provider = new Provider(ISSUER, {
    clients: [{
      client_id: CLIENT_ID,
      application_type: process.env.OP_APP_TYPE || 'native', // native: any loopback port; web: exact match
      token_endpoint_auth_method: 'none',                     // public client => PKCE S256 required
      grant_types: ['authorization_code', 'refresh_token',
        ...(DEVICE_FLOW ? ['urn:ietf:params:oauth:grant-type:device_code'] : [])],
      response_types: ['code'],
      id_token_signed_response_alg: ALG,
      redirect_uris: ['http://localhost:3000/login-callback', 'http://localhost:10001/login-callback',
        'http://localhost:11110/login-callback'],
    }],
    jwks: { keys: jwksKeys },
    claims: { openid: ['sub', 'groups'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    conformIdTokenClaims: false,   // REQUIRED: otherwise the ID token carries only sub (claims go to userinfo)
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: DEVICE_FLOW } },
    cookies: { keys: ['e2e-only-cookie-key'] },
    ttl: { IdToken: ID_TTL, AccessToken: 3600, RefreshToken: 86400, Session: 86400, Grant: 86400, Interaction: 600,
      DeviceCode: 600 },
    async findAccount(ctx, id) {   // devInteractions: any login name is accepted; it becomes `sub`
      const a = ACCOUNTS[id] || { email: `${id}@example.com`, email_verified: true, groups: [], name: id };
      return { accountId: id, async claims() { return { sub: id, ...a }; } };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  if (DEVICE_FLOW && DEVICE_NONCE) {
    // oidc-provider keeps the device authorization's parameters on the device code but issues
    // ID tokens with the code's own `nonce`, which it never sets. Copy it over on every save,
    // from the first one at the device authorization on.
    const { DeviceCode } = provider;
    const save = DeviceCode.prototype.save;
    DeviceCode.prototype.save = function saveWithNonce(...args) {
      if (this.nonce === undefined && typeof this.params?.nonce === 'string') this.nonce = this.params.nonce;
      return save.apply(this, args);
    };
  }
  return provider;
}

const NAMED = {
  '/.well-known/openid-configuration': 'discovery', '/jwks': 'jwks', '/me': 'userinfo', '/token': 'token',
  '/auth': 'auth', '/device/auth': 'device_authorization',
};
function zeroCounts() {
  return { discovery: 0, jwks: 0, userinfo: 0, token: 0, auth: 0, device_authorization: 0, paths: {} };
}
let counts = zeroCounts();
function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

let provider;
let handler = (req, res) => { res.writeHead(503); res.end(); };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/__test/rotate' && req.method === 'POST') {
    const dropOld = url.searchParams.get('drop_old') === '1';
    keys = [newKey(), ...(dropOld ? [] : keys)];  // the first key with a matching alg signs
    saveKeys();
    provider = build(keys); handler = provider.callback();  // in-memory adapter is module-global: sessions survive
    json(res, 200, { kids: keys.map((k) => k.kid) });
    return;
  }
  if (url.pathname === '/__test/requests' && req.method === 'GET') {
    json(res, 200, counts);
    if (url.searchParams.get('reset') === '1') counts = zeroCounts();
    return;
  }
  const name = NAMED[url.pathname];
  if (name) counts[name] += 1;
  counts.paths[url.pathname] = (counts.paths[url.pathname] || 0) + 1;
  handler(req, res);
});
server.listen(PORT, HOST, () => {
  const { port } = server.address();
  ISSUER ||= `http://localhost:${port}`;
  console.error(`op: listening after ${Date.now() - t0} ms`);
  provider = build(keys); handler = provider.callback();
  console.log(`OP_READY issuer=${ISSUER} port=${port} kid=${keys[0].kid} alg=${ALG}`);
});
if (process.env.OP_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0)); // server.close() would wait for keep-alive sockets
