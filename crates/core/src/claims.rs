//! The access token: its JOSE header and its claims (RFC 9068).

use serde::{Deserialize, Serialize};

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
