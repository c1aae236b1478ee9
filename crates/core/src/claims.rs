//! The access token: its JOSE header and its claims (RFC 9068).

use serde::{Deserialize, Serialize};

use crate::phase::Alg;

/// The `typ` header value of an RFC 9068 access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The JOSE header keyshift writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    /// `HS256` or `RS256`.
    pub alg: String,
    /// Always `at+jwt`.
    pub typ: String,
    /// The signing key's id: the RFC 7638 thumbprint for RSA keys, a
    /// secret-derived id for the HS256 secret.
    pub kid: String,
}

impl JwsHeader {
    /// The header keyshift writes for a key: `alg`, `typ: at+jwt`, `kid`.
    pub fn new(alg: Alg, kid: &str) -> JwsHeader {
        JwsHeader {
            alg: alg.as_str().to_owned(),
            typ: ACCESS_TOKEN_TYP.to_owned(),
            kid: kid.to_owned(),
        }
    }

    /// The header's base64url segment, as the issuer writes it into every
    /// token of the key and the verifier recognises it byte for byte.
    pub fn encode(&self) -> String {
        crate::b64::encode(serde_json::to_vec(self).expect("a struct of three strings serialises"))
    }
}

/// The claims of an access token as the issuer mints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer identifier (exact string match at the verifier).
    pub iss: String,
    /// The subject: for client credentials, the client id.
    pub sub: String,
    /// The audience (a single string).
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued-at, seconds since the epoch.
    pub iat: u64,
    /// Not-before, seconds since the epoch.
    pub nbf: u64,
    /// A random unique token id.
    pub jti: String,
    /// Granted scopes, space-delimited.
    pub scope: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
}
