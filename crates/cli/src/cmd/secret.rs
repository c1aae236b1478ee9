//! `keyshift secret hash`.

use std::io::Read;

use anyhow::{bail, Context};
use argon2::password_hash::{PasswordHasher, SaltString};
use keyshift_core::secret::SecretHash;

/// Flags of `keyshift secret hash`.
#[derive(Debug, clap::Args)]
pub struct HashArgs {
    /// Print an argon2id PHC string instead of `sha256:<hex>` (for
    /// human-chosen secrets; generated secrets need no slow hash).
    #[arg(long)]
    argon2: bool,
}

/// Reads the secret on stdin (one trailing newline removed) and prints its hash.
pub fn hash(args: HashArgs) -> anyhow::Result<()> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("cannot read the secret on stdin")?;
    if input.last() == Some(&b'\n') {
        input.pop();
        if input.last() == Some(&b'\r') {
            input.pop();
        }
    }
    if input.is_empty() {
        bail!("empty secret on stdin");
    }
    let hash = if args.argon2 {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let phc = argon2::Argon2::default()
            .hash_password(&input, &salt)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        SecretHash::parse(&phc.to_string()).context("argon2 produced an unusable hash")?
    } else {
        SecretHash::sha256_of(&input)
    };
    println!("{}", hash.to_config_string());
    Ok(())
}
