//! `keyshift config check F [--accept LIST]`.

use std::path::Path;

use anyhow::Context;
use keyshift_core::config::ignored_warning;
use keyshift_core::secret::HmacSecret;
use keyshift_core::{AcceptSet, Alg, Phase};
use keyshift_issuer::keystore::{KeyStore, KeyStoreError};

use super::load_config;

/// What `config check` says about a weak secret (the services log it too).
const WEAK: &str = "SECTION: an HS256 secret is shorter than 32 bytes (allow_weak_hs256_secret); replace it before phase transition ends";

/// Validates a config file (and the files it names) and prints the
/// effective settings. `accept` is the verifier's `--accept` flag: it must
/// fit the file's phase, and any later phase it contradicts is reported
/// (a reload into that phase drops the flag).
pub fn check(path: &Path, accept: Option<&[Alg]>) -> anyhow::Result<()> {
    let mut config = load_config(path)?;
    let context = || path.display().to_string();
    let mut warnings = Vec::new();
    if let Some(issuer) = &config.issuer {
        let secret = issuer.load_secret(config.phase).with_context(context)?;
        if secret.as_ref().is_some_and(HmacSecret::is_weak) {
            warnings.push(WEAK.replace("SECTION", "issuer"));
        }
        warnings.extend(issuer.ignored.iter().map(|s| ignored_warning(s)));
        keyshift_issuer::auth::Authenticator::check_clients(&issuer.clients)
            .with_context(context)?;
        if config.phase == Phase::Asymmetric && issuer.hs256_secret_file.is_some() {
            println!("# warning: issuer.hs256_secret_file is set in phase asymmetric; remove the shared secret");
        }
        let store = KeyStore::new(&issuer.key_dir);
        match store.require_keys() {
            Ok(()) => {
                let keys = store.load().context("issuer.key_dir")?;
                println!(
                    "# key_dir: {} published key(s), active kid {}",
                    keys.published().len(),
                    keys.active()
                        .map(|k| k.kid.clone())
                        .unwrap_or_else(|| "(none)".into())
                );
            }
            Err(source @ (KeyStoreError::NoDirectory { .. } | KeyStoreError::Empty { .. }))
                if config.phase.signs() == Alg::Rs256 =>
            {
                return Err(keyshift_issuer::StartError::KeyDirRefused {
                    phase: config.phase,
                    source,
                })
                .with_context(context);
            }
            Err(KeyStoreError::NoDirectory { dir }) => println!(
                "# key_dir: {} does not exist yet; the issuer creates it (its last folder only) and a first key on its first start in phase {}",
                dir.display(),
                config.phase
            ),
            Err(e) => return Err(e).context("issuer.key_dir"),
        }
    }
    let phase = config.phase;
    if let Some(verifier) = config.verifier.as_mut() {
        if let Some(list) = accept {
            let flag: AcceptSet = list.iter().copied().collect();
            verifier
                .override_accept(phase, flag, "--accept")
                .with_context(context)?;
            for later in Phase::ALL.into_iter().filter(|p| *p > phase) {
                let refused = later.refused_in(flag);
                if !refused.is_empty() {
                    println!(
                        "# warning: --accept {flag} contradicts phase {later} ({refused} is refused there): a reload into {later} drops the flag and applies the config's accept; restart the verifier without --accept before then"
                    );
                }
            }
        } else if verifier.accept_overridden {
            for later in Phase::ALL.into_iter().filter(|p| *p > phase) {
                let refused = later.refused_in(verifier.accept);
                if !refused.is_empty() {
                    println!(
                        "# note: verifier.accept = {} is refused in phase {later}: remove {refused} in the same edit that sets phase = \"{later}\"",
                        verifier.accept
                    );
                }
            }
        }
        let secrets = verifier.load_secrets().with_context(context)?;
        if secrets.any_weak() {
            warnings.push(WEAK.replace("SECTION", "verifier"));
        }
        warnings.extend(verifier.ignored.iter().map(|s| ignored_warning(s)));
        if phase == Phase::Asymmetric && verifier.hs256_secret_file.is_some() {
            println!("# warning: verifier.hs256_secret_file is set in phase asymmetric; remove the shared secret");
        }
        match &verifier.issuer_migration_url {
            Some(url) => println!("# issuer_migration_url: {url} (readiness for phase asymmetric asks it)"),
            None => println!("# issuer_migration_url: none; readiness for phase asymmetric rests on this verifier's observations only"),
        }
    } else if accept.is_some() {
        anyhow::bail!("--accept: {} has no [verifier] section", path.display());
    }
    for warning in warnings {
        println!("# warning: {warning}");
    }
    print!("{}", crate::effective::Effective(&config));
    println!("# {}: OK", path.display());
    Ok(())
}
