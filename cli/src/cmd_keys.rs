//! `airlock keys generate` and `airlock keys list`.

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
        /// Directory to write `<name>.key` (mode 0600) and `<name>.pub` into; created if missing.
        #[arg(long)]
        out: PathBuf,
        /// Key file base name.
        #[arg(long, default_value = "provenance")]
        name: String,
        /// Signature algorithm.
        #[arg(long, value_enum, default_value_t = Algorithm::EcdsaP256)]
        algorithm: Algorithm,
    },
    /// List the verification keys a controller publishes: each trust profile's signing key
    /// (with the builder id it signs for) and the retired keys of `verification_keys`.
    /// Loads the private keys as the controller does, so it also checks them.
    List {
        /// The controller's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Print the public keys as SPKI PEM (one block per key) instead of a table.
        #[arg(long)]
        pem: bool,
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
        KeysCommand::List { config, pem } => {
            let config = airlock_controller::ControllerConfig::load(&config).usage()?;
            let signer =
                airlock_controller::provenance::signer::Signer::load(&config.signing).usage()?;
            for published in signer.published_keys() {
                let key = &published.key;
                if pem {
                    print!("{}", key.to_spki_pem().infra()?);
                    continue;
                }
                let role = match (&published.profile, published.active) {
                    (Some(profile), _) => format!(
                        "signs {}",
                        airlock_controller::provenance::statement::builder_id(
                            config.issuer(),
                            config.mode,
                            profile
                        )
                    ),
                    (None, true) => "signs every profile without its own key".to_owned(),
                    (None, false) => "retired (verification only)".to_owned(),
                };
                println!("{}  {:<10}  {role}", key.keyid(), key.algorithm().name());
            }
            Ok(Exit::Ok)
        }
    }
}
