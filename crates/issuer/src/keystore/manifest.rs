//! The manifest model: each key's kid, state and timestamps, and the
//! transitions between states (`next` → `active` → `retiring` → `retired`).
//! Pure data: reading and writing it is [`super::KeyStore`]'s.

use serde::{Deserialize, Serialize};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
const MANIFEST_VERSION: u32 = 1;

/// A key's place in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing (in the RS256 phases) and published.
    Active,
    /// Published until its last token expired; signs nothing.
    Retiring,
    /// Gone from the JWKS; its private key file is deleted.
    Retired,
}

impl KeyState {
    /// The state's name, also the `state` metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    /// Whether keys in this state are listed in the JWKS.
    pub const fn is_published(self) -> bool {
        !matches!(self, KeyState::Retired)
    }
}

/// One key of the manifest. Timestamps are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// RFC 7638 thumbprint; the key file is `<kid>.pem`.
    pub kid: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Modulus size.
    pub bits: u32,
    /// When the key was generated.
    pub created_at: u64,
    /// Since when the running issuer has served it in its JWKS; `None` while it
    /// has not been (generated offline, or the issuer runs in phase `legacy`,
    /// whose JWKS lists no RSA key). A `next` key is promoted no sooner than
    /// `key_prepublish` after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<u64>,
    /// For a `next` key: when it is to become active, if scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_at: Option<u64>,
    /// When it became active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<u64>,
    /// The longest `token_ttl` (seconds) the issuer ran with while this key
    /// was active: its tokens may outlive its signing by that much, even if
    /// a reload has shortened `token_ttl` since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_ttl: Option<u64>,
    /// When it stopped signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_at: Option<u64>,
    /// When it may leave the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<u64>,
    /// When it left the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

impl KeyEntry {
    /// A `next` key made at `now`, with nothing scheduled yet.
    pub fn new_next(kid: String, bits: u32, now: u64) -> KeyEntry {
        KeyEntry {
            kid,
            state: KeyState::Next,
            bits,
            created_at: now,
            published_at: None,
            activate_at: None,
            activated_at: None,
            max_token_ttl: None,
            retiring_at: None,
            retire_at: None,
            retired_at: None,
        }
    }

    /// Makes it the signing key from `now`.
    pub fn activate(&mut self, now: u64) {
        self.state = KeyState::Active;
        self.activate_at = None;
        self.activated_at = Some(now);
    }

    /// Schedules a `next` key's promotion.
    pub fn schedule(&mut self, activate_at: u64) {
        self.activate_at = Some(activate_at);
    }

    /// Stops it signing at `now`; it stays published until `retire_at`.
    pub fn start_retiring(&mut self, now: u64, retire_at: u64) {
        self.state = KeyState::Retiring;
        self.retiring_at = Some(now);
        self.retire_at = Some(retire_at);
    }

    /// Takes it out of the JWKS at `now` (its private key file goes too).
    pub fn retire(&mut self, now: u64) {
        self.state = KeyState::Retired;
        self.retired_at = Some(now);
    }

    /// Its key file's name in the key directory.
    pub(super) fn file_name(&self) -> String {
        format!("{}.pem", self.kid)
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// Every key ever generated here, oldest first.
    pub keys: Vec<KeyEntry>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            version: MANIFEST_VERSION,
            keys: Vec::new(),
        }
    }
}

impl Manifest {
    /// The keys in `state`, oldest first.
    pub fn keys_in(&self, state: KeyState) -> impl Iterator<Item = &KeyEntry> {
        self.keys.iter().filter(move |k| k.state == state)
    }

    pub(super) fn key_mut(&mut self, kid: &str) -> Option<&mut KeyEntry> {
        self.keys.iter_mut().find(|k| k.kid == kid)
    }

    /// Records that the issuer now serves a JWKS listing exactly the kids in
    /// `served`: a served key without `published_at` gets `now`; a `next` or
    /// `active` key that is not served loses it (a verifier may cache the
    /// JWKS without it, so its pre-publish time starts again when it is
    /// served again). Returns whether anything changed.
    pub fn record_served(&mut self, served: &[String], now: u64) -> bool {
        let mut changed = false;
        for k in &mut self.keys {
            let is_served = served.contains(&k.kid);
            if is_served && k.published_at.is_none() {
                k.published_at = Some(now);
                changed = true;
            } else if !is_served
                && matches!(k.state, KeyState::Next | KeyState::Active)
                && k.published_at.is_some()
            {
                k.published_at = None;
                changed = true;
            }
        }
        changed
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.version != MANIFEST_VERSION {
            return Err(format!("unsupported version {}", self.version));
        }
        for state in [KeyState::Active, KeyState::Next] {
            if self.keys_in(state).count() > 1 {
                return Err(format!("more than one {} key", state.as_str()));
            }
        }
        for (i, k) in self.keys.iter().enumerate() {
            if !is_kid_safe(&k.kid) {
                return Err(format!(
                    "key {i}: kid `{}` is not a thumbprint",
                    k.kid.escape_debug()
                ));
            }
            if self.keys[..i].iter().any(|o| o.kid == k.kid) {
                return Err(format!("kid {} appears twice", k.kid));
            }
        }
        Ok(())
    }
}

/// A kid is used as a file name: only base64url characters, bounded length.
pub(super) fn is_kid_safe(kid: &str) -> bool {
    (20..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
