// Tokens the broker must refuse, each named by the kind of forgery or mistake it is. They are
// signed by hand with node:crypto (a JOSE library would refuse to make most of them), with the
// provider's own keys where the point is that everything but one thing is right.
//
// Every forged token claims the operator role, so that one let through would be noticed.

import * as crypto from 'node:crypto';

const b64 = (data) => Buffer.from(data).toString('base64url');
const json = (value) => b64(JSON.stringify(value));

function signature(alg, key, input) {
  switch (alg) {
    case 'RS256':
      return crypto.sign('sha256', input, key);
    case 'RS512':
      return crypto.sign('sha512', input, key);
    case 'PS256':
      return crypto.sign('sha256', input, {
        key,
        padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
        saltLength: 32,
      });
    case 'ES256':
      return crypto.sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' });
    case 'EdDSA':
      return crypto.sign(null, input, key);
    case 'HS256':
      return crypto.createHmac('sha256', key).update(input).digest();
    case 'HS512':
      return crypto.createHmac('sha512', key).update(input).digest();
    default:
      throw new Error(`no signer for ${alg}`);
  }
}

/// A compact JWS: `header` is signed with `signAlg` (default: the header's alg) and `key`.
function jws(header, payload, key, signAlg = header.alg) {
  const input = `${json(header)}.${typeof payload === 'string' ? payload : json(payload)}`;
  return `${input}.${b64(signature(signAlg, key, input))}`;
}

const privateKey = (jwk) => crypto.createPrivateKey({ key: jwk, format: 'jwk' });
const publicKey = (jwk) => crypto.createPublicKey({ key: jwk, format: 'jwk' });

/// [{kind, token}] for a provider at `issuer` whose private JWKs are `keys`.
export async function badTokens({ issuer, audience, keys }) {
  const byKid = Object.fromEntries(keys.map((k) => [k.kid, k]));
  const rsa = privateKey(byKid['rsa-1']);
  const ec = privateKey(byKid['ec-1']);
  const ed = privateKey(byKid['ed-1']);
  const stranger = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const strangerJwk = stranger.publicKey.export({ format: 'jwk' });
  const rsaPem = publicKey(byKid['rsa-1']).export({ type: 'spki', format: 'pem' });
  const rsaDer = publicKey(byKid['rsa-1']).export({ type: 'spki', format: 'der' });

  const now = Math.floor(Date.now() / 1000);
  const claims = (over = {}) => {
    const c = {
      iss: issuer,
      aud: audience,
      sub: 'forger',
      client_id: 'forger',
      iat: now,
      exp: now + 300,
      realm_access: { roles: ['operator'] },
      ...over,
    };
    for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
    return c;
  };
  const rs = { alg: 'RS256', typ: 'JWT', kid: 'rsa-1' };
  const good = jws(rs, claims({ realm_access: { roles: ['reader@sg-lta'] } }), rsa);
  const [goodHeader, goodPayload, goodSignature] = good.split('.');

  const tokens = {
    'wrong-key': jws(rs, claims(), stranger.privateKey),
    'unknown-kid': jws({ ...rs, kid: 'rotated-away' }, claims(), stranger.privateKey),
    expired: jws(rs, claims({ iat: now - 7200, exp: now - 3600 }), rsa),
    'expired-beyond-skew': jws(rs, claims({ iat: now - 400, exp: now - 90 }), rsa),
    'not-yet-valid': jws(rs, claims({ nbf: now + 3600 }), rsa),
    'wrong-audience': jws(rs, claims({ aud: 'other' }), rsa),
    'no-audience': jws(rs, claims({ aud: undefined }), rsa),
    'wrong-issuer': jws(rs, claims({ iss: 'http://127.0.0.1:9/realms/other' }), rsa),
    'no-issuer': jws(rs, claims({ iss: undefined }), rsa),
    'no-exp': jws(rs, claims({ exp: undefined }), rsa),
    'alg-none': `${json({ alg: 'none', typ: 'JWT' })}.${json(claims())}.`,
    'alg-none-with-kid': `${json({ alg: 'none', kid: 'rsa-1' })}.${json(claims())}.`,
    'alg-NONE': `${json({ alg: 'NONE', kid: 'rsa-1' })}.${json(claims())}.`,
    'hs256-public-key-pem': jws({ ...rs, alg: 'HS256' }, claims(), rsaPem),
    'hs512-public-key-der': jws({ ...rs, alg: 'HS512' }, claims(), rsaDer),
    'tampered-payload': `${goodHeader}.${json(claims())}.${goodSignature}`,
    'tampered-header-kid': `${json({ ...rs, kid: 'rsa-2' })}.${goodPayload}.${goodSignature}`,
    'signature-stripped': `${goodHeader}.${goodPayload}.`,
    'signature-of-another-token': `${goodHeader}.${json(claims())}.${
      jws(rs, claims({ sub: 'someone-else' }), rsa).split('.')[2]
    }`,
    'no-kid-several-rsa-keys': jws({ alg: 'RS256', typ: 'JWT' }, claims(), rsa),
    'es256-header-rsa-kid': jws({ ...rs, alg: 'ES256' }, claims(), ec),
    'rs256-header-ec-kid': jws({ ...rs, kid: 'ec-1' }, claims(), rsa),
    'eddsa-header-ec-signature': jws({ alg: 'EdDSA', kid: 'ed-1' }, claims(), ec, 'ES256'),
    'es256-header-ed-kid': jws({ alg: 'ES256', kid: 'ed-1' }, claims(), ec),
    'alg-rs512': jws({ ...rs, alg: 'RS512' }, claims(), rsa),
    'alg-ps256': jws({ ...rs, alg: 'PS256' }, claims(), rsa),
    'crit-unknown-extension': jws(
      { ...rs, crit: ['urn:example:must-understand'], 'urn:example:must-understand': true },
      claims(),
      rsa,
    ),
    'jku-to-another-jwks': jws(
      { alg: 'RS256', kid: 'stranger', jku: `${issuer}/test/decoy-jwks` },
      claims(),
      stranger.privateKey,
    ),
    'jwk-in-header': jws(
      { ...rs, jwk: { ...strangerJwk, kid: 'rsa-1' } },
      claims(),
      stranger.privateKey,
    ),
    'malformed-two-parts': `${goodHeader}.${goodPayload}`,
    'malformed-four-parts': `${good}.${goodSignature}`,
    'malformed-bad-base64': '!!!.@@@.###',
    'header-not-json': `${b64('hello')}.${goodPayload}.${goodSignature}`,
    'payload-not-json': jws(rs, b64('hello'), rsa),
    oversized: jws(rs, claims({ padding: 'x'.repeat(20 * 1024) }), rsa),
    'empty-bearer': '',
  };
  // Unused in the table: proves the forger's signing is right, so that each refusal is for the
  // one thing the kind names.
  tokens['control-accepted'] = good;
  // Edwards signatures by hand too, for a control the test may also send.
  tokens['control-eddsa-accepted'] = jws(
    { alg: 'EdDSA', kid: 'ed-1' },
    claims({ realm_access: { roles: ['reader@sg-lta'] } }),
    ed,
  );
  return Object.entries(tokens).map(([kind, token]) => ({ kind, token }));
}

/// `n` tokens, each naming a different kid the provider never published (as a flood of
/// made-up kids would), signed by a key of nobody's.
export function unknownKidTokens({ issuer, audience }, n) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: n }, (_, i) =>
    jws(
      { alg: 'RS256', kid: `made-up-${i}` },
      { iss: issuer, aud: audience, sub: 'flood', exp: now + 300 },
      privateKey,
    ),
  );
}
