//! What a test can see of the host after the fact: directory entries, processes and
//! cgroups left behind by a runner room.

use std::path::{Path, PathBuf};

/// Entries of `dir` (none if it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The pids of processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(needle)
        {
            pids.push(pid);
        }
    }
    pids
}

/// The pids of processes in a sandbox cgroup of the runner room `room_id` (container ids,
/// hence cgroup names, end in `.<room id>`).
pub fn build_processes_of(room_id: &str) -> Vec<i32> {
    let suffix = format!(".{room_id}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cgroups) = std::fs::read_to_string(entry.path().join("cgroup"))
            && cgroups.lines().any(|l| l.trim_end().ends_with(&suffix))
        {
            pids.push(pid);
        }
    }
    pids
}

/// Sandbox cgroups (in any hierarchy) whose name ends in `.<room id>`: a container of that
/// runner room.
pub fn cgroups_of(room_id: &str) -> Vec<PathBuf> {
    let suffix = format!(".{room_id}");
    let mut left = Vec::new();
    for hierarchy in entries(Path::new("/sys/fs/cgroup")) {
        let parent = Path::new("/sys/fs/cgroup").join(hierarchy).join("airlock");
        for cgroup in entries(&parent) {
            if cgroup.ends_with(&suffix) {
                left.push(parent.join(cgroup));
            }
        }
    }
    left
}

/// The ids of the runner rooms now in `state` (`runners/<id>/`).
pub fn rooms(state: &Path) -> Vec<String> {
    entries(&state.join("runners"))
        .into_iter()
        .filter_map(|e| e.strip_suffix(".lock").map(str::to_owned))
        .collect()
}

/// After every runner on `state` has stopped: no room, no lock, no partial download, and
/// nothing of the rooms in `seen` still runs or holds a cgroup.
pub fn assert_state_clean(state: &Path, seen: &[String]) {
    assert_eq!(
        entries(&state.join("runners")),
        Vec::<String>::new(),
        "rooms left in {}",
        state.display()
    );
    assert_eq!(
        entries(&state.join("cache/tmp")),
        Vec::<String>::new(),
        "partial downloads left in {}",
        state.display()
    );
    for room in seen {
        assert_eq!(processes_mentioning(room), Vec::<i32>::new(), "room {room}");
        assert_eq!(build_processes_of(room), Vec::<i32>::new(), "room {room}");
        assert_eq!(cgroups_of(room), Vec::<PathBuf>::new(), "room {room}");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let below = state.to_string_lossy().into_owned();
    assert!(
        !mounts.lines().any(|l| l.contains(&below)),
        "mounts left below {below}:\n{mounts}"
    );
}
