//! Git sources: fetch one commit into the job's workspace and prove it is that commit.
//!
//! The runner shells out to the system `git` binary, outside the sandbox. That keeps the
//! dependency tree lean (no libgit2 or gitoxide) and uses the transport code every forge
//! tests against. It runs with a fixed argv (the URL always after `--`, never through a
//! shell), an empty environment except `PATH`, no system or global config
//! (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`), hooks disabled
//! (`core.hooksPath=/dev/null`), no credential prompts, and only the transports allowed by
//! `GIT_ALLOW_PROTOCOL` (`file` only when the runner is configured for it, since it reads
//! the runner's own disk). The checked-out `HEAD` is compared with the pinned commit and
//! `.git` is removed, so the workspace holds exactly the commit's tree.

use std::path::Path;
use std::process::{Command, Stdio};

use airlock_attest::GitCommit;

/// Why a git source could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The URL is not one the runner fetches from.
    #[error("git URL `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// `git` could not be started.
    #[error("cannot run git: {0}; install git on the runner")]
    Spawn(#[source] std::io::Error),
    /// A git command failed.
    #[error("git {action} failed: {stderr}")]
    Failed {
        /// What was being done.
        action: &'static str,
        /// The last lines git printed.
        stderr: String,
    },
    /// The repository does not have the pinned commit (or the ref).
    #[error("{0}")]
    NotFound(String),
    /// What was checked out is not the pinned commit.
    #[error("checked out {actual}, not the pinned commit {expected}")]
    Mismatch {
        /// The pinned commit.
        expected: GitCommit,
        /// What `HEAD` is.
        actual: String,
    },
    /// Removing `.git` from the workspace failed.
    #[error("removing {path}: {source}")]
    Cleanup {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    /// True if the job's own input is at fault (bad URL, missing commit), not the runner.
    pub fn is_job_error(&self) -> bool {
        matches!(
            self,
            Self::BadUrl { .. } | Self::NotFound(_) | Self::Mismatch { .. }
        )
    }
}

/// Which transports a fetch may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitTransports {
    /// `https`, `http` and `git` only.
    Network,
    /// Also `file` (local repositories on the runner's disk), for `airlock run`.
    NetworkAndFile,
}

fn check_url(url: &str, transports: GitTransports) -> Result<(), GitError> {
    let bad = |reason: &str| GitError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if url.starts_with('-') || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            "it starts with `-` or contains spaces or control characters",
        ));
    }
    let scheme = url.split_once("://").map(|(s, _)| s);
    match (scheme, transports) {
        (Some("https" | "http" | "git"), _) => {}
        (Some("file"), GitTransports::NetworkAndFile) => {}
        (Some("file"), GitTransports::Network) => {
            return Err(bad(
                "file:// repositories are only fetched by `airlock run`; serve it over https",
            ));
        }
        _ => return Err(bad("use an https://, http://, git:// or file:// URL")),
    }
    if url
        .split_once("://")
        .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'))
    {
        return Err(bad(
            "credentials in URLs are refused; they would be recorded in provenance",
        ));
    }
    Ok(())
}

fn git(transports: GitTransports) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("GIT_ATTR_NOSYSTEM", "1")
        .env(
            "GIT_ALLOW_PROTOCOL",
            match transports {
                GitTransports::Network => "https:http:git",
                GitTransports::NetworkAndFile => "https:http:git:file",
            },
        )
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "protocol.file.allow=always",
            "-c",
            "advice.detachedHead=false",
            "-c",
            "init.defaultBranch=airlock",
            "-c",
            "core.autocrlf=false",
        ])
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd`; returns stdout, or the tail of stderr as the error.
fn run(mut cmd: Command, action: &'static str) -> Result<String, GitError> {
    let out = cmd.output().map_err(GitError::Spawn)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
    Err(GitError::Failed {
        action,
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
    })
}

/// Fetches `commit` from `url` into the empty directory `work`, checks it out, verifies
/// `HEAD`, removes `.git`, and returns the commit time (unix seconds, for
/// `SOURCE_DATE_EPOCH`).
pub fn checkout(
    url: &str,
    commit: &GitCommit,
    work: &Path,
    transports: GitTransports,
) -> Result<u64, GitError> {
    check_url(url, transports)?;
    let hex = commit.hex();
    let mut init = git(transports);
    init.arg("init").arg("-q").arg(work);
    run(init, "init")?;
    // Shallow fetch of exactly the commit (protocol v2 serves any reachable commit);
    // servers that refuse that get a full fetch of their branches and tags.
    let mut fetch = git(transports);
    fetch
        .arg("-C")
        .arg(work)
        .args(["fetch", "-q", "--no-tags", "--depth=1", "--", url, &hex]);
    if run(fetch, "fetch").is_err() {
        let mut full = git(transports);
        full.arg("-C").arg(work).args([
            "fetch",
            "-q",
            "--no-tags",
            "--",
            url,
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
        ]);
        run(full, "fetch")?;
    }
    let mut exists = git(transports);
    exists
        .arg("-C")
        .arg(work)
        .args(["cat-file", "-e", &format!("{hex}^{{commit}}")]);
    if run(exists, "cat-file").is_err() {
        return Err(GitError::NotFound(format!(
            "{url} has no commit {hex} reachable from its branches or tags"
        )));
    }
    let mut co = git(transports);
    co.arg("-C")
        .arg(work)
        .args(["checkout", "-q", "--force", "--detach", &hex]);
    run(co, "checkout")?;
    let mut head = git(transports);
    head.arg("-C").arg(work).args(["rev-parse", "HEAD"]);
    let actual = run(head, "rev-parse")?.trim().to_owned();
    if actual != hex {
        return Err(GitError::Mismatch {
            expected: *commit,
            actual,
        });
    }
    let mut time = git(transports);
    time.arg("-C")
        .arg(work)
        .args(["show", "-s", "--format=%ct", &hex]);
    let epoch = run(time, "show")?
        .trim()
        .parse::<u64>()
        .map_err(|_| GitError::Failed {
            action: "show",
            stderr: "the commit time is not a number".into(),
        })?;
    let dot_git = work.join(".git");
    crate::tree::remove_tree(&dot_git).map_err(|source| GitError::Cleanup {
        path: dot_git.display().to_string(),
        source,
    })?;
    Ok(epoch)
}

/// Resolves a branch or tag of `url` to the commit it names now (`git ls-remote`). Tags
/// resolve to the commit they point at (peeled), never to the tag object.
pub fn resolve_ref(
    url: &str,
    git_ref: &str,
    transports: GitTransports,
) -> Result<GitCommit, GitError> {
    check_url(url, transports)?;
    if !airlock_job::is_git_ref(git_ref) {
        return Err(GitError::NotFound(format!(
            "`{git_ref}` is not a branch or tag name"
        )));
    }
    let mut cmd = git(transports);
    cmd.args(["ls-remote", "--", url]);
    let listing = run(cmd, "ls-remote")?;
    let wanted: Vec<String> = if git_ref.starts_with("refs/") {
        vec![format!("{git_ref}^{{}}"), git_ref.to_owned()]
    } else {
        vec![
            format!("refs/tags/{git_ref}^{{}}"),
            format!("refs/tags/{git_ref}"),
            format!("refs/heads/{git_ref}"),
        ]
    };
    let entries: Vec<(&str, &str)> = listing.lines().filter_map(|l| l.split_once('\t')).collect();
    for want in &wanted {
        if let Some((sha, _)) = entries.iter().find(|(_, name)| name == want) {
            return GitCommit::from_hex(sha).map_err(|_| GitError::Failed {
                action: "ls-remote",
                stderr: format!("unexpected object id `{sha}`"),
            });
        }
    }
    Err(GitError::NotFound(format!(
        "{url} has no branch or tag `{git_ref}`"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local repository with two commits and an annotated tag on the first.
    fn repo() -> (tempfile::TempDir, String, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let sh = |args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "-C"])
                .arg(&src)
                .args(args)
                .env("GIT_COMMITTER_DATE", "1700000000 +0000")
                .env("GIT_AUTHOR_DATE", "1700000000 +0000")
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        std::fs::create_dir(&src).unwrap();
        sh(&["init", "-q", "-b", "main"]);
        std::fs::write(src.join("a.txt"), "one").unwrap();
        sh(&["add", "."]);
        sh(&["commit", "-q", "-m", "one"]);
        let first = sh(&["rev-parse", "HEAD"]);
        sh(&["tag", "-a", "v1", "-m", "v1"]);
        std::fs::write(src.join("a.txt"), "two").unwrap();
        sh(&["commit", "-q", "-am", "two"]);
        let second = sh(&["rev-parse", "HEAD"]);
        let url = format!("file://{}", src.display());
        (dir, url, first, second)
    }

    #[test]
    fn checks_out_a_pinned_commit_and_resolves_refs() {
        let (dir, url, first, second) = repo();
        let t = GitTransports::NetworkAndFile;
        let v1 = resolve_ref(&url, "v1", t).unwrap();
        assert_eq!(v1.hex(), first, "tags resolve to the peeled commit");
        assert_eq!(resolve_ref(&url, "main", t).unwrap().hex(), second);
        assert!(resolve_ref(&url, "nope", t).unwrap_err().is_job_error());

        let work = dir.path().join("work");
        let epoch = checkout(&url, &v1, &work, t).unwrap();
        assert_eq!(epoch, 1_700_000_000);
        assert_eq!(std::fs::read_to_string(work.join("a.txt")).unwrap(), "one");
        assert!(!work.join(".git").exists());

        let missing = GitCommit::from_hex(&"1".repeat(40)).unwrap();
        let e = checkout(&url, &missing, &dir.path().join("w2"), t).unwrap_err();
        assert!(e.is_job_error(), "{e}");
    }

    #[test]
    fn refuses_unsafe_urls() {
        let c = GitCommit::from_hex(&"1".repeat(40)).unwrap();
        let d = tempfile::tempdir().unwrap();
        for url in [
            "--upload-pack=touch /tmp/x",
            "ext::sh -c touch% /tmp/x",
            "file:///tmp/repo",
            "https://user:pw@example.org/r.git",
        ] {
            let e = checkout(url, &c, d.path(), GitTransports::Network).unwrap_err();
            assert!(matches!(e, GitError::BadUrl { .. }), "{url}: {e}");
        }
    }
}
