// A real OpenID Connect provider (oidc-provider) for the broker's integration tests, on a
// loopback port, with clients that get JWT access tokens by client credentials.
//
//   node provider.mjs [port]      port 0 (the default) picks a free one
//
// It prints one line of JSON on stdout when it serves, {"issuer": …, "clients": {…}}, and exits
// when its stdin closes, so that it never outlives the test that started it.
//
// Signing keys: two RSA keys (rsa-1 signs, rsa-2 is published as the next one, so that a token
// without kid is ambiguous), one P-256 key and one Ed25519 key. Each resource indicator below
// names the algorithm its tokens are signed with; all of them are for the audience "infoharbor"
// except urn:other:api. Grants travel in realm_access.roles, as Keycloak puts realm roles.
//
// Besides the provider's own endpoints:
//   GET /test/jwks-fetches   how often the JWKS was fetched, {"jwks": n, "decoy": n}
//   GET /test/bad-tokens     tokens the broker must refuse, [{kind, token}, …] (see mint.mjs)
//   GET /test/unknown-kid-tokens?n=N   N tokens with N different unpublished kids

import * as http from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

import { badTokens, unknownKidTokens } from './mint.mjs';

const AUDIENCE = 'infoharbor';

/// Each client and the grants its tokens carry.
const CLIENTS = {
  reader: ['reader@sg-lta'],
  writer: ['writer@sg-lta'],
  operator: ['operator'],
  nobody: [],
  'kl-dashboard': [],
};

/// Clients acting for a partner, named in the `partner` claim of their tokens.
const PARTNERS = {
  'kl-dashboard': 'kl-city',
};

/// Resource indicator → audience and signing algorithm of its access tokens.
const RESOURCES = {
  'urn:infoharbor:rs256': { audience: AUDIENCE, alg: 'RS256' },
  'urn:infoharbor:es256': { audience: AUDIENCE, alg: 'ES256' },
  'urn:infoharbor:eddsa': { audience: AUDIENCE, alg: 'EdDSA' },
  'urn:other:api': { audience: 'other', alg: 'RS256' },
};

async function privateJwk(alg, kid, options) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true, ...options });
  return { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
}

const keys = [
  await privateJwk('RS256', 'rsa-1'),
  await privateJwk('RS256', 'rsa-2'),
  await privateJwk('ES256', 'ec-1'),
  await privateJwk('EdDSA', 'ed-1', { crv: 'Ed25519' }),
];

const counts = { jwks: 0, decoy: 0 };
const port = Number(process.argv[2] ?? 0);
const server = http.createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: Object.keys(CLIENTS).map((id) => ({
    client_id: id,
    client_secret: `${id}-secret`,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  })),
  jwks: { keys },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:infoharbor:rs256',
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        const server = RESOURCES[resource];
        if (!server) throw new Provider.errors.InvalidTarget();
        return {
          scope: 'ngsi-ld',
          audience: server.audience,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: server.alg } },
        };
      },
    },
  },
  extraTokenClaims: (_ctx, token) => ({
    realm_access: { roles: CLIENTS[token.clientId] ?? [] },
    ...(PARTNERS[token.clientId] ? { partner: PARTNERS[token.clientId] } : {}),
  }),
});

const serveProvider = provider.callback();
server.on('request', async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  const answer = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (path === '/jwks') counts.jwks += 1;
  if (path === '/test/jwks-fetches') return answer(200, counts);
  if (path === '/test/decoy-jwks') {
    // A JWKS a forged token points to with jku; the broker must never fetch it.
    counts.decoy += 1;
    return answer(200, { keys: [] });
  }
  if (path === '/test/unknown-kid-tokens') {
    const n = Number(new URL(req.url, issuer).searchParams.get('n') ?? 10);
    return answer(200, unknownKidTokens({ issuer, audience: AUDIENCE }, n));
  }
  if (path === '/test/bad-tokens') {
    try {
      return answer(200, await badTokens({ issuer, audience: AUDIENCE, keys }));
    } catch (e) {
      return answer(500, { error: String(e?.stack ?? e) });
    }
  }
  return serveProvider(req, res);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.stdout.write(
  `${JSON.stringify({
    issuer,
    audience: AUDIENCE,
    tokenEndpoint: `${issuer}/token`,
    clients: Object.fromEntries(Object.keys(CLIENTS).map((id) => [id, `${id}-secret`])),
  })}\n`,
);
