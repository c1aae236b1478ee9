//! The access token: its JOSE header and its claims (RFC 9068), and the
//! legacy shape HS256 tokens can take for an old fleet's verifiers.

use serde::{Deserialize, Serialize};

use crate::phase::Alg;

/// The `typ` header value of an RFC 9068 access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims keyshift writes itself; `[issuer.legacy.claims]` may not set
/// them (a second `iss` would make a token that strict verifiers refuse).
pub const REGISTERED_CLAIMS: [&str; 9] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "scope",
    "client_id",
];

/// The `typ` header a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderTyp {
    /// `at+jwt` (RFC 9068): every RS256 token, and HS256 tokens by default.
    #[default]
    AtJwt,
    /// `JWT`, as many home-grown issuers write it.
    Jwt,
    /// No `typ` member.
    Absent,
}

impl HeaderTyp {
    /// Parses the config value: `"at+jwt"`, `"JWT"` or `""` (none).
    pub fn from_config(s: &str) -> Option<HeaderTyp> {
        match s {
            ACCESS_TOKEN_TYP => Some(HeaderTyp::AtJwt),
            "JWT" => Some(HeaderTyp::Jwt),
            "" => Some(HeaderTyp::Absent),
            _ => None,
        }
    }

    /// The header value, `None` for no `typ`; also the config value.
    pub const fn as_header(self) -> Option<&'static str> {
        match self {
            HeaderTyp::AtJwt => Some(ACCESS_TOKEN_TYP),
            HeaderTyp::Jwt => Some("JWT"),
            HeaderTyp::Absent => None,
        }
    }
}

/// The JOSE header keyshift writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    /// `HS256` or `RS256`.
    pub alg: String,
    /// `at+jwt`, except on HS256 tokens shaped by `[issuer.legacy]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The signing key's id: the RFC 7638 thumbprint for RSA keys, a
    /// secret-derived id for the HS256 secret. Absent only on HS256 tokens
    /// shaped by `[issuer.legacy] kid = false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

impl JwsHeader {
    /// The header keyshift writes for a key: `alg`, `typ: at+jwt`, `kid`.
    pub fn new(alg: Alg, kid: &str) -> JwsHeader {
        JwsHeader::shaped(alg, HeaderTyp::AtJwt, Some(kid))
    }

    /// A header with the given `typ` and optional `kid` (the legacy shape).
    pub fn shaped(alg: Alg, typ: HeaderTyp, kid: Option<&str>) -> JwsHeader {
        JwsHeader {
            alg: alg.as_str().to_owned(),
            typ: typ.as_header().map(str::to_owned),
            kid: kid.map(str::to_owned),
        }
    }

    /// The header's base64url segment, as the issuer writes it into every
    /// token of the key and the verifier recognises it byte for byte.
    pub fn encode(&self) -> String {
        crate::b64::encode(serde_json::to_vec(self).expect("a struct of strings serialises"))
    }
}

/// The claims of an access token as the issuer mints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer identifier (exact string match at the verifier).
    pub iss: String,
    /// The subject: for client credentials, the client id.
    pub sub: String,
    /// The audience (a single string); absent only on HS256 tokens shaped
    /// by `[issuer.legacy] audience = ""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
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
    /// Static extra claims (`[issuer.legacy.claims]`); empty on RS256 tokens.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_header_is_byte_for_byte_what_it_always_was() {
        let h = JwsHeader::new(Alg::Hs256, "k1");
        assert_eq!(
            serde_json::to_string(&h).expect("json"),
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#
        );
        let legacy = JwsHeader::shaped(Alg::Hs256, HeaderTyp::Jwt, None);
        assert_eq!(
            serde_json::to_string(&legacy).expect("json"),
            r#"{"alg":"HS256","typ":"JWT"}"#
        );
        let bare = JwsHeader::shaped(Alg::Hs256, HeaderTyp::Absent, None);
        assert_eq!(
            serde_json::to_string(&bare).expect("json"),
            r#"{"alg":"HS256"}"#
        );
        for typ in [HeaderTyp::AtJwt, HeaderTyp::Jwt, HeaderTyp::Absent] {
            let text = typ.as_header().unwrap_or("");
            assert_eq!(HeaderTyp::from_config(text), Some(typ));
        }
        assert_eq!(HeaderTyp::from_config("jwt"), None);
    }

    #[test]
    fn claims_without_aud_or_extras_serialise_without_them() {
        let mut c = AccessTokenClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: None,
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "j".into(),
            scope: "read".into(),
            client_id: "s".into(),
            extra: serde_json::Map::new(),
        };
        let text = serde_json::to_string(&c).expect("json");
        assert_eq!(
            text,
            r#"{"iss":"i","sub":"s","exp":2,"iat":1,"nbf":1,"jti":"j","scope":"read","client_id":"s"}"#
        );
        c.aud = Some("a".into());
        c.extra.insert("tenant".into(), "acme".into());
        let text = serde_json::to_string(&c).expect("json");
        assert!(
            text.contains(r#""aud":"a","exp""#) && text.ends_with(r#""tenant":"acme"}"#),
            "{text}"
        );
        let back: AccessTokenClaims = serde_json::from_str(&text).expect("round trip");
        assert_eq!(back, c);
    }
}
