//! `airlock controller` with `[tls]` as a process, and the CLI and runner flags that reach
//! it: `--ca-cert` / `AIRLOCK_CA_CERT`, `--client-cert` / `--client-key`. Needs no sandbox
//! (the runner is refused before it would run a job), only the `openssl` CLI.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is needed (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// `ca.pem`, `server.pem`/`server.key` (127.0.0.1) and `runner.pem`/`runner.key` in `dir`.
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("openssl.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = airlock e2e\n\
         [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign\n\
         [server]\nsubjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n\
         [client]\nextendedKeyUsage = clientAuth\n",
    )
    .unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let run = |line: String| openssl(dir, &line.split_whitespace().collect::<Vec<_>>());
    run(format!(
        "req -x509 -config openssl.cnf -extensions ca {ec} -keyout ca.key -out ca.pem -days 2"
    ));
    for (name, ext) in [("server", "server"), ("runner", "client")] {
        run(format!(
            "req -new -config openssl.cnf {ec} -keyout {name}.key -out {name}.csr"
        ));
        run(format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -set_serial 9 -days 2 \
             -extfile openssl.cnf -extensions {ext} -out {name}.pem"
        ));
        std::fs::set_permissions(
            dir.join(format!("{name}.key")),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
}

#[test]
fn cli_and_runner_reach_a_tls_controller_with_their_flags() {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let certs = root.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    make_certificates(&certs);
    let config = dir.join("controller.toml");
    let text_before = std::fs::read_to_string(&config).unwrap();
    let with_tls = text_before.replace(
        &format!("issuer = \"http://127.0.0.1:{port}\""),
        &format!("issuer = \"https://127.0.0.1:{port}\""),
    ) + "\n[tls]\ncert = \"../certs/server.pem\"\nkey = \"../certs/server.key\"\n\
          runner_client_ca = \"../certs/ca.pem\"\n";
    std::fs::write(&config, with_tls).unwrap();

    let _controller = start_controller_with(&config, port, |c| {
        c.stderr(Stdio::null());
    });
    let url = format!("https://127.0.0.1:{port}");
    let missing = "00000000-0000-4000-8000-000000000000";
    let status = |ca: Option<&Path>| {
        let mut cmd = airlock();
        cmd.args(["status", missing, "--controller", &url, "--token-file"])
            .arg(dir.join("admin.token"))
            .env_remove("AIRLOCK_CA_CERT");
        if let Some(ca) = ca {
            cmd.env("AIRLOCK_CA_CERT", ca);
        }
        run(cmd)
    };

    // Without the CA, the CLI says which flag to pass.
    let o = status(None);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("--ca-cert") && text(&o).contains("AIRLOCK_CA_CERT"),
        "{}",
        text(&o)
    );
    // With AIRLOCK_CA_CERT the call reaches the controller: the job is simply not there.
    let o = status(Some(&certs.join("ca.pem")));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("NotFound"), "{}", text(&o));

    // A runner without a client certificate is refused at registration.
    let secret = ["runner.secret", "runner.token"]
        .map(|f| dir.join(f))
        .into_iter()
        .find(|p| p.exists())
        .unwrap();
    let runner = |extra: &[&str]| {
        let mut cmd = airlock();
        cmd.args(["runner", "--controller", &url, "--ca-cert"])
            .arg(certs.join("ca.pem"))
            .arg("--registration-secret-file")
            .arg(&secret)
            .arg("--state-dir")
            .arg(root.path().join("runner"))
            .args(extra)
            .env_remove("AIRLOCK_CA_CERT");
        let out = output_with_timeout(&mut cmd, Duration::from_secs(60));
        eprintln!(
            "--- runner {extra:?}: {:?}\n{}",
            out.status.code(),
            text(&out)
        );
        out
    };
    let o = runner(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("requires a runner client certificate signed by ca.pem"),
        "{}",
        text(&o)
    );
    // ...and told to fix its certificate, not its (valid) registration secret.
    assert!(text(&o).contains("--client-cert"), "{}", text(&o));
    assert!(!text(&o).contains("registration revoked"), "{}", text(&o));

    // A client key that others can read is refused before connecting, naming the flag.
    let key = certs.join("runner.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cert = certs.join("runner.pem");
    let o = runner(&[
        "--client-cert",
        cert.to_str().unwrap(),
        "--client-key",
        key.to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("--client-key") && text(&o).contains("chmod 600"),
        "{}",
        text(&o)
    );
}
