// Tokens the example verifiers are tested with, minted without keyshift: as
// the old HS256 issuer mints them (jose's SignJWT), and as an attacker forges
// them.
//
//   node mint-tokens.mjs SECRET_FILE [JWKS_URL]
//
// prints `NAME TOKEN` lines: `old` (the old issuer's shape: iss legacy-auth,
// no aud, a numeric user_id, scopes as an array in scp, typ JWT, no kid),
// `old_wrong_secret`, `none` (alg none), and with a JWKS URL `confusion`
// (HS256 keyed with the RSA public key's PEM, the classic alg confusion).

import { createHmac, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';

const b64 = (data) => Buffer.from(data).toString('base64url');

let secret = readFileSync(process.argv[2]);
if (secret.at(-1) === 0x0a) secret = secret.subarray(0, -1);
const now = Math.floor(Date.now() / 1000);
const old = { iss: 'legacy-auth', user_id: 4711, scp: ['orders:read', 'orders:write'], iat: now, exp: now + 600 };
const sign = (key) => new SignJWT(old).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new Uint8Array(key));
console.log('old', await sign(secret));
console.log('old_wrong_secret', await sign(Buffer.alloc(32, 'x')));
console.log('none', `${b64(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64(JSON.stringify(old))}.`);
if (process.argv[3]) {
  const jwk = (await (await fetch(process.argv[3])).json()).keys[0];
  const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  const claims = { ...old, iss: 'http://127.0.0.1', aud: 'https://api.test', sub: 'attacker' };
  const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: jwk.kid }))}.${b64(JSON.stringify(claims))}`;
  console.log('confusion', `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`);
}
