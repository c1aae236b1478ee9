//! A keyshift config file built in code: the phase, an `[issuer]` section and
//! its `[[issuer.clients]]`, a `[verifier]` section. A key set again replaces
//! its value where it stands, so a test edits a config the way an operator
//! does, by changing one key. Values are rendered by the `toml` crate: quoted
//! and escaped right whatever they hold.

use std::path::{Path, PathBuf};

use keyshift_core::secret::SecretHash;
use keyshift_core::Phase;

/// The file name every config this module writes has.
pub const FILE_NAME: &str = "keyshift.toml";

/// One line of a section.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    /// `key = value`.
    Key(String, toml::Value),
    /// `# text`.
    Comment(String),
}

/// The lines of one section, keys in the order they were first set.
#[derive(Debug, Clone, Default, PartialEq)]
struct Section {
    lines: Vec<Line>,
}

impl Section {
    fn set(&mut self, key: &str, value: toml::Value) {
        let existing = self.lines.iter_mut().find_map(|line| match line {
            Line::Key(k, v) if k == key => Some(v),
            _ => None,
        });
        match existing {
            Some(v) => *v = value,
            None => self.lines.push(Line::Key(key.to_owned(), value)),
        }
    }

    fn comment(&mut self, text: &str) {
        self.lines
            .extend(text.lines().map(|l| Line::Comment(l.to_owned())));
    }

    fn render(&self, header: &str, out: &mut String) {
        out.push_str(&format!("\n[{header}]\n"));
        self.render_lines(out);
    }

    fn render_lines(&self, out: &mut String) {
        for line in &self.lines {
            match line {
                Line::Key(key, value) => out.push_str(&format!("{key} = {value}\n")),
                Line::Comment(text) => out.push_str(&format!("# {text}\n")),
            }
        }
    }
}

/// The section in `slot`, created empty if there is none yet.
fn section(slot: &mut Option<Section>) -> &mut Section {
    slot.get_or_insert_with(Section::default)
}

/// `key = value` lines of TOML text, as a table.
fn toml_lines(lines: &str) -> toml::Table {
    lines
        .parse()
        .unwrap_or_else(|e| panic!("not TOML key = value lines: {lines:?}: {e}"))
}

/// One `[[issuer.clients]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `id`.
    pub id: String,
    /// `secret_hash`: `sha256:<hex>` or an argon2id PHC string.
    pub secret_hash: String,
    /// `scopes`.
    pub scopes: Vec<String>,
}

impl Client {
    /// A client whose secret is stored as `sha256:<hex>` of `secret`.
    pub fn sha256(id: &str, secret: &[u8], scopes: &[&str]) -> Client {
        Client::with_hash(id, SecretHash::sha256_of(secret).to_config_string(), scopes)
    }

    /// A client with a ready `secret_hash` (an argon2id PHC string, say).
    pub fn with_hash(id: &str, secret_hash: String, scopes: &[&str]) -> Client {
        Client {
            id: id.to_owned(),
            secret_hash,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The entry as TOML: a blank line, then the `[[issuer.clients]]` table.
    pub fn to_toml(&self) -> String {
        let mut table = Section::default();
        table.set("id", self.id.as_str().into());
        table.set("secret_hash", self.secret_hash.as_str().into());
        table.set("scopes", self.scopes.clone().into());
        let mut out = String::new();
        table.render("[issuer.clients]", &mut out);
        out
    }
}

/// A keyshift config file under construction. See the [module](self) doc.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigToml {
    comments: Vec<String>,
    phase: Phase,
    top: Section,
    issuer: Option<Section>,
    clients: Vec<Client>,
    verifier: Option<Section>,
    gateway: String,
}

impl ConfigToml {
    /// A config of `phase` with no section yet.
    pub fn new(phase: Phase) -> ConfigToml {
        ConfigToml {
            comments: Vec::new(),
            phase,
            top: Section::default(),
            issuer: None,
            clients: Vec::new(),
            verifier: None,
            gateway: String::new(),
        }
    }

    /// Appends TOML text after every other section: the `[gateway]` table
    /// and its `[[gateway.routes]]`, written as the operator would.
    pub fn gateway_lines(mut self, text: &str) -> ConfigToml {
        self.gateway.push_str(text);
        if !self.gateway.ends_with('\n') {
            self.gateway.push('\n');
        }
        self
    }

    /// The same config in another phase.
    pub fn phase(mut self, phase: Phase) -> ConfigToml {
        self.phase = phase;
        self
    }

    /// A comment at the top of the file, one `#` line per line of `text`.
    pub fn comment(mut self, text: &str) -> ConfigToml {
        self.comments.extend(text.lines().map(str::to_owned));
        self
    }

    /// Sets a top-level `key` (after `phase`, before the sections).
    pub fn top_level(mut self, key: &str, value: impl Into<toml::Value>) -> ConfigToml {
        self.top.set(key, value.into());
        self
    }

    /// Sets `key` of `[issuer]` (creating the section).
    pub fn issuer(mut self, key: &str, value: impl Into<toml::Value>) -> ConfigToml {
        section(&mut self.issuer).set(key, value.into());
        self
    }

    /// A comment in `[issuer]`, before the keys set after it.
    pub fn issuer_comment(mut self, text: &str) -> ConfigToml {
        section(&mut self.issuer).comment(text);
        self
    }

    /// Sets every `key = value` of `lines` (TOML text) in `[issuer]`, as
    /// [`ConfigToml::verifier_lines`] does in `[verifier]`; a table value
    /// (`legacy = { … }`) is written inline.
    ///
    /// # Panics
    ///
    /// If `lines` is not TOML keys and values (a typo in the test).
    pub fn issuer_lines(self, lines: &str) -> ConfigToml {
        toml_lines(lines)
            .into_iter()
            .fold(self, |cfg, (key, value)| cfg.issuer(&key, value))
    }

    /// Adds an `[[issuer.clients]]` entry.
    pub fn client(mut self, client: Client) -> ConfigToml {
        self.clients.push(client);
        self
    }

    /// Sets `key` of `[verifier]` (creating the section).
    pub fn verifier(mut self, key: &str, value: impl Into<toml::Value>) -> ConfigToml {
        section(&mut self.verifier).set(key, value.into());
        self
    }

    /// A comment in `[verifier]`, before the keys set after it.
    pub fn verifier_comment(mut self, text: &str) -> ConfigToml {
        section(&mut self.verifier).comment(text);
        self
    }

    /// Sets every `key = value` of `lines` (TOML text) in `[verifier]`: a
    /// test's one-off settings, written as the operator would.
    ///
    /// # Panics
    ///
    /// If `lines` is not TOML keys and values (a typo in the test).
    pub fn verifier_lines(self, lines: &str) -> ConfigToml {
        toml_lines(lines)
            .into_iter()
            .fold(self, |cfg, (key, value)| cfg.verifier(&key, value))
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for comment in &self.comments {
            out.push_str(&format!("# {comment}\n"));
        }
        out.push_str(&format!("phase = \"{}\"\n", self.phase));
        self.top.render_lines(&mut out);
        if let Some(issuer) = &self.issuer {
            issuer.render("issuer", &mut out);
        }
        for client in &self.clients {
            out.push_str(&client.to_toml());
        }
        if let Some(verifier) = &self.verifier {
            verifier.render("verifier", &mut out);
        }
        if !self.gateway.is_empty() {
            out.push('\n');
            out.push_str(&self.gateway);
        }
        out
    }

    /// Writes the file as `dir/keyshift.toml`; returns its path.
    ///
    /// # Panics
    ///
    /// If the file cannot be written (the test's folder is gone).
    pub fn write_to(&self, dir: &Path) -> PathBuf {
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, self.render())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_again_keeps_its_place_and_sections_render_in_file_order() {
        let text = ConfigToml::new(Phase::Dual)
            .comment("Written by a test.")
            .verifier("jwks_url", "http://127.0.0.1:1/jwks")
            .issuer("token_ttl", "10m")
            .issuer_comment("Why the next one.")
            .issuer("failed_auth_limit", 3)
            .issuer("token_ttl", "24h")
            .client(Client::with_hash("a\"b", "sha256:00".to_owned(), &["read"]))
            .phase(Phase::Asymmetric)
            .verifier_lines("strict_typ = true\naccept = [\"RS256\"]")
            .top_level("allow_weak_hs256_secret", true)
            .issuer_lines("legacy = { issuer = \"legacy-auth\", claims = { tenant = \"acme\" } }")
            .render();
        assert_eq!(
            text,
            "# Written by a test.\nphase = \"asymmetric\"\nallow_weak_hs256_secret = true\n\
             \n[issuer]\ntoken_ttl = \"24h\"\n# Why the next one.\nfailed_auth_limit = 3\n\
             legacy = { claims = { tenant = \"acme\" }, issuer = \"legacy-auth\" }\n\
             \n[[issuer.clients]]\nid = 'a\"b'\nsecret_hash = \"sha256:00\"\nscopes = [\"read\"]\n\
             \n[verifier]\njwks_url = \"http://127.0.0.1:1/jwks\"\naccept = [\"RS256\"]\nstrict_typ = true\n"
        );
    }

    #[test]
    fn what_it_writes_is_a_config_keyshift_loads() {
        let dir = std::env::temp_dir();
        for phase in Phase::ALL {
            let mut cfg = ConfigToml::new(phase)
                .issuer("issuer", "http://127.0.0.1")
                .issuer("audience", "https://api.test")
                .client(Client::sha256("svc-a", b"s3cret", &["read", "write"]))
                .verifier("issuer", "http://127.0.0.1")
                .verifier("audience", "https://api.test")
                .verifier("jwks_url", "http://127.0.0.1:9/jwks");
            if phase.needs_shared_secret() {
                cfg = cfg
                    .issuer("hs256_secret_file", "hs256.secret")
                    .verifier("hs256_secret_file", "hs256.secret");
            }
            let loaded = keyshift_core::Config::from_toml_str(&cfg.render(), &dir)
                .unwrap_or_else(|e| panic!("{phase}: {e}"));
            assert_eq!(loaded.phase, phase);
            let issuer = loaded.issuer.as_ref().expect("[issuer]");
            assert_eq!(issuer.clients.len(), 1);
            assert_eq!(issuer.clients[0].scopes, ["read", "write"]);
        }
    }
}
