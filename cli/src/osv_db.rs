//! `--osv-db`, shared by `airlock runner` and `airlock run`: the offline OSV database that
//! sandbox profiles with `[sbom] deny_vulnerable` check builds against (docs/sbom.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use airlock_runner::vulns::OsvDatabase;
use clap::Args;

use crate::exit::{Failure, usage};

/// The vulnerability database flag.
#[derive(Debug, Args)]
pub struct OsvDbArgs {
    /// An offline OSV database: a directory tree of OSV JSON records (e.g. osv.dev's
    /// per-ecosystem `all.zip` exports, unzipped). Every job's packages are looked up in it
    /// and the findings listed in its CycloneDX SBOM; a profile with `[sbom] deny_vulnerable`
    /// fails builds at or above that severity. Loaded once at start; a record that does not
    /// parse is an error naming its file. Without it, jobs of such profiles fail.
    #[arg(long = "osv-db", value_name = "DIR")]
    osv_db: Option<PathBuf>,
}

impl OsvDbArgs {
    /// The database, loaded (with a line on stderr saying how many records and how long).
    pub fn load(&self) -> Result<Option<Arc<OsvDatabase>>, Failure> {
        let Some(dir) = &self.osv_db else {
            return Ok(None);
        };
        eprintln!("loading the OSV database {} ...", dir.display());
        let started = Instant::now();
        let db = OsvDatabase::load(dir).map_err(|e| usage(format!("--osv-db: {e}")))?;
        eprintln!(
            "OSV database: {} records in {:.1}s",
            db.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Some(Arc::new(db)))
    }
}
