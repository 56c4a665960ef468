//! `airlock runner`: executes jobs leased from a controller.

use std::path::PathBuf;
use std::time::Duration;

use airlock_runner::agent::Runner;
use airlock_runner::config::{RunnerConfig, Secret};
use clap::Args;

use crate::exit::{Exit, Failure, OrExit, usage};
use crate::image_trust::ImageTrustArgs;
use crate::osv_db::OsvDbArgs;

/// Flags of `runner`.
#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// Controller URL, e.g. http://127.0.0.1:7070.
    #[arg(long, env = "AIRLOCK_CONTROLLER")]
    controller: String,
    /// File holding the runner's registration secret (`runner.secret` from `airlock
    /// controller init`, or one from `airlock controller registration create`). The runner
    /// sends it only to register, and gets a runner token (at most 15 minutes, renewed in
    /// the background) for every other call. If the controller refuses the secret (the
    /// registration was revoked), the runner aborts its jobs and exits with code 3.
    #[arg(
        long,
        env = "AIRLOCK_REGISTRATION_SECRET_FILE",
        alias = "token-file",
        value_name = "FILE"
    )]
    registration_secret_file: PathBuf,
    /// CA certificate (PEM) that signed an https:// controller's certificate
    /// [default: the public web roots].
    #[arg(long, env = "AIRLOCK_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM chain) to present to a controller whose [tls] sets
    /// runner_client_ca.
    #[arg(
        long,
        env = "AIRLOCK_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// Private key (PEM, mode 0600 or stricter) of --client-cert.
    #[arg(
        long,
        env = "AIRLOCK_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
    /// Labels that jobs can select, comma-separated.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Take one job, then exit.
    #[arg(long)]
    ephemeral: bool,
    /// Run up to N jobs at once, each in its own host id range. SIGTERM drains: no new
    /// jobs, running ones finish and report, then the runner exits. A second SIGTERM (or
    /// --drain-timeout) hands the running jobs back to the controller instead.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    max_jobs: u32,
    /// How long a drain (after SIGTERM) may wait for running jobs before handing them back
    /// to the controller: their steps are stopped and each attempt is recorded as
    /// interrupted and re-queued at once for another runner, e.g. `5m`. Set it below your
    /// supervisor's kill timeout (Kubernetes terminationGracePeriodSeconds, systemd
    /// TimeoutStopSec) [default: wait for the jobs to finish].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    drain_timeout: Option<Duration>,
    /// Workspaces, image cache and sandbox state. Several runners may share one state
    /// directory: each keeps its jobs in a room of its own (`runners/<id>/`, locked while it
    /// lives) and shares the caches; a starting runner removes what dead runners left
    /// (processes, containers, cgroups, workspaces). Every directory above it must be
    /// searchable by others (the sandbox runs as an unprivileged uid).
    #[arg(long, default_value = "/var/lib/airlock/runner")]
    state_dir: PathBuf,
    /// A directory below which `oci-layout:` images may be read; repeatable. Layouts
    /// elsewhere are refused.
    #[arg(long = "allow-oci-layout")]
    allow_oci_layout: Vec<PathBuf>,
    /// Let git sources use `file://` URLs, which read this machine's disk: only for a runner
    /// that serves local mirrors (and for tests). Off by default.
    #[arg(long = "allow-file-git")]
    allow_file_git: bool,
    /// Where `[[deps]]` packages of an ecosystem are fetched from, `ECOSYSTEM=URL`;
    /// repeatable, one per ecosystem: `cargo=URL` (the crates.io download layout,
    /// URL/NAME/VERSION/download), `npm=URL` (a registry: URL/NAME/-/NAME-VERSION.tgz),
    /// `pypi=URL` (a PEP 503/691 simple index: URL/PROJECT/). There is no default: a job
    /// with a lockfile of an ecosystem without a mirror fails and names this flag. Only the
    /// lockfile's hashes are trusted; what the mirror serves is verified against them.
    #[arg(long = "mirror", value_name = "ECOSYSTEM=URL")]
    mirror: Vec<String>,
    /// Docker-style config.json with registry logins (auths."HOST[:PORT]".auth)
    /// [default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json, if present].
    #[arg(long)]
    registry_auth_file: Option<PathBuf>,
    /// Size cap of the content-addressed blob cache (registry blobs, inputs, source
    /// archives) in GiB; least recently used blobs no job holds are evicted.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    cache_max_gib: u64,
    /// Size cap of the unpacked image root filesystems in GiB; least recently used trees no
    /// running job holds are evicted.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rootfs_cache_max_gib: u64,
    /// As root: host uid/gid that container id 0 of the first job slot maps to (container
    /// uid 1000 is this + 1000); slot N starts at this + N*65536. The ranges must not overlap
    /// /etc/subuid or /etc/subgid. As another user, the slots come from its /etc/subuid range.
    #[arg(long, default_value_t = airlock_runner::config::DEFAULT_ID_BASE)]
    id_base: u32,
    /// How many jobs may run at once, each with its own host id range (root only).
    #[arg(long, default_value_t = 16)]
    id_slots: u32,
    /// Lock directory of the id ranges; runners sharing it never share a range
    /// [default: /run/airlock/id-slots as root, STATE_DIR/id-slots otherwise].
    #[arg(long)]
    id_lock_dir: Option<PathBuf>,
    /// Read the sandbox profiles (*.toml and their seccomp JSON) from this folder instead of
    /// the copies of sandbox-profiles/ built into the binary.
    #[arg(long)]
    profiles_dir: Option<PathBuf>,
    #[command(flatten)]
    image_trust: ImageTrustArgs,
    #[command(flatten)]
    osv: OsvDbArgs,
}

/// Runs `runner`.
pub async fn run(args: RunnerArgs) -> Result<Exit, Failure> {
    let secret = std::fs::read_to_string(&args.registration_secret_file).map_err(|e| {
        usage(format!(
            "--registration-secret-file {}: {e}",
            args.registration_secret_file.display()
        ))
    })?;
    if secret.trim().is_empty() {
        return Err(usage(format!(
            "--registration-secret-file {} is empty; give the file `airlock controller init` wrote (runner.secret)",
            args.registration_secret_file.display()
        )));
    }
    let image_trust = args.image_trust.load()?;
    let osv = args.osv.load()?;
    let exe = std::env::current_exe().infra()?;
    let mut cfg = RunnerConfig::new(args.controller, Secret::new(secret), args.state_dir, exe);
    cfg.tls = airlock_proto::tls::ClientTlsOptions {
        ca_cert: args.ca_cert,
        identity: args
            .client_cert
            .zip(args.client_key)
            .map(|(cert, key)| airlock_proto::tls::ClientIdentity { cert, key }),
    };
    cfg.labels = args.labels;
    cfg.ephemeral = args.ephemeral;
    cfg.max_jobs = args.max_jobs;
    cfg.allowed_layout_roots = args.allow_oci_layout;
    cfg.allow_file_git = args.allow_file_git;
    cfg.mirrors =
        airlock_runner::fetch::deps::Mirrors::parse(args.mirror.iter().map(String::as_str))
            .map_err(usage)?;
    cfg.registry_auth_file = args.registry_auth_file;
    cfg.cache_max_bytes = args.cache_max_gib.saturating_mul(1 << 30);
    cfg.rootfs_cache_max_bytes = args.rootfs_cache_max_gib.saturating_mul(1 << 30);
    cfg.id_base = args.id_base;
    cfg.id_slots = args.id_slots;
    cfg.id_lock_dir = args.id_lock_dir;
    cfg.profiles_dir = args.profiles_dir;
    cfg.image_trust = image_trust;
    cfg.osv = osv;
    let runner = Runner::connect(cfg, Duration::from_secs(60))
        .await
        .infra()?;
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let (hand_back_tx, hand_back_rx) = tokio::sync::watch::channel(false);
    let drain_timeout = args.drain_timeout;
    tokio::spawn(async move {
        stop_signals(drain_tx, hand_back_tx, drain_timeout).await;
    });
    runner.run_until(drain_rx, hand_back_rx).await.infra()?;
    Ok(Exit::Ok)
}

/// The first SIGTERM (or Ctrl-C) drains; the second one, or `drain_timeout` after the first,
/// hands the running jobs back.
async fn stop_signals(
    drain: tokio::sync::watch::Sender<bool>,
    hand_back: tokio::sync::watch::Sender<bool>,
    drain_timeout: Option<Duration>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        let _ = drain.send(true);
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: no new jobs; running jobs finish (signal again to hand them back)");
    let _ = drain.send(true);
    let deadline = async {
        match drain_timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::warn!("second stop signal: handing the running jobs back"),
        _ = int.recv() => tracing::warn!("second stop signal: handing the running jobs back"),
        () = deadline => tracing::warn!("drain deadline passed: handing the running jobs back"),
    }
    let _ = hand_back.send(true);
    // Keep the senders: the jobs watch them until they have handed back.
    std::future::pending::<()>().await;
}
