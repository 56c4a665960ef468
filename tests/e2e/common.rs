//! Shared helpers: paths, scratch directories, running the binary, controller processes.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `airlock` binary under test.
pub fn airlock() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlock"));
    c.env_remove("AIRLOCK_CONTROLLER")
        .env_remove("AIRLOCK_TOKEN_FILE")
        .env_remove("AIRLOCK_REGISTRATION_SECRET_FILE");
    c
}

/// The example base image layout and its manifest digest; panics with what to run.
pub fn base_image() -> (PathBuf, String) {
    example_image("base-image")
}

/// `examples/<name>/oci` and its manifest digest; panics with what to run.
pub fn example_image(name: &str) -> (PathBuf, String) {
    let dir = repo().join("examples").join(name).join("oci");
    let digest = std::fs::read_to_string(dir.join("MANIFEST_DIGEST")).unwrap_or_else(|_| {
        panic!("examples/{name} is not built: run examples/{name}/build.sh (scripts/test.sh does)")
    });
    (
        std::fs::canonicalize(&dir).unwrap(),
        digest.trim().to_string(),
    )
}

/// `toml` (a job file) with its `ref = "..."` line set to `image` (a pinned image ref).
pub fn with_image_ref(toml: &str, image: &str) -> String {
    let lines: Vec<String> = toml
        .lines()
        .map(|l| {
            if l.starts_with("ref = ") {
                format!("ref = \"{image}\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

/// A scratch directory that the sandbox's unprivileged uid can traverse (0755).
pub fn scratch() -> tempfile::TempDir {
    let base = Path::new("/var/tmp/airlock-e2e");
    std::fs::create_dir_all(base).unwrap();
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = tempfile::Builder::new()
        .prefix("t")
        .tempdir_in(base)
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A copy of the built-in sandbox profiles in `dir` (for `--profiles-dir`), with `extra`
/// (TOML tables) appended to profile `profile`.
pub fn profiles_copy(dir: &Path, profile: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(repo().join("sandbox-profiles")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let file = dir.join(format!("{profile}.toml"));
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(extra);
    std::fs::write(file, text).unwrap();
    dir.to_path_buf()
}

/// Writes a job directory with `airlock.toml` built from `steps` (TOML) and returns the file.
pub fn job_dir(root: &Path, name: &str, steps: &str, outputs: &str) -> PathBuf {
    let (layout, digest) = base_image();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), "from the source tree\n").unwrap();
    let toml = format!(
        r#"[job]
name = "{name}"
profile = "untrusted-pr"
timeout = "2m"

[source]
path = "."

[image]
ref = "oci-layout:{layout}@{digest}"

{steps}

[outputs]
paths = [{outputs}]
"#,
        layout = layout.display()
    );
    let file = dir.join("airlock.toml");
    std::fs::write(&file, toml).unwrap();
    file
}

/// Runs a command, printing its output for the test log.
/// The longest any single command in these tests may take. A hung controller, runner or
/// sandbox then fails its test with the command's output instead of stalling the suite.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

pub fn run(mut cmd: Command) -> Output {
    let out = output_with_timeout(&mut cmd, COMMAND_TIMEOUT);
    eprintln!(
        "--- {:?}\n--- exit: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        cmd,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `airlock run` of `job` with its own AIRLOCK_HOME under `home`.
pub fn airlock_run(job: &Path, home: &Path, out: &Path) -> Output {
    airlock_run_with(job, home, out, &[])
}

/// [`airlock_run`] with more flags.
pub fn airlock_run_with(job: &Path, home: &Path, out: &Path, extra: &[String]) -> Output {
    let mut c = airlock();
    c.arg("run")
        .arg(job)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("AIRLOCK_HOME", home);
    run(c)
}

/// The in-toto statement in `<out>/<name>.intoto.jsonl` (the DSSE payload, decoded).
pub fn statement(out: &Path, name: &str) -> serde_json::Value {
    use base64::Engine as _;
    let line = std::fs::read_to_string(out.join(format!("{name}.intoto.jsonl"))).unwrap();
    let envelope: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// The venv python with securesystemslib, from scripts/setup-test-env.sh.
pub fn venv_python() -> PathBuf {
    let p = std::env::var_os("AIRLOCK_VENV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "no Python venv at {}: run scripts/setup-test-env.sh",
        p.display()
    );
    p
}

/// Runs tests/interop/verify_dsse.py (securesystemslib) on a provenance file.
pub fn third_party_verify(provenance: &Path, key: &Path, artifact: &Path) -> Output {
    let mut c = Command::new(venv_python());
    c.arg(repo().join("tests/interop/verify_dsse.py"))
        .arg(provenance)
        .arg(key)
        .arg("--artifact")
        .arg(artifact);
    run(c)
}

/// Text of stdout + stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `Command::output` with a deadline: on expiry the process is killed and the test panics
/// with what it printed so far.
pub fn output_with_timeout(cmd: &mut Command, timeout: std::time::Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\n--- stdout:\n{}\n--- stderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// A child process killed and reaped when dropped, so a failing test leaves nothing running.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (polling, no fixed sleep) up to 60 s until something accepts on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port} after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `airlock controller init --dir DIR --listen 127.0.0.1:PORT` on a free port; returns PORT.
pub fn init_controller(dir: &Path) -> u16 {
    let port = free_port();
    let mut init = airlock();
    init.args(["controller", "init", "--dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    let o = run(init);
    assert!(o.status.success(), "controller init: {}", text(&o));
    port
}

/// Spawns `airlock controller --config CONFIG` (stdout to null) and waits for `port`.
pub fn start_controller(config: &Path, port: u16) -> Kill {
    start_controller_with(config, port, |_| {})
}

/// [`start_controller`] after `setup` adjusts the command (its stderr, logs, environment).
pub fn start_controller_with(config: &Path, port: u16, setup: impl FnOnce(&mut Command)) -> Kill {
    let mut cmd = airlock();
    cmd.args(["controller", "--config"])
        .arg(config)
        .stdout(Stdio::null());
    setup(&mut cmd);
    let controller = Kill(cmd.spawn().unwrap());
    wait_for_port(port);
    controller
}

/// `airlock runner` for the controller at `url` with the registration secret in `secret`, its
/// state in `state`, allowed to use the base image's OCI layout (stdout to null; not spawned).
pub fn runner_command(url: &str, secret: &Path, state: &Path) -> Command {
    let (layout, _) = base_image();
    let mut cmd = airlock();
    cmd.args(["runner", "--controller", url, "--registration-secret-file"])
        .arg(secret)
        .arg("--state-dir")
        .arg(state)
        .arg("--allow-oci-layout")
        .arg(&layout)
        .stdout(Stdio::null());
    cmd
}

/// Serves `body` for every GET on 127.0.0.1 until the process ends; returns the base URL.
pub fn serve(body: Vec<u8>) -> String {
    serve_with(body, None)
}

/// [`serve`], except that the first GET gets the headers and half the body, then its
/// connection stalls (held open until the server ends) and the receiver is told; later GETs
/// get the whole body.
pub fn serve_stalling_first(body: Vec<u8>) -> (String, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    (serve_with(body, Some(tx)), rx)
}

fn serve_with(body: Vec<u8>, mut stall_first: Option<mpsc::Sender<()>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if let Some(stalled) = stall_first.take() {
                let _ = stream.write_all(&body[..body.len() / 2]);
                let _ = stream.flush();
                let _ = stalled.send(());
                held.push(stream);
            } else {
                let _ = stream.write_all(&body);
            }
        }
    });
    url
}
