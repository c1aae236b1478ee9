// A dual-mode verifier for keyshift tokens, to copy into a Node service.
//
// HS256 tokens are checked against the shared secret, RS256 tokens against
// the issuer's JWKS (jose's createRemoteJWKSet, by kid): the key decides the
// algorithm, never the token. Which algorithms pass follows the migration
// phase, as keyshift's own verifier does. The optional legacy profile
// loosens HS256 checks only, with the names of keyshift's [verifier.legacy].
//
//   const verify = keyshiftVerifier(loadConfig('verifier.json'));
//   const claims = await verify(token);   // throws Rejected
//
// Run as a program, it reads `NAME TOKEN` lines on stdin and prints one
// decision per line (`NAME ok sub=… scope=… alg=…` or `NAME rejected: why`).

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';

// Which algorithms each phase accepts (keyshift's phase table).
const ACCEPTS = {
  legacy: ['HS256'],
  dual: ['HS256', 'RS256'],
  transition: ['HS256', 'RS256'],
  asymmetric: ['RS256'],
};

// `typ` values keyshift's verifier accepts by default (RFC 9068, or none).
const TYPES = [undefined, 'JWT', 'jwt', 'at+jwt', 'application/at+jwt'];

const LEEWAY_SECONDS = 30;

/** The token is refused; the message says why (never the token). */
export class Rejected extends Error {}

/** Reads the JSON config (keyshift's key names). */
export function loadConfig(path) {
  const raw = JSON.parse(readFileSync(path, 'utf8'));
  if (!(raw.phase in ACCEPTS)) throw new Error(`phase: unknown phase ${raw.phase}`);
  let secret = null;
  if (raw.hs256_secret_file) {
    let bytes = readFileSync(raw.hs256_secret_file);
    if (bytes.at(-1) === 0x0a) bytes = bytes.subarray(0, -1);
    if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1);
    secret = new Uint8Array(bytes);
  }
  const legacy = raw.legacy
    ? {
        issuers: raw.legacy.issuers ?? [],
        audienceRequired: raw.legacy.audience_required ?? true,
        subjectClaim: raw.legacy.subject_claim ?? 'sub',
        scopeClaim: raw.legacy.scope_claim ?? 'scope',
      }
    : null;
  return { phase: raw.phase, issuer: raw.issuer, audience: raw.audience, secret, jwksUrl: raw.jwks_url, legacy };
}

/** A `verify(token)` for `config`: the claims, with `sub` and `scope` as text. */
export function keyshiftVerifier(config) {
  // Caches keys; an unknown kid refetches the JWKS (with a cooldown).
  const jwks = config.jwksUrl ? createRemoteJWKSet(new URL(config.jwksUrl)) : null;
  return async function verify(token) {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new Rejected('malformed token');
    }
    const alg = header.alg;
    if (!ACCEPTS[config.phase].includes(alg)) throw new Rejected('algorithm not accepted');
    if (!TYPES.includes(header.typ)) throw new Rejected('typ not accepted');
    // The key decides: HS256 only with the secret, RS256 only with a JWKS
    // key, each with exactly its one algorithm.
    const key = alg === 'HS256' ? config.secret : jwks;
    if (!key) throw new Rejected('algorithm not accepted');
    let payload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: [alg],
        clockTolerance: LEEWAY_SECONDS,
        requiredClaims: ['exp'],
      }));
    } catch (e) {
      if (e instanceof errors.JWTExpired) throw new Rejected('token expired');
      if (e instanceof errors.JWKSNoMatchingKey) throw new Rejected('unknown key id');
      throw new Rejected(`invalid token: ${e.code ?? e.name}`);
    }
    return { ...claimsOf(config, payload, alg === 'HS256' ? config.legacy : null), alg };
  };
}

function claimsOf(config, claims, legacy) {
  const iss = claims.iss;
  if (iss !== config.issuer) {
    const listed =
      legacy !== null &&
      (iss === undefined ? legacy.issuers.includes('') : typeof iss === 'string' && iss !== '' && legacy.issuers.includes(iss));
    if (!listed) throw new Rejected('wrong issuer');
  }
  const aud = claims.aud;
  if (aud === undefined) {
    if (legacy === null || legacy.audienceRequired) throw new Rejected('wrong audience');
  } else if (!(aud === config.audience || (Array.isArray(aud) && aud.includes(config.audience)))) {
    throw new Rejected('wrong audience');
  }
  let sub = claims[legacy ? legacy.subjectClaim : 'sub'] ?? claims.sub;
  if (legacy && Number.isInteger(sub)) sub = String(sub);
  if (typeof sub !== 'string') throw new Rejected('sub missing');
  let scope = claims[legacy ? legacy.scopeClaim : 'scope'] ?? claims.scope ?? '';
  if (legacy && Array.isArray(scope) && scope.every((s) => typeof s === 'string')) scope = scope.join(' ');
  if (typeof scope !== 'string') throw new Rejected('scope of the wrong type');
  return { sub, scope, client_id: claims.client_id ?? sub };
}

async function main() {
  const verify = keyshiftVerifier(loadConfig(process.argv[2]));
  for await (const line of createInterface({ input: process.stdin })) {
    const [name, token = ''] = line.trim().split(' ');
    try {
      const c = await verify(token);
      console.log(`${name} ok sub=${c.sub} scope=${c.scope.replaceAll(' ', ',')} alg=${c.alg}`);
    } catch (e) {
      if (!(e instanceof Rejected)) throw e;
      console.log(`${name} rejected: ${e.message}`);
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await main();
