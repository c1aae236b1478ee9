//! The effective settings of a config, printed as TOML by `keyshift config
//! check`: every key with the value in force, defaults applied and paths
//! resolved, so an operator sees what a service will run with.

use std::fmt;

use keyshift_core::config::{
    IssuerLegacy, Serving, TypPolicy, VerifierLegacy, DEFAULT_LEGACY_SCOPE_CLAIM,
    DEFAULT_LEGACY_SUBJECT_CLAIM,
};
use keyshift_core::duration::HumanDuration;
use keyshift_core::Config;

/// A string as a TOML basic string (config values hold no control characters).
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// A list of strings as a TOML array.
fn list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| quoted(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// Says which settings the phase ignores.
fn ignored(f: &mut fmt::Formatter<'_>, settings: &[&str]) -> fmt::Result {
    for setting in settings {
        writeln!(f, "# {setting}: ignored in phase asymmetric")?;
    }
    Ok(())
}

fn issuer_legacy(f: &mut fmt::Formatter<'_>, l: &IssuerLegacy) -> fmt::Result {
    writeln!(
        f,
        "\n[issuer.legacy]   # the shape of HS256 tokens minted in phases legacy and dual"
    )?;
    writeln!(f, "issuer = {}", quoted(&l.issuer))?;
    writeln!(f, "typ = {}", quoted(l.typ.as_header().unwrap_or("")))?;
    writeln!(f, "kid = {}", l.kid)?;
    writeln!(
        f,
        "audience = {}",
        quoted(l.audience.as_deref().unwrap_or(""))
    )?;
    let claims = serde_json::Value::Object(l.claims.clone());
    writeln!(f, "# claims: {claims}")
}

fn verifier_legacy(f: &mut fmt::Formatter<'_>, l: &VerifierLegacy) -> fmt::Result {
    writeln!(
        f,
        "\n[verifier.legacy]   # loosens checks of HS256 tokens only; RS256 never"
    )?;
    let loosened = |yes: bool, what: &str| {
        if yes {
            format!("   # loosened: {what}")
        } else {
            String::new()
        }
    };
    writeln!(
        f,
        "issuers = {}{}",
        list(&l.issuers),
        loosened(
            !l.issuers.is_empty(),
            "these iss values pass on HS256 tokens (\"\": none)"
        )
    )?;
    writeln!(
        f,
        "audience_required = {}{}",
        l.audience_required,
        loosened(!l.audience_required, "an HS256 token without aud passes")
    )?;
    writeln!(
        f,
        "subject_claim = {}   # loosened: {}, a number read as text",
        quoted(&l.subject_claim),
        if l.subject_claim == DEFAULT_LEGACY_SUBJECT_CLAIM {
            "sub".to_owned()
        } else {
            format!("the subject from {}, else sub", l.subject_claim)
        }
    )?;
    writeln!(
        f,
        "scope_claim = {}   # loosened: {}, or an array of strings",
        quoted(&l.scope_claim),
        if l.scope_claim == DEFAULT_LEGACY_SCOPE_CLAIM {
            "scope".to_owned()
        } else {
            format!("the scopes from {}, else scope", l.scope_claim)
        }
    )?;
    let files: Vec<String> = l
        .secret_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    writeln!(
        f,
        "secret_files = {}{}",
        list(&files),
        loosened(
            !files.is_empty(),
            "HS256 tokens signed with these secrets pass too"
        )
    )
}

/// Displays a config's effective settings.
#[derive(Debug)]
pub struct Effective<'a>(pub &'a Config);

impl fmt::Display for Effective<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "phase = \"{}\"   # signs {}, accepts {} by default",
            self.0.phase,
            self.0.phase.signs(),
            self.0.phase.default_accept()
        )?;
        if let Some(i) = &self.0.issuer {
            writeln!(f, "\n[issuer]")?;
            writeln!(f, "listen = \"{}\"", i.listen)?;
            listeners(f, i.admin_listen, i.max_connections)?;
            serving(f, &i.serving)?;
            writeln!(f, "issuer = \"{}\"", i.issuer)?;
            writeln!(f, "audience = \"{}\"", i.audience)?;
            writeln!(f, "token_ttl = \"{}\"", HumanDuration(i.token_ttl))?;
            writeln!(f, "key_dir = \"{}\"", i.key_dir.display())?;
            match &i.hs256_secret_file {
                Some(p) => writeln!(f, "hs256_secret_file = \"{}\"", p.display())?,
                None => writeln!(f, "# hs256_secret_file: not set")?,
            }
            writeln!(f, "key_bits = {}", i.key_bits)?;
            match i.rotate_every {
                Some(d) => writeln!(f, "rotate_every = \"{}\"", HumanDuration(d))?,
                None => writeln!(f, "rotate_every = \"off\"")?,
            }
            writeln!(f, "jwks_max_age = \"{}\"", HumanDuration(i.jwks_max_age))?;
            writeln!(
                f,
                "key_prepublish = \"{}\"",
                HumanDuration(i.key_prepublish)
            )?;
            writeln!(f, "failed_auth_limit = {}", i.failed_auth_limit)?;
            writeln!(
                f,
                "failed_auth_window = \"{}\"",
                HumanDuration(i.failed_auth_window)
            )?;
            writeln!(f, "allow_weak_hs256_secret = {}", i.allow_weak_hs256_secret)?;
            let proxies: Vec<String> = i
                .trusted_proxies
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect();
            writeln!(f, "trusted_proxies = [{}]", proxies.join(", "))?;
            writeln!(f, "proxy_protocol = {}", i.proxy_protocol)?;
            for c in &i.clients {
                writeln!(f, "# client `{}`: scopes [{}]", c.id, c.scopes.join(" "))?;
            }
            ignored(f, &i.ignored)?;
            if let Some(l) = &i.legacy {
                issuer_legacy(f, l)?;
            }
        }
        if let Some(v) = &self.0.verifier {
            writeln!(f, "\n[verifier]")?;
            writeln!(f, "listen = \"{}\"", v.listen)?;
            listeners(f, v.admin_listen, v.max_connections)?;
            serving(f, &v.serving)?;
            match v.grpc_listen {
                Some(a) => writeln!(f, "grpc_listen = \"{a}\"   # gRPC ext_authz")?,
                None => writeln!(f, "# grpc_listen: not set (gRPC ext_authz off)")?,
            }
            writeln!(f, "issuer = \"{}\"", v.issuer)?;
            writeln!(f, "audience = \"{}\"", v.audience)?;
            match &v.jwks_url {
                Some(u) => writeln!(f, "jwks_url = \"{u}\"")?,
                None => writeln!(f, "# jwks_url: not set")?,
            }
            match &v.hs256_secret_file {
                Some(p) => writeln!(f, "hs256_secret_file = \"{}\"", p.display())?,
                None => writeln!(f, "# hs256_secret_file: not set")?,
            }
            let accepted: Vec<String> = v.accept.iter().map(|a| format!("\"{a}\"")).collect();
            writeln!(
                f,
                "accept = [{}]   # {}",
                accepted.join(", "),
                if v.accept_overridden {
                    "override"
                } else {
                    "phase default"
                }
            )?;
            writeln!(
                f,
                "allow_insecure_jwks_http = {}",
                v.allow_insecure_jwks_http
            )?;
            writeln!(f, "leeway = \"{}\"", HumanDuration(v.leeway))?;
            writeln!(
                f,
                "max_token_lifetime = \"{}\"",
                HumanDuration(v.max_token_lifetime)
            )?;
            writeln!(f, "max_token_bytes = {}", v.max_token_bytes)?;
            writeln!(f, "strict_typ = {}", v.typ == TypPolicy::Strict)?;
            writeln!(f, "jwks_min_ttl = \"{}\"", HumanDuration(v.jwks_min_ttl))?;
            writeln!(f, "jwks_max_ttl = \"{}\"", HumanDuration(v.jwks_max_ttl))?;
            writeln!(
                f,
                "unknown_kid_cooldown = \"{}\"",
                HumanDuration(v.unknown_kid_cooldown)
            )?;
            writeln!(
                f,
                "negative_cache_ttl = \"{}\"",
                HumanDuration(v.negative_cache_ttl)
            )?;
            writeln!(
                f,
                "jwks_max_staleness = \"{}\"",
                HumanDuration(v.jwks_max_staleness)
            )?;
            writeln!(
                f,
                "jwks_connect_timeout = \"{}\"",
                HumanDuration(v.jwks_connect_timeout)
            )?;
            writeln!(f, "jwks_timeout = \"{}\"", HumanDuration(v.jwks_timeout))?;
            match &v.jwks_ca_file {
                Some(p) => writeln!(
                    f,
                    "jwks_ca_file = \"{}\"   # beside the system roots",
                    p.display()
                )?,
                None => writeln!(f, "# jwks_ca_file: not set (system roots)")?,
            }
            match &v.jwks_client_cert {
                Some(t) => {
                    writeln!(f, "jwks_client_cert_file = \"{}\"", t.cert_file.display())?;
                    writeln!(f, "jwks_client_key_file = \"{}\"", t.key_file.display())?;
                }
                None => writeln!(f, "# jwks_client_cert_file, jwks_client_key_file: not set (no client certificate)")?,
            }
            writeln!(
                f,
                "jwks_request_wait = \"{}\"",
                HumanDuration(v.jwks_request_wait)
            )?;
            writeln!(f, "token_cache_size = {}", v.token_cache_size)?;
            match &v.issuer_migration_url {
                Some(u) => writeln!(f, "issuer_migration_url = \"{u}\"")?,
                None => writeln!(f, "issuer_migration_url = \"off\"")?,
            }
            writeln!(f, "force_phase = {}", v.force_phase)?;
            writeln!(f, "allow_weak_hs256_secret = {}", v.allow_weak_hs256_secret)?;
            ignored(f, &v.ignored)?;
            if let Some(l) = &v.legacy {
                verifier_legacy(f, l)?;
            }
        }
        if let Some(g) = &self.0.gateway {
            writeln!(f, "\n[gateway]")?;
            writeln!(f, "listen = \"{}\"", g.listen)?;
            listeners(f, g.admin_listen, g.max_connections)?;
            serving(f, &g.serving)?;
            writeln!(f, "key_dir = \"{}\"", g.key_dir.display())?;
            match &g.issuer {
                Some(i) => writeln!(f, "issuer = \"{i}\"")?,
                None => writeln!(f, "# issuer: not set (no route signs)")?,
            }
            writeln!(
                f,
                "connect_timeout = \"{}\"",
                HumanDuration(g.connect_timeout)
            )?;
            writeln!(
                f,
                "upstream_timeout = \"{}\"",
                HumanDuration(g.upstream_timeout)
            )?;
            for r in &g.routes {
                writeln!(f, "\n[[gateway.routes]]")?;
                writeln!(f, "name = \"{}\"", r.name)?;
                match &r.host {
                    Some(h) => writeln!(f, "host = \"{h}\"")?,
                    None => writeln!(f, "# host: any")?,
                }
                writeln!(f, "path_prefix = \"{}\"", r.path_prefix)?;
                writeln!(f, "strip_prefix = {}", r.strip_prefix)?;
                writeln!(f, "upstream = \"{}\"", r.upstream)?;
                writeln!(f, "verify = {}", r.verify)?;
                let scopes: Vec<String> = r.scopes.iter().map(|s| format!("\"{s}\"")).collect();
                writeln!(f, "scopes = [{}]", scopes.join(", "))?;
                writeln!(f, "sign = {}", r.sign)?;
                match &r.audience {
                    Some(a) => writeln!(f, "audience = \"{a}\"")?,
                    None => writeln!(f, "# audience: not set")?,
                }
                writeln!(f, "sign_ttl = \"{}\"", HumanDuration(r.sign_ttl))?;
                writeln!(f, "sign_header = \"{}\"", r.sign_header)?;
                writeln!(f, "if_present = \"{}\"", r.if_present.as_str())?;
                match &r.service_identity {
                    Some(s) => writeln!(f, "service_identity = \"{s}\"")?,
                    None => writeln!(f, "# service_identity: not set")?,
                }
            }
        }
        Ok(())
    }
}

fn listeners(
    f: &mut fmt::Formatter<'_>,
    admin_listen: Option<std::net::SocketAddr>,
    max_connections: usize,
) -> fmt::Result {
    match admin_listen {
        Some(a) => writeln!(
            f,
            "admin_listen = \"{a}\"   # /metrics and the like only here"
        )?,
        None => writeln!(f, "# admin_listen: not set (operational routes on listen)")?,
    }
    writeln!(f, "max_connections = {max_connections}")
}

fn serving(f: &mut fmt::Formatter<'_>, s: &Serving) -> fmt::Result {
    match &s.tls {
        Some(t) => {
            writeln!(f, "tls_cert_file = \"{}\"", t.cert_file.display())?;
            writeln!(f, "tls_key_file = \"{}\"", t.key_file.display())?;
        }
        None => writeln!(f, "# tls_cert_file, tls_key_file: not set (plain HTTP)")?,
    }
    writeln!(f, "watch_config = {}", s.watch_config)?;
    writeln!(f, "log_format = \"{}\"", s.log_format.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::config::RawConfig;
    use keyshift_core::Phase;
    use keyshift_testkit::{Client, ConfigToml};
    use std::path::Path;

    const BASE: &str = "/etc/keyshift";

    /// One client, both sections, every other key at its default.
    fn sample(phase: Phase) -> ConfigToml {
        ConfigToml::new(phase)
            .issuer("issuer", "http://127.0.0.1:8080")
            .issuer("audience", "https://api.example.com")
            .issuer("hs256_secret_file", "hs256.secret")
            .client(Client::sha256("svc-a", b"secret-a", &["read", "write"]))
            .verifier("issuer", "http://127.0.0.1:8080")
            .verifier("audience", "https://api.example.com")
            .verifier("jwks_url", "http://127.0.0.1:8080/.well-known/jwks.json")
            .verifier("hs256_secret_file", "hs256.secret")
            .gateway_lines(
                "[gateway]\nissuer = \"http://127.0.0.1:8080\"\n\n[[gateway.routes]]\nname = \"orders\"\nupstream = \"http://127.0.0.1:9000\"\nsign = true\naudience = \"https://orders.internal\"\n\n[[gateway.routes]]\nname = \"plain\"\npath_prefix = \"/plain\"\nupstream = \"http://127.0.0.1:9001\"\n",
            )
    }

    #[test]
    fn the_legacy_profile_and_what_it_loosens_are_printed() {
        let text = format!(
            "{}\
             [issuer.legacy]\nissuer = \"legacy-auth\"\ntyp = \"\"\nkid = false\naudience = \"\"\n\
             [issuer.legacy.claims]\ntenant = \"acme\"\n\
             [verifier.legacy]\nissuers = [\"legacy-auth\", \"\"]\naudience_required = false\n\
             subject_claim = \"user_id\"\nsecret_files = [\"hs256.previous\"]\n",
            sample(Phase::Legacy).render()
        );
        let config = Config::from_toml_str(&text, Path::new(BASE)).expect("valid");
        let out = Effective(&config).to_string();
        for line in [
            "[issuer.legacy]",
            "issuer = \"legacy-auth\"",
            "typ = \"\"",
            "kid = false",
            "audience = \"\"",
            "# claims: {\"tenant\":\"acme\"}",
            "issuers = [\"legacy-auth\", \"\"]   # loosened",
            "audience_required = false   # loosened",
            "subject_claim = \"user_id\"   # loosened: the subject from user_id, else sub",
            "secret_files = [\"/etc/keyshift/hs256.previous\"]   # loosened",
        ] {
            assert!(out.contains(line), "{line} not in:\n{out}");
        }
        let asym = Config::from_toml_str(
            &format!("{}[verifier.legacy]\n", sample(Phase::Asymmetric).render()),
            Path::new(BASE),
        )
        .expect("valid");
        let out = Effective(&asym).to_string();
        assert!(
            out.contains("# verifier.legacy: ignored in phase asymmetric"),
            "{out}"
        );
        assert!(!out.contains("[verifier.legacy]"), "{out}");
    }

    #[test]
    fn effective_settings_name_the_phase_and_the_override() {
        let toml = sample(Phase::Dual)
            .verifier("accept", vec!["RS256"])
            .render();
        let config = Config::from_toml_str(&toml, Path::new(BASE)).expect("valid");
        let text = Effective(&config).to_string();
        assert!(text.starts_with("phase = \"dual\""), "{text}");
        assert!(text.contains("accept = [\"RS256\"]   # override"), "{text}");
    }

    /// The keys serde accepts in a section, read from its "unknown field" error.
    fn accepted_keys(section_toml: &str) -> Vec<String> {
        let err = RawConfig::parse(section_toml).expect_err("unknown key");
        let text = err.to_string();
        let list = text
            .split("expected one of ")
            .nth(1)
            .or_else(|| text.split("expected ").nth(1))
            .unwrap_or_else(|| panic!("no field list in {text}"));
        list.split(',')
            .map(|s| {
                s.trim()
                    .trim_matches('`')
                    .split('`')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Rows `| `key` | default | … |` of the docs table under `heading`.
    fn doc_rows(doc: &str, heading: &str) -> Vec<(String, String)> {
        let start = doc
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("no heading {heading}"));
        doc[start + heading.len() + 2..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((key.to_owned(), cells.get(2)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn config_doc_lists_every_key_with_its_default() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/configuration.md"
        ))
        .expect("docs/configuration.md");
        let cases = [
            ("## Top level", "zzz = 1\n"),
            ("## `[issuer]`", "[issuer]\nzzz = 1\n"),
            ("### `[[issuer.clients]]`", "[[issuer.clients]]\nzzz = 1\n"),
            ("### `[issuer.legacy]`", "[issuer.legacy]\nzzz = 1\n"),
            ("## `[verifier]`", "[verifier]\nzzz = 1\n"),
            ("### `[verifier.legacy]`", "[verifier.legacy]\nzzz = 1\n"),
            ("## `[gateway]`", "[gateway]\nzzz = 1\n"),
            ("### `[[gateway.routes]]`", "[[gateway.routes]]\nzzz = 1\n"),
        ];
        // Empty legacy tables: every default of theirs is printed too.
        let toml = format!(
            "{}[issuer.legacy]\n[verifier.legacy]\n",
            sample(Phase::Dual).render()
        );
        let config = Config::from_toml_str(&toml, Path::new(BASE)).expect("valid");
        let effective = Effective(&config)
            .to_string()
            // Paths print resolved; the docs give them relative to the config file.
            .replace(&format!("\"{BASE}/"), "\"");
        for (heading, probe) in cases {
            let mut code = accepted_keys(probe);
            // The sections have headings of their own.
            code.retain(|k| {
                !(heading == "## Top level" && (k == "issuer" || k == "verifier" || k == "gateway"))
            });
            // `[issuer.legacy.claims]` is free-form: it has no keys of its own.
            let rows = doc_rows(&doc, heading);
            let mut documented: Vec<String> = rows.iter().map(|(k, _)| k.clone()).collect();
            code.sort();
            documented.sort();
            assert_eq!(documented, code, "{heading}: docs and parser disagree");
            for (key, default) in rows {
                if default.starts_with('`') {
                    let line = format!("{key} = {}", default.trim_matches('`'));
                    assert!(
                        effective.contains(&line),
                        "{heading}: documented default `{line}` is not the effective one"
                    );
                }
            }
        }
    }
}
