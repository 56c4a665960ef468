//! `airlock controller init` writes one key per trust profile; `airlock keys list` publishes
//! them with their builder ids plus retired keys; `airlock keys generate` makes Ed25519 and
//! P-256 keys; a group/world-readable signing key is refused.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;

#[test]
fn init_writes_a_key_per_profile_and_keys_list_publishes_them_with_retired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("ctl");
    let mut c = airlock();
    c.args(["controller", "init", "--listen", "127.0.0.1:7999", "--dir"])
        .arg(&ctl);
    assert!(run(c).status.success());

    let old = dir.path().join("old");
    let mut c = airlock();
    c.args([
        "keys",
        "generate",
        "--name",
        "release-2025",
        "--algorithm",
        "ed25519",
        "--out",
    ])
    .arg(&old);
    let o = run(c);
    assert!(o.status.success());
    assert!(text(&o).contains("algorithm:   ed25519"));
    let retired = airlock_attest::load_verifying_key(&old.join("release-2025.pub")).unwrap();
    let mode = std::fs::metadata(old.join("release-2025.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let config = ctl.join("controller.toml");
    let text_before = std::fs::read_to_string(&config).unwrap();
    let with_retired = text_before.replace(
        "# verification_keys = [\"keys/release-2025.pub\"]",
        &format!(
            "verification_keys = [\"{}\"]",
            old.join("release-2025.pub").display()
        ),
    );
    assert_ne!(
        with_retired, text_before,
        "init documents verification_keys"
    );
    std::fs::write(&config, with_retired).unwrap();

    let list = || {
        let mut c = airlock();
        c.args(["keys", "list", "--config"]).arg(&config);
        run(c)
    };
    let o = list();
    assert!(o.status.success());
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut keyids = std::collections::BTreeSet::new();
    for profile in ["untrusted-pr", "trusted", "release"] {
        let public =
            airlock_attest::load_verifying_key(&ctl.join(format!("keys/{profile}.pub"))).unwrap();
        let line = format!(
            "{}  ecdsa-p256  signs http://127.0.0.1:7999/builders/{profile}",
            public.keyid()
        );
        assert!(t.contains(&line), "missing {line:?} in {t}");
        keyids.insert(public.keyid().to_owned());
    }
    assert_eq!(keyids.len(), 3, "one distinct key per profile");
    assert!(
        t.contains(&format!(
            "{}  ed25519     retired (verification only)",
            retired.keyid()
        )),
        "{t}"
    );

    std::fs::set_permissions(
        ctl.join("keys/release.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = list();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
}
