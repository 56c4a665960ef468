//! `[[caches]]` end to end with `airlock run` (real sandbox, real controller and runner, the
//! caches kept under AIRLOCK_HOME): a second trusted run restores the first one's caches
//! (under /cache and under /work) and records them in provenance; an untrusted-pr run's
//! writes never reach a trusted run; a release run starts clean and saves nothing; a corrupt
//! or truncated archive is discarded and the job starts clean; two runs saving one scope at
//! once leave one cache and no orphaned archive.

use std::path::{Path, PathBuf};

use crate::common::*;

/// `<root>/cached/airlock.toml` for `profile`: the step reports what the caches held and
/// leaves a stamp naming its profile in each.
pub fn cache_job(root: &Path, profile: &str) -> PathBuf {
    let dir = root.join("cached");
    let file = job_dir(
        root,
        "cached",
        r#"[[caches]]
name = "c"
path = "/cache/c"
key = ["input.txt"]

[[caches]]
name = "w"
path = "/work/build"

[[steps]]
run = """
cat /cache/c/stamp > /out/previous 2>/dev/null || echo none > /out/previous
cat /work/build/stamp > /out/previous-work 2>/dev/null || echo none > /out/previous-work
stamp="$PROFILE $(date +%s%N)"
echo "$stamp" > /cache/c/stamp
echo "$stamp (work)" > /work/build/stamp
echo "$stamp" > /out/stamp
"""
env = { PROFILE = "PROFILE_NAME" }"#,
        r#""previous", "previous-work", "stamp""#,
    );
    let toml = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "profile = \"untrusted-pr\"",
            &format!("profile = \"{profile}\""),
        )
        .replace("PROFILE_NAME", profile);
    std::fs::write(&file, toml).unwrap();
    assert_eq!(file, dir.join("airlock.toml"));
    file
}

struct Run {
    previous: String,
    previous_work: String,
    stamp: String,
    statement: serde_json::Value,
    log: String,
}

fn run_cached(root: &Path, home: &Path, profile: &str, n: usize) -> Run {
    let job = cache_job(root, profile);
    let out = root.join(format!("out-{n}"));
    let o = airlock_run(&job, home, &out);
    assert!(o.status.success(), "run {n} ({profile}): {}", text(&o));
    let read = |f: &str| {
        std::fs::read_to_string(out.join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    Run {
        previous: read("previous"),
        previous_work: read("previous-work"),
        stamp: read("stamp"),
        statement: statement(&out, "cached"),
        log: text(&o),
    }
}

/// The digest of the cache `name` in the statement's resolved dependencies or byproducts.
fn cache_digest(st: &serde_json::Value, section: &str, name: &str) -> Option<String> {
    let list = match section {
        "restored" => &st["predicate"]["buildDefinition"]["resolvedDependencies"],
        _ => &st["predicate"]["runDetails"]["byproducts"],
    };
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == format!("cache/{name}"))
        .map(|d| d["digest"]["sha256"].as_str().unwrap().to_owned())
}

fn restored_from(st: &serde_json::Value) -> Vec<serde_json::Value> {
    st["predicate"]["buildDefinition"]["internalParameters"]["caches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["restoredFrom"].clone())
        .collect()
}

/// Every archive in the caches' blob store of `home`.
fn archives(home: &Path) -> Vec<PathBuf> {
    let root = home.join("caches/blobs/sha256");
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return vec![];
    };
    dirs.flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.path())
        .collect()
}

#[test]
#[ignore = "needs root and the example base image (scripts/test.sh)"]
fn trusted_runs_share_caches_that_untrusted_and_release_runs_never_touch() {
    let root = scratch();
    let home = root.path().join("home");

    let first = run_cached(root.path(), &home, "trusted", 1);
    assert_eq!(
        (first.previous.as_str(), first.previous_work.as_str()),
        ("none", "none")
    );
    assert_eq!(
        restored_from(&first.statement),
        [const { serde_json::Value::Null }; 2]
    );
    let saved = cache_digest(&first.statement, "byproduct", "c").expect("cache c saved");
    assert!(cache_digest(&first.statement, "byproduct", "w").is_some());

    // The second trusted run starts with the first one's caches, recorded as inputs.
    let second = run_cached(root.path(), &home, "trusted", 2);
    assert_eq!(second.previous, first.stamp);
    assert_eq!(second.previous_work, format!("{} (work)", first.stamp));
    assert_eq!(
        cache_digest(&second.statement, "restored", "c").as_deref(),
        Some(saved.as_str())
    );
    assert_eq!(restored_from(&second.statement), ["trusted", "trusted"]);
    assert!(
        second
            .log
            .contains("cache c: restoring from the trusted domain"),
        "{}",
        second.log
    );

    // A pull request starts without them, and what it writes stays among pull requests.
    let pr = run_cached(root.path(), &home, "untrusted-pr", 3);
    assert_eq!(pr.previous, "none", "untrusted-pr restored a trusted cache");
    let pr_again = run_cached(root.path(), &home, "untrusted-pr", 4);
    assert_eq!(pr_again.previous, pr.stamp);
    let trusted = run_cached(root.path(), &home, "trusted", 5);
    assert_eq!(
        trusted.previous, second.stamp,
        "a pull request's write reached a trusted run"
    );

    // A release run starts clean and saves nothing, so the next one starts clean too.
    for n in [6, 7] {
        let release = run_cached(root.path(), &home, "release", n);
        assert_eq!(
            (release.previous.as_str(), release.previous_work.as_str()),
            ("none", "none")
        );
        assert_eq!(
            restored_from(&release.statement),
            [const { serde_json::Value::Null }; 2]
        );
        assert!(cache_digest(&release.statement, "byproduct", "c").is_none());
        assert!(release.log.contains("does not save it"), "{}", release.log);
    }
}

#[test]
#[ignore = "needs root and the example base image (scripts/test.sh)"]
fn corrupt_or_truncated_archives_are_discarded_and_the_job_starts_clean() {
    let root = scratch();
    let home = root.path().join("home");
    let mut last = run_cached(root.path(), &home, "trusted", 1);
    for (n, damage) in [(2, "corrupt"), (3, "truncate")] {
        let digest = cache_digest(&last.statement, "byproduct", "c").unwrap();
        let archive = archives(&home)
            .into_iter()
            .find(|p| p.file_name().unwrap().to_str() == Some(digest.as_str()))
            .expect("the saved archive");
        let mut bytes = std::fs::read(&archive).unwrap();
        if damage == "corrupt" {
            bytes[600] ^= 0xff;
        } else {
            bytes.truncate(bytes.len() / 2);
        }
        std::fs::write(&archive, &bytes).unwrap();
        let run = run_cached(root.path(), &home, "trusted", n);
        assert_eq!(
            run.previous, "none",
            "{damage}: a damaged cache was restored"
        );
        assert!(
            run.log.contains("cache c: discarded"),
            "{damage}: {}",
            run.log
        );
        assert!(cache_digest(&run.statement, "restored", "c").is_none());
        // The other cache (another archive) was intact and restored.
        assert_eq!(
            run.previous_work,
            format!("{} (work)", last.stamp),
            "{damage}"
        );
        last = run;
    }
    // The run after a discard restores what that run saved.
    let healed = run_cached(root.path(), &home, "trusted", 4);
    assert_eq!(healed.previous, last.stamp);
}

#[test]
#[ignore = "needs root and the example base image (scripts/test.sh)"]
fn two_runs_saving_one_scope_at_once_leave_one_cache_and_no_orphans() {
    let root = scratch();
    let home = root.path().join("home");
    // Each run in its own job directory with the same job name, so one scope.
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=2)
            .map(|n| {
                let (root, home) = (root.path().join(format!("r{n}")), home.clone());
                s.spawn(move || run_cached(&root, &home, "trusted", n))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stamps: Vec<&str> = runs.iter().map(|r| r.stamp.as_str()).collect();
    let third = run_cached(&root.path().join("r1"), &home, "trusted", 3);
    assert!(
        stamps.contains(&third.previous.as_str()),
        "{:?} vs {stamps:?}",
        third.previous
    );
    // Each key of each cache has one archive; the replaced ones were deleted.
    assert_eq!(archives(&home).len(), 2, "{:?}", archives(&home));
}
