//! The token request's body: `application/x-www-form-urlencoded` (RFC 6749
//! §4.4.2, §2.3.1), each parameter at most once.

use percent_encoding::percent_decode_str;

use crate::error::IssuerError;

/// The form parameters the token endpoint reads; each at most once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenForm {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `client_id` (client_secret_post, or repeated beside Basic).
    pub client_id: Option<String>,
    /// `client_secret` (client_secret_post).
    pub client_secret: Option<String>,
}

impl TokenForm {
    /// Parses an `application/x-www-form-urlencoded` body. A parameter given
    /// twice is refused (RFC 6749 §3.2); unknown ones are ignored.
    pub fn parse(body: &[u8]) -> Result<TokenForm, IssuerError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| IssuerError::InvalidRequest("body is not UTF-8"))?;
        let mut form = TokenForm::default();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name =
                form_decode(name).ok_or(IssuerError::InvalidRequest("malformed form encoding"))?;
            let slot = match name.as_str() {
                "grant_type" => &mut form.grant_type,
                "scope" => &mut form.scope,
                "client_id" => &mut form.client_id,
                "client_secret" => &mut form.client_secret,
                _ => continue,
            };
            if slot.is_some() {
                return Err(IssuerError::InvalidRequest("a parameter is repeated"));
            }
            *slot = Some(
                form_decode(value).ok_or(IssuerError::InvalidRequest("malformed form encoding"))?,
            );
        }
        Ok(form)
    }
}

/// `application/x-www-form-urlencoded` decoding of one component.
pub fn form_decode(text: &str) -> Option<String> {
    let plus_as_space = text.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_refuses_repeated_parameters_and_decodes_values() {
        let f = TokenForm::parse(b"grant_type=client_credentials&scope=read+write&x=1&x=2")
            .expect("valid");
        assert_eq!(f.scope.as_deref(), Some("read write"));
        assert!(matches!(
            TokenForm::parse(b"scope=a&scope=b"),
            Err(IssuerError::InvalidRequest(_))
        ));
        assert!(matches!(
            TokenForm::parse(b"scope=%ff"),
            Err(IssuerError::InvalidRequest(_))
        ));
    }
}
