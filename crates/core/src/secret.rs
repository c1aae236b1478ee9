//! Secrets: the shared HS256 secret, and hashes of client secrets.
//!
//! Neither type ever prints its content: `Debug` is redacted, and there is no
//! `Display`.

use std::fmt;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::b64;

/// Fewest bytes an HS256 secret may have (RFC 7518 §3.2: a key of the hash's size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

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
    /// The secret is shorter than [`MIN_HS256_SECRET_BYTES`].
    #[error("{path}: the secret has {len} bytes; HS256 needs at least {MIN_HS256_SECRET_BYTES}")]
    TooShort {
        /// The file.
        path: String,
        /// Its length after the trailing newline was removed.
        len: usize,
    },
}

impl HmacSecret {
    /// Wraps secret bytes; refuses fewer than [`MIN_HS256_SECRET_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<HmacSecret, SecretError> {
        Self::named(bytes, "<secret>")
    }

    fn named(bytes: Vec<u8>, path: &str) -> Result<HmacSecret, SecretError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_HS256_SECRET_BYTES {
            return Err(SecretError::TooShort {
                path: path.to_owned(),
                len: bytes.len(),
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
        Self::named(bytes, &shown)
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

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSecret")
            .field("kid", &self.kid)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// How a client secret is stored in the config: never in plain text.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretHash {
    /// `sha256:<64 hex digits>`: for high-entropy generated secrets.
    Sha256([u8; 32]),
    /// An argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    Argon2id(String),
}

/// Why a `secret_hash` value is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretHashError {
    /// Neither `sha256:` nor `$argon2id$`.
    #[error("expected `sha256:<64 hex digits>` or an argon2id PHC string (`$argon2id$…`); plain secrets are not accepted")]
    UnknownScheme,
    /// `sha256:` followed by something other than 64 hex digits.
    #[error("`sha256:` must be followed by 64 hex digits")]
    BadSha256,
    /// An argon2 string that does not parse, or is not argon2id.
    #[error("not a valid argon2id PHC string: {0}")]
    BadArgon2(String),
}

impl SecretHash {
    /// Parses a config `secret_hash` value.
    pub fn parse(text: &str) -> Result<SecretHash, SecretHashError> {
        if let Some(hex_digits) = text.strip_prefix("sha256:") {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex_digits, &mut out).map_err(|_| SecretHashError::BadSha256)?;
            return Ok(SecretHash::Sha256(out));
        }
        if text.starts_with("$argon2id$") {
            let parsed =
                PasswordHash::new(text).map_err(|e| SecretHashError::BadArgon2(e.to_string()))?;
            if parsed.hash.is_none() {
                return Err(SecretHashError::BadArgon2("no hash part".to_owned()));
            }
            return Ok(SecretHash::Argon2id(text.to_owned()));
        }
        if text.starts_with("$argon2") {
            return Err(SecretHashError::BadArgon2(
                "only argon2id is accepted".to_owned(),
            ));
        }
        Err(SecretHashError::UnknownScheme)
    }

    /// The `sha256:<hex>` form of a secret, as `keyshift secret hash` prints it.
    pub fn sha256_of(secret: &[u8]) -> SecretHash {
        SecretHash::Sha256(Sha256::digest(secret).into())
    }

    /// Whether `presented` is the secret this hash was made from, compared in
    /// constant time.
    pub fn verify(&self, presented: &[u8]) -> bool {
        match self {
            SecretHash::Sha256(expected) => {
                let got: [u8; 32] = Sha256::digest(presented).into();
                got.ct_eq(expected).into()
            }
            SecretHash::Argon2id(phc) => match PasswordHash::new(phc) {
                Ok(hash) => Argon2::default().verify_password(presented, &hash).is_ok(),
                Err(_) => false,
            },
        }
    }

    /// The argon2 costs of an `Argon2id` hash: memory (KiB), passes and
    /// lanes; `None` for `sha256:` (or a string that no longer parses).
    pub fn argon2_costs(&self) -> Option<Argon2Costs> {
        let SecretHash::Argon2id(phc) = self else {
            return None;
        };
        let hash = PasswordHash::new(phc).ok()?;
        let params = argon2::Params::try_from(&hash).ok()?;
        Some(Argon2Costs {
            memory_kib: params.m_cost(),
            passes: params.t_cost(),
            lanes: params.p_cost(),
        })
    }

    /// The text form for the config file.
    pub fn to_config_string(&self) -> String {
        match self {
            SecretHash::Sha256(d) => format!("sha256:{}", hex::encode(d)),
            SecretHash::Argon2id(phc) => phc.clone(),
        }
    }
}

/// The cost parameters of an argon2id hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Costs {
    /// `m`: memory in KiB.
    pub memory_kib: u32,
    /// `t`: passes over the memory.
    pub passes: u32,
    /// `p`: lanes.
    pub lanes: u32,
}

impl Argon2Costs {
    /// An order by work: memory × passes first (what one verification
    /// costs, lanes being computed one after the other here), then memory,
    /// then lanes.
    pub fn work_key(self) -> (u64, u32, u32) {
        (
            u64::from(self.memory_kib) * u64::from(self.passes),
            self.memory_kib,
            self.lanes,
        )
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretHash::Sha256(_) => f.write_str("SecretHash::Sha256(<redacted>)"),
            SecretHash::Argon2id(_) => f.write_str("SecretHash::Argon2id(<redacted>)"),
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
            HmacSecret::load(&dir.path().join("missing")),
            Err(SecretError::Read { .. })
        ));
    }

    #[test]
    fn sha256_hash_verifies_only_its_secret() {
        let h = SecretHash::sha256_of(b"s3cret");
        let parsed = SecretHash::parse(&h.to_config_string()).expect("round trip");
        assert!(parsed.verify(b"s3cret"));
        assert!(!parsed.verify(b"s3cret "));
        assert!(!parsed.verify(b""));
    }

    #[test]
    fn argon2id_hash_verifies_only_its_secret() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let phc = Argon2::default()
            .hash_password(b"s3cret", &salt)
            .expect("hash")
            .to_string();
        let h = SecretHash::parse(&phc).expect("argon2id");
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"wrong"));
        assert_eq!(
            h.argon2_costs(),
            Some(Argon2Costs {
                memory_kib: 19_456,
                passes: 2,
                lanes: 1
            })
        );
        assert_eq!(SecretHash::sha256_of(b"x").argon2_costs(), None);
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
        assert!(matches!(
            SecretHash::parse("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA"),
            Err(SecretHashError::BadArgon2(_))
        ));
        assert!(matches!(
            SecretHash::parse("$argon2id$garbage"),
            Err(SecretHashError::BadArgon2(_))
        ));
    }
}
