//! Client authentication for the token endpoint (RFC 6749 §2.3.1):
//! `client_secret_basic` and `client_secret_post`, exactly one per request.

use http::HeaderMap;

use crate::error::IssuerError;
use crate::form::{form_decode, TokenForm};

/// The credentials a request presented.
#[derive(PartialEq, Eq)]
pub struct Credentials {
    /// The client id.
    pub id: String,
    /// The client secret (never logged).
    pub secret: String,
    /// Whether they came by HTTP Basic.
    pub basic: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("basic", &self.basic)
            .finish()
    }
}

/// Finds the one authentication method of the request.
pub fn credentials(headers: &HeaderMap, form: &TokenForm) -> Result<Credentials, IssuerError> {
    let mut auth = headers.get_all(http::header::AUTHORIZATION).iter();
    let header = auth.next();
    if auth.next().is_some() {
        return Err(IssuerError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    match header {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| IssuerError::InvalidClient { basic: true })?;
            let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(IssuerError::InvalidClient { basic: true });
            }
            if form.client_secret.is_some() {
                return Err(IssuerError::InvalidRequest(
                    "use one client authentication method, not both Basic and client_secret",
                ));
            }
            let (id, secret) =
                decode_basic(rest.trim()).ok_or(IssuerError::InvalidClient { basic: true })?;
            if form.client_id.as_deref().is_some_and(|f| f != id) {
                return Err(IssuerError::InvalidRequest(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            Ok(Credentials {
                id,
                secret,
                basic: true,
            })
        }
        None => match (&form.client_id, &form.client_secret) {
            (Some(id), Some(secret)) => Ok(Credentials {
                id: id.clone(),
                secret: secret.clone(),
                basic: false,
            }),
            _ => Err(IssuerError::InvalidClient { basic: false }),
        },
    }
}

/// Decodes `base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1);
/// standard base64 here, not the base64url of JOSE.
fn decode_basic(b64_text: &str) -> Option<(String, String)> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let raw = STANDARD.decode(b64_text).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use http::HeaderValue;

    fn basic(raw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(raw));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&v).expect("header"),
        );
        h
    }

    #[test]
    fn basic_components_are_form_urlencoded() {
        // id "svc:a%b" and secret "p+ss w:rd", encoded as RFC 6749 §2.3.1 says.
        let creds =
            credentials(&basic("svc%3Aa%25b:p%2Bss+w%3Ard"), &TokenForm::default()).expect("valid");
        assert_eq!(creds.id, "svc:a%b");
        assert_eq!(creds.secret, "p+ss w:rd");
        assert!(creds.basic);
        // A raw ':' in the secret survives (split at the first colon).
        let creds = credentials(&basic("svc:a:b"), &TokenForm::default()).expect("valid");
        assert_eq!((creds.id.as_str(), creds.secret.as_str()), ("svc", "a:b"));
    }

    #[test]
    fn two_methods_or_two_headers_are_invalid_requests() {
        let form = TokenForm {
            client_secret: Some("x".into()),
            ..TokenForm::default()
        };
        assert!(matches!(
            credentials(&basic("a:b"), &form),
            Err(IssuerError::InvalidRequest(_))
        ));
        let mut h = basic("a:b");
        h.append(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        assert!(matches!(
            credentials(&h, &TokenForm::default()),
            Err(IssuerError::InvalidRequest(_))
        ));
    }

    #[test]
    fn malformed_basic_is_invalid_client_with_challenge() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic !!!"),
        );
        assert!(matches!(
            credentials(&h, &TokenForm::default()),
            Err(IssuerError::InvalidClient { basic: true })
        ));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic bm9jb2xvbg=="),
        );
        assert!(matches!(
            credentials(&h, &TokenForm::default()),
            Err(IssuerError::InvalidClient { basic: true })
        ));
        assert!(matches!(
            credentials(&HeaderMap::new(), &TokenForm::default()),
            Err(IssuerError::InvalidClient { basic: false })
        ));
    }
}
