//! `keyshift config check F`.

use std::path::Path;

use anyhow::Context;
use keyshift_issuer::keystore::KeyStore;

use super::load_config;

/// Validates a config file (and the files it names) and prints the effective settings.
pub fn check(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    if let Some(issuer) = &config.issuer {
        issuer
            .load_secret(config.phase)
            .context(path.display().to_string())?;
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
        verifier.load_secret().context(path.display().to_string())?;
        if config.phase == keyshift_core::Phase::Asymmetric && verifier.hs256_secret_file.is_some()
        {
            println!("# warning: verifier.hs256_secret_file is set in phase asymmetric; remove the shared secret");
        }
    }
    print!("{}", crate::effective::Effective(&config));
    println!("# {}: OK", path.display());
    Ok(())
}
