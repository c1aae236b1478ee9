//! `keyshift config check F`.

use std::path::Path;

use anyhow::Context;
use keyshift_core::config::ignored_warning;
use keyshift_core::secret::HmacSecret;
use keyshift_issuer::keystore::KeyStore;

use super::load_config;

/// What `config check` says about a weak secret (the services log it too).
const WEAK: &str = "SECTION: an HS256 secret is shorter than 32 bytes (allow_weak_hs256_secret); replace it before phase transition ends";

/// Validates a config file (and the files it names) and prints the effective settings.
pub fn check(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let mut warnings = Vec::new();
    if let Some(issuer) = &config.issuer {
        let secret = issuer
            .load_secret(config.phase)
            .context(path.display().to_string())?;
        if secret.as_ref().is_some_and(HmacSecret::is_weak) {
            warnings.push(WEAK.replace("SECTION", "issuer"));
        }
        warnings.extend(issuer.ignored.iter().map(|s| ignored_warning(s)));
        keyshift_issuer::auth::Authenticator::check_clients(&issuer.clients)
            .context(path.display().to_string())?;
        if config.phase == keyshift_core::Phase::Asymmetric && issuer.hs256_secret_file.is_some() {
            println!("# warning: issuer.hs256_secret_file is set in phase asymmetric; remove the shared secret");
        }
        if issuer
            .key_dir
            .join(keyshift_issuer::keystore::MANIFEST)
            .exists()
        {
            let keys = KeyStore::new(&issuer.key_dir)
                .load()
                .context("issuer.key_dir")?;
            println!(
                "# key_dir: {} published key(s), active kid {}",
                keys.published().len(),
                keys.active()
                    .map(|k| k.kid.clone())
                    .unwrap_or_else(|| "(none)".into())
            );
        } else {
            println!("# key_dir: not created yet (the issuer creates it on first start)");
        }
    }
    if let Some(verifier) = &config.verifier {
        let secrets = verifier
            .load_secrets()
            .context(path.display().to_string())?;
        if secrets.any_weak() {
            warnings.push(WEAK.replace("SECTION", "verifier"));
        }
        warnings.extend(verifier.ignored.iter().map(|s| ignored_warning(s)));
        if config.phase == keyshift_core::Phase::Asymmetric && verifier.hs256_secret_file.is_some()
        {
            println!("# warning: verifier.hs256_secret_file is set in phase asymmetric; remove the shared secret");
        }
    }
    for warning in warnings {
        println!("# warning: {warning}");
    }
    print!("{}", crate::effective::Effective(&config));
    println!("# {}: OK", path.display());
    Ok(())
}
