//! `airlock keys generate`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::exit::{Exit, Failure, OrExit, usage};

/// Key management.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a new signing key (PKCS#8 PEM, mode 0600) and its public key (SPKI PEM).
    Generate {
        /// Directory to write `provenance.key` and `provenance.pub` into.
        #[arg(long)]
        out: PathBuf,
        /// Key file base name.
        #[arg(long, default_value = "provenance")]
        name: String,
        /// Signature algorithm.
        #[arg(long, value_enum, default_value_t = Algorithm::EcdsaP256)]
        algorithm: Algorithm,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Algorithm {
    /// ECDSA over P-256 with SHA-256, DER signatures.
    EcdsaP256,
    /// Ed25519 (pure, over the DSSE PAE bytes).
    Ed25519,
}

impl From<Algorithm> for airlock_attest::KeyAlgorithm {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::EcdsaP256 => Self::EcdsaP256Sha256,
            Algorithm::Ed25519 => Self::Ed25519,
        }
    }
}

/// Runs `keys`.
pub fn run(args: KeysArgs) -> Result<Exit, Failure> {
    match args.command {
        KeysCommand::Generate {
            out,
            name,
            algorithm,
        } => {
            std::fs::create_dir_all(&out)
                .map_err(|e| usage(format!("--out {}: {e}", out.display())))?;
            let (private, public) =
                airlock_attest::write_keypair_with(&out, &name, algorithm.into()).usage()?;
            let key = airlock_attest::load_verifying_key(&public).infra()?;
            println!(
                "private key: {} (mode 0600; keep it on the controller only)",
                private.display()
            );
            println!("public key:  {}", public.display());
            println!("algorithm:   {}", key.algorithm());
            println!("keyid:       {}", key.keyid());
            Ok(Exit::Ok)
        }
    }
}
