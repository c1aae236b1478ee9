//! Secrets: the shared HS256 secret, and hashes of client secrets.
//!
//! Neither type ever prints its content: `Debug` is redacted, and there is no
//! `Display`.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::b64;

/// Fewest bytes an HS256 secret may have (RFC 7518 §3.2: a key of the hash's size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Fewest bytes a weak legacy HS256 secret may have, with
/// `allow_weak_hs256_secret = true`: the floor whatever the config says.
pub const MIN_WEAK_HS256_SECRET_BYTES: usize = 16;

/// Which HS256 secret lengths a load accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretFloor {
    /// At least [`MIN_HS256_SECRET_BYTES`].
    #[default]
    Full,
    /// At least [`MIN_WEAK_HS256_SECRET_BYTES`]: a legacy secret shorter than
    /// RFC 7518 wants, allowed by `allow_weak_hs256_secret` in the phases
    /// that still use it.
    AllowWeak,
}

impl SecretFloor {
    /// The fewest bytes accepted.
    pub const fn min_bytes(self) -> usize {
        match self {
            SecretFloor::Full => MIN_HS256_SECRET_BYTES,
            SecretFloor::AllowWeak => MIN_WEAK_HS256_SECRET_BYTES,
        }
    }
}

/// The shared HS256 secret.
#[derive(Clone)]
pub struct HmacSecret {
    bytes: Zeroizing<Vec<u8>>,
    kid: String,
}

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The secret is shorter than its [`SecretFloor`] allows.
    #[error("{path}: the secret has {len} bytes; HS256 needs at least {MIN_HS256_SECRET_BYTES}{}", weak_hint(*len, *floor))]
    TooShort {
        /// The file.
        path: String,
        /// Its length after the trailing newline was removed.
        len: usize,
        /// The floor it was loaded under.
        floor: SecretFloor,
    },
}

/// What the operator can do about a short secret.
fn weak_hint(len: usize, floor: SecretFloor) -> &'static str {
    match floor {
        _ if len < MIN_WEAK_HS256_SECRET_BYTES => {
            " (16 bytes is the floor even with allow_weak_hs256_secret)"
        }
        SecretFloor::Full => {
            " (a legacy secret of 16 to 31 bytes is accepted in phases legacy, dual and transition with allow_weak_hs256_secret = true)"
        }
        SecretFloor::AllowWeak => "",
    }
}

impl HmacSecret {
    /// Wraps secret bytes; refuses fewer than [`MIN_HS256_SECRET_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<HmacSecret, SecretError> {
        Self::named(bytes, "<secret>", SecretFloor::Full)
    }

    /// Wraps secret bytes; refuses fewer than `floor` allows.
    pub fn with_floor(bytes: Vec<u8>, floor: SecretFloor) -> Result<HmacSecret, SecretError> {
        Self::named(bytes, "<secret>", floor)
    }

    fn named(bytes: Vec<u8>, path: &str, floor: SecretFloor) -> Result<HmacSecret, SecretError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < floor.min_bytes() {
            return Err(SecretError::TooShort {
                path: path.to_owned(),
                len: bytes.len(),
                floor,
            });
        }
        // The kid must identify the secret without revealing anything usable
        // about it: a domain-separated hash, truncated.
        let mut h = Sha256::new();
        h.update(b"keyshift hs256 kid v1\0");
        h.update(&*bytes);
        let digest = h.finalize();
        let kid = format!("hs256-{}", b64::encode(&digest[..12]));
        Ok(HmacSecret { bytes, kid })
    }

    /// Reads a secret file: its bytes with one trailing newline (`\n` or
    /// `\r\n`) removed, at least [`MIN_HS256_SECRET_BYTES`] long.
    pub fn load(path: &Path) -> Result<HmacSecret, SecretError> {
        Self::load_with_floor(path, SecretFloor::Full)
    }

    /// Reads a secret file as [`HmacSecret::load`] does, under `floor`.
    pub fn load_with_floor(path: &Path, floor: SecretFloor) -> Result<HmacSecret, SecretError> {
        let shown = path.display().to_string();
        let mut bytes = std::fs::read(path).map_err(|source| SecretError::Read {
            path: shown.clone(),
            source,
        })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Self::named(bytes, &shown, floor)
    }

    /// Whether the secret is shorter than [`MIN_HS256_SECRET_BYTES`]
    /// (loaded under [`SecretFloor::AllowWeak`]).
    pub fn is_weak(&self) -> bool {
        self.bytes.len() < MIN_HS256_SECRET_BYTES
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The `kid` HS256 tokens signed with this secret carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The HS256 secrets a verifier checks tokens against: the shared secret of
/// `hs256_secret_file`, then the legacy profile's `secret_files`, in order.
#[derive(Debug, Clone, Default)]
pub struct HmacSecrets {
    /// The shared secret (`hs256_secret_file`), if HS256 is accepted.
    pub primary: Option<HmacSecret>,
    /// More secrets tried after it (`[verifier.legacy] secret_files`).
    pub extra: Vec<HmacSecret>,
}

impl HmacSecrets {
    /// Every secret, the primary first.
    pub fn iter(&self) -> impl Iterator<Item = &HmacSecret> {
        self.primary.iter().chain(&self.extra)
    }

    /// Whether any of them is weak (see [`HmacSecret::is_weak`]).
    pub fn any_weak(&self) -> bool {
        self.iter().any(HmacSecret::is_weak)
    }
}

impl From<Option<HmacSecret>> for HmacSecrets {
    fn from(primary: Option<HmacSecret>) -> Self {
        HmacSecrets {
            primary,
            extra: Vec::new(),
        }
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSecret")
            .field("kid", &self.kid)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// How a client secret is stored in the config: never in plain text. Only
/// its form is checked here; the issuer parses it fully and verifies secrets
/// against it (`keyshift_issuer::auth`), so the slow-hash crates stay there.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretHash {
    /// `sha256:<64 hex digits>`: for high-entropy generated secrets.
    Sha256([u8; 32]),
    /// A password hash in its usual string form (PHC or modular crypt).
    Slow(SlowHash),
}

/// The slow password-hash schemes old client stores hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SlowScheme {
    /// `$argon2id$v=19$m=…,t=…,p=…$salt$hash` (PHC).
    Argon2id,
    /// `$2a$`, `$2b$`, `$2y$` + cost + salt and hash (modular crypt).
    Bcrypt,
    /// `$pbkdf2-sha256$i=…,l=…$salt$hash` (PHC).
    Pbkdf2Sha256,
}

impl SlowScheme {
    /// The scheme's name in messages and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            SlowScheme::Argon2id => "argon2id",
            SlowScheme::Bcrypt => "bcrypt",
            SlowScheme::Pbkdf2Sha256 => "pbkdf2-sha256",
        }
    }
}

/// A slow hash: its scheme and its full text.
#[derive(Clone, PartialEq, Eq)]
pub struct SlowHash {
    /// The scheme, from the prefix.
    pub scheme: SlowScheme,
    /// The whole string as configured.
    pub text: String,
}

/// Why a `secret_hash` value is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretHashError {
    /// No known prefix.
    #[error("expected `sha256:<64 hex digits>`, an argon2id or PBKDF2-SHA256 PHC string (`$argon2id$…`, `$pbkdf2-sha256$…`) or a bcrypt hash (`$2b$…`); plain secrets are not accepted")]
    UnknownScheme,
    /// `sha256:` followed by something other than 64 hex digits.
    #[error("`sha256:` must be followed by 64 hex digits")]
    BadSha256,
    /// A known prefix with a body that does not parse.
    #[error("not a valid {scheme} hash: {reason}")]
    Malformed {
        /// The scheme (`argon2id`, `bcrypt`, …).
        scheme: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl SecretHash {
    /// Parses a config `secret_hash` value by its form: the prefix, and for
    /// slow hashes the `$`-separated fields every valid one has.
    pub fn parse(text: &str) -> Result<SecretHash, SecretHashError> {
        if let Some(hex_digits) = text.strip_prefix("sha256:") {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex_digits, &mut out).map_err(|_| SecretHashError::BadSha256)?;
            return Ok(SecretHash::Sha256(out));
        }
        let malformed = |scheme: SlowScheme, reason: &str| SecretHashError::Malformed {
            scheme: scheme.as_str(),
            reason: reason.to_owned(),
        };
        let (scheme, fields) = if text.starts_with("$argon2id$") {
            (SlowScheme::Argon2id, 4..=5) // the `v=` field is optional in PHC
        } else if text.starts_with("$argon2") {
            return Err(malformed(SlowScheme::Argon2id, "only argon2id is accepted"));
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
            (SlowScheme::Bcrypt, 3..=3)
        } else if text.starts_with("$pbkdf2-sha256$") {
            (SlowScheme::Pbkdf2Sha256, 4..=4)
        } else {
            return Err(SecretHashError::UnknownScheme);
        };
        // "$a$b$c" splits into ["", "a", "b", "c"]: the fields after the first `$`.
        let parts: Vec<&str> = text.split('$').skip(1).collect();
        if !fields.contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(malformed(scheme, "wrong number of `$` fields"));
        }
        Ok(SecretHash::Slow(SlowHash {
            scheme,
            text: text.to_owned(),
        }))
    }

    /// The `sha256:<hex>` form of a secret, as `keyshift secret hash` prints it.
    pub fn sha256_of(secret: &[u8]) -> SecretHash {
        SecretHash::Sha256(Sha256::digest(secret).into())
    }

    /// Whether `presented` hashes to this `sha256:` value, compared in
    /// constant time; `None` for a slow hash (the issuer verifies those).
    pub fn verify_sha256(&self, presented: &[u8]) -> Option<bool> {
        let SecretHash::Sha256(expected) = self else {
            return None;
        };
        let got: [u8; 32] = Sha256::digest(presented).into();
        Some(got.ct_eq(expected).into())
    }

    /// The text form for the config file.
    pub fn to_config_string(&self) -> String {
        match self {
            SecretHash::Sha256(d) => format!("sha256:{}", hex::encode(d)),
            SecretHash::Slow(h) => h.text.clone(),
        }
    }
}

impl fmt::Debug for SlowHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlowHash({}, <redacted>)", self.scheme.as_str())
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretHash::Sha256(_) => f.write_str("SecretHash::Sha256(<redacted>)"),
            SecretHash::Slow(h) => write!(f, "SecretHash::Slow({}, <redacted>)", h.scheme.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_loses_one_trailing_newline_and_must_be_long_enough() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, [b"a".repeat(32), b"\n".to_vec()].concat()).expect("write");
        let s = HmacSecret::load(&path).expect("valid");
        assert_eq!(s.expose(), b"a".repeat(32).as_slice());
        assert!(s.kid().starts_with("hs256-"));
        assert!(!format!("{s:?}").contains("aaaa"));

        std::fs::write(&path, [b"a".repeat(31), b"\n\n".to_vec()].concat()).expect("write");
        // One newline removed leaves 32 bytes ending in "\n": accepted as given.
        assert_eq!(HmacSecret::load(&path).expect("valid").expose().len(), 32);
        std::fs::write(&path, b"short\n").expect("write");
        assert!(matches!(
            HmacSecret::load(&path),
            Err(SecretError::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            HmacSecret::load_with_floor(&path, SecretFloor::AllowWeak),
            Err(SecretError::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            HmacSecret::load(&dir.path().join("missing")),
            Err(SecretError::Read { .. })
        ));
    }

    #[test]
    fn a_weak_secret_needs_the_weak_floor_and_sixteen_bytes_stay_the_floor() {
        let weak = vec![b'w'; 24];
        let err = HmacSecret::new(weak.clone()).expect_err("24 bytes under the full floor");
        let text = err.to_string();
        assert!(
            text.contains("24 bytes") && text.contains("allow_weak_hs256_secret = true"),
            "{text}"
        );
        let s = HmacSecret::with_floor(weak, SecretFloor::AllowWeak).expect("weak allowed");
        assert!(s.is_weak());
        assert!(!HmacSecret::new(vec![b's'; 32]).expect("full").is_weak());
        for len in [0, 15] {
            let err = HmacSecret::with_floor(vec![b'w'; len], SecretFloor::AllowWeak)
                .expect_err("under the floor");
            assert!(err.to_string().contains("16 bytes is the floor"), "{err}");
        }
        assert!(HmacSecret::with_floor(vec![b'w'; 16], SecretFloor::AllowWeak).is_ok());
        let both = HmacSecrets {
            primary: Some(HmacSecret::new(vec![b's'; 32]).expect("full")),
            extra: vec![
                HmacSecret::with_floor(vec![b'w'; 16], SecretFloor::AllowWeak).expect("weak"),
            ],
        };
        assert!(both.any_weak());
        assert_eq!(both.iter().count(), 2);
    }

    #[test]
    fn sha256_hash_verifies_only_its_secret() {
        let h = SecretHash::sha256_of(b"s3cret");
        let parsed = SecretHash::parse(&h.to_config_string()).expect("round trip");
        assert_eq!(parsed.verify_sha256(b"s3cret"), Some(true));
        assert_eq!(parsed.verify_sha256(b"s3cret "), Some(false));
        assert_eq!(parsed.verify_sha256(b""), Some(false));
    }

    #[test]
    fn slow_hashes_are_recognised_by_form() {
        let cases = [
            (
                "$argon2id$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
                SlowScheme::Argon2id,
            ),
            (
                "$2b$04$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
                SlowScheme::Bcrypt,
            ),
            (
                "$2y$10$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
                SlowScheme::Bcrypt,
            ),
            (
                "$pbkdf2-sha256$i=1000,l=32$c2FsdA$aGFzaA",
                SlowScheme::Pbkdf2Sha256,
            ),
        ];
        for (text, scheme) in cases {
            let h = SecretHash::parse(text).expect(text);
            assert!(
                matches!(&h, SecretHash::Slow(s) if s.scheme == scheme),
                "{text}"
            );
            assert_eq!(h.to_config_string(), text);
            assert_eq!(h.verify_sha256(b"x"), None);
            assert!(!format!("{h:?}").contains("c2Fsd"), "redacted");
        }
    }

    #[test]
    fn plain_and_malformed_hashes_are_refused() {
        assert_eq!(
            SecretHash::parse("hunter2"),
            Err(SecretHashError::UnknownScheme)
        );
        assert_eq!(
            SecretHash::parse("sha256:abcd"),
            Err(SecretHashError::BadSha256)
        );
        for bad in [
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$garbage",
            "$2b$04",
            "$pbkdf2-sha256$i=1000$$aGFzaA",
        ] {
            assert!(
                matches!(
                    SecretHash::parse(bad),
                    Err(SecretHashError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }
}
