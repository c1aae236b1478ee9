//! A JWT's JOSE header and claims, read without checking anything: for tests
//! and the load-test harness, which only need to know what was sent (`alg`,
//! `kid`, `jti`).

use keyshift_core::{b64, Alg};

/// The parts of a JWT header the readers look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `alg`.
    pub alg: Alg,
    /// `kid`, if any.
    pub kid: Option<String>,
}

/// The decoded header of a compact JWS as JSON; `None` if its first segment
/// is not base64url JSON.
pub fn header_json(token: &str) -> Option<serde_json::Value> {
    let segment = token.split('.').next()?;
    serde_json::from_slice(&b64::decode(segment).ok()?).ok()
}

/// The decoded claims (second segment) of a compact JWS as JSON; `None` if
/// it is not base64url JSON.
pub fn payload(token: &str) -> Option<serde_json::Value> {
    let segment = token.split('.').nth(1)?;
    serde_json::from_slice(&b64::decode(segment).ok()?).ok()
}

/// The header of a compact JWS; `None` if it is not a JWT or its `alg` is
/// not one keyshift signs (`HS256`, `RS256`).
pub fn header(token: &str) -> Option<Header> {
    let json = header_json(token)?;
    Some(Header {
        alg: Alg::from_jose(json["alg"].as_str()?)?,
        kid: json["kid"].as_str().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_of_garbage_is_none() {
        assert_eq!(header("not a jwt"), None);
        assert_eq!(header(""), None);
        let no_alg = format!("{}.e30.x", b64::encode(r#"{"kid":"k"}"#));
        assert_eq!(header(&no_alg), None);
        let unknown_alg = format!("{}.e30.x", b64::encode(r#"{"alg":"none","kid":"k"}"#));
        assert_eq!(header(&unknown_alg), None);
        let no_kid = format!("{}.e30.x", b64::encode(r#"{"alg":"HS256"}"#));
        assert_eq!(
            header(&no_kid),
            Some(Header {
                alg: Alg::Hs256,
                kid: None
            })
        );
        let rs = format!("{}.e30.x", b64::encode(r#"{"alg":"RS256","kid":"k1"}"#));
        assert_eq!(header_json(&rs).expect("json")["kid"], "k1");
    }
}
