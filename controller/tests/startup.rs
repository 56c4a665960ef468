//! Startup refuses unsafe state.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::os::unix::fs::PermissionsExt;

use airlock_attest::write_keypair;
use airlock_controller::{ControllerConfig, ControllerError, serve};

#[tokio::test]
async fn a_group_or_world_readable_signing_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = write_keypair(dir.path(), "provenance").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = ControllerConfig::local(dir.path().join("state"), &key, "a", "r");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = serve(config, listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ControllerError::Signer(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("0644") && message.contains("chmod 600"),
        "{message}"
    );
    // Nothing was created before the key was checked.
    assert!(!dir.path().join("state").exists());
}

#[tokio::test]
async fn a_config_from_init_starts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let summary = airlock_controller::init(dir.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let config = ControllerConfig::load(&summary.config_path).unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    serve(config, listener, async {}).await.unwrap();
    assert!(summary.state_dir.join("airlock.db").exists());
    assert!(summary.state_dir.join("blobs/sha256").is_dir());
}
