//! Verifying a presented client secret against its configured hash, in
//! constant time: `sha256:` for generated secrets, and the slow hashes old
//! client stores hold (argon2id, bcrypt, PBKDF2-SHA256), parsed fully once.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use keyshift_core::secret::{SecretHash, SecretHashError, SlowScheme};

/// A client secret hash, ready to verify against.
#[derive(Clone)]
pub struct ClientHash {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Sha256(SecretHash),
    /// The PHC string (argon2id or PBKDF2), checked to parse.
    Phc(SlowScheme, String),
    Bcrypt(String),
}

impl std::fmt::Debug for ClientHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &self.kind {
            Kind::Sha256(_) => "ClientHash(sha256, <redacted>)",
            Kind::Phc(SlowScheme::Argon2id, _) => "ClientHash(argon2id, <redacted>)",
            Kind::Phc(..) => "ClientHash(pbkdf2-sha256, <redacted>)",
            Kind::Bcrypt(_) => "ClientHash(bcrypt, <redacted>)",
        })
    }
}

impl ClientHash {
    /// Parses a configured hash fully; the error says what is wrong.
    pub fn new(hash: &SecretHash) -> Result<ClientHash, SecretHashError> {
        let kind = match hash {
            SecretHash::Sha256(_) => Kind::Sha256(hash.clone()),
            SecretHash::Slow(slow) => {
                let malformed = |reason: String| SecretHashError::Malformed {
                    scheme: slow.scheme.as_str(),
                    reason,
                };
                match slow.scheme {
                    SlowScheme::Bcrypt => {
                        let parts: bcrypt::HashParts = slow
                            .text
                            .parse()
                            .map_err(|e: bcrypt::BcryptError| malformed(e.to_string()))?;
                        if !(4..=31).contains(&parts.get_cost()) {
                            return Err(malformed("cost must be 4 to 31".to_owned()));
                        }
                        Kind::Bcrypt(slow.text.clone())
                    }
                    scheme => {
                        let parsed =
                            PasswordHash::new(&slow.text).map_err(|e| malformed(e.to_string()))?;
                        if parsed.hash.is_none() {
                            return Err(malformed("no hash part".to_owned()));
                        }
                        if scheme == SlowScheme::Argon2id {
                            argon2::Params::try_from(&parsed)
                                .map_err(|e| malformed(e.to_string()))?;
                        }
                        Kind::Phc(scheme, slow.text.clone())
                    }
                }
            }
        };
        Ok(ClientHash { kind })
    }

    /// A `sha256:` hash no secret matches in practice: what an unknown id is
    /// checked against when no client is configured.
    pub fn placeholder() -> ClientHash {
        ClientHash {
            kind: Kind::Sha256(SecretHash::Sha256([0x5a; 32])),
        }
    }

    /// Whether verifying takes deliberate work (milliseconds, memory): such
    /// verifications run on the blocking pool, a bounded number at a time.
    pub fn is_slow(&self) -> bool {
        !matches!(self.kind, Kind::Sha256(_))
    }

    /// The scheme's name, for logs and metric labels.
    pub fn scheme(&self) -> &'static str {
        match &self.kind {
            Kind::Sha256(_) => "sha256",
            Kind::Phc(s, _) => s.as_str(),
            Kind::Bcrypt(_) => SlowScheme::Bcrypt.as_str(),
        }
    }

    /// Whether `presented` is the secret this hash was made from. Every
    /// scheme compares in constant time.
    pub fn verify(&self, presented: &[u8]) -> bool {
        match &self.kind {
            Kind::Sha256(h) => h.verify_sha256(presented).unwrap_or(false),
            Kind::Phc(scheme, phc) => {
                let Ok(hash) = PasswordHash::new(phc) else {
                    return false;
                };
                match scheme {
                    SlowScheme::Argon2id => argon2::Argon2::default()
                        .verify_password(presented, &hash)
                        .is_ok(),
                    _ => pbkdf2::Pbkdf2.verify_password(presented, &hash).is_ok(),
                }
            }
            Kind::Bcrypt(text) => bcrypt::verify(presented, text).unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    fn salt() -> SaltString {
        SaltString::encode_b64(b"0123456789abcdef").expect("salt")
    }

    fn parse(text: &str) -> ClientHash {
        ClientHash::new(&SecretHash::parse(text).expect("form")).expect("parses")
    }

    #[test]
    fn each_scheme_verifies_only_its_secret() {
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64, 1, 1, None).expect("params"),
        )
        .hash_password(b"s3cret", &salt())
        .expect("argon2")
        .to_string();
        let pbkdf = pbkdf2::Pbkdf2
            .hash_password_customized(
                b"s3cret",
                None,
                None,
                pbkdf2::Params {
                    rounds: 1_000,
                    output_length: 32,
                },
                &salt(),
            )
            .expect("pbkdf2")
            .to_string();
        let bcrypt_text = bcrypt::hash_with_salt(b"s3cret", 4, *b"0123456789abcdef")
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB);
        let sha = SecretHash::sha256_of(b"s3cret").to_config_string();
        for (text, scheme, slow) in [
            (sha.as_str(), "sha256", false),
            (argon.as_str(), "argon2id", true),
            (pbkdf.as_str(), "pbkdf2-sha256", true),
            (bcrypt_text.as_str(), "bcrypt", true),
        ] {
            let h = parse(text);
            assert_eq!((h.scheme(), h.is_slow()), (scheme, slow));
            assert!(h.verify(b"s3cret"), "{scheme}");
            assert!(!h.verify(b"s3cret "), "{scheme}");
            assert!(!h.verify(b""), "{scheme}");
            assert!(
                !format!("{h:?}").contains(&text[text.len() - 8..]),
                "redacted"
            );
        }
        // $2a$ and $2y$ are the same algorithm.
        let y = bcrypt_text.replacen("$2b$", "$2y$", 1);
        assert!(parse(&y).verify(b"s3cret"));
    }

    #[test]
    fn hashes_of_the_right_form_but_broken_are_refused() {
        for bad in [
            "$argon2id$v=19$m=0,t=0,p=0$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$pbkdf2-sha256$i=1000,l=32$!!!$aGFzaA",
            "$2b$99$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
            "$2b$04$short",
        ] {
            let form = SecretHash::parse(bad).expect("form passes");
            assert!(
                matches!(
                    ClientHash::new(&form),
                    Err(SecretHashError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }
}
