//! Sandbox profiles: what a job of each trust level may get.
//!
//! A profile is one strict TOML file in `sandbox-profiles/` (`untrusted-pr.toml`,
//! `trusted.toml`, `release.toml`): network mode, seccomp filter, capabilities, resource
//! ceilings, whether build tokens may be issued, what image outputs may hold and whether the
//! job's own image must carry a signed attestation (`[image_check]`). The three files are
//! built into the binary, so a runner works anywhere; `--profiles-dir` makes it read them
//! from a folder instead. A job names its profile; the runner refuses unknown profiles and
//! jobs that ask for more than their profile's ceilings (never silently capping them).

use std::collections::BTreeMap;
use std::path::Path;

use airlock_job::{ByteSize, HumanDuration, JobSpec};
use serde::Deserialize;

use crate::sandbox::SeccompPolicy;

/// The profiles built into the binary: `(file name, contents)`.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "untrusted-pr.toml",
        include_str!("../../sandbox-profiles/untrusted-pr.toml"),
    ),
    (
        "trusted.toml",
        include_str!("../../sandbox-profiles/trusted.toml"),
    ),
    (
        "release.toml",
        include_str!("../../sandbox-profiles/release.toml"),
    ),
];

/// The seccomp filters built into the binary: `(file name, contents)`.
const BUILT_IN_SECCOMP: &[(&str, &str)] = &[(
    crate::sandbox::SECCOMP_BASELINE_FILE,
    crate::sandbox::SECCOMP_BASELINE_JSON,
)];

/// Why a profile could not be loaded, or a job is not allowed under it.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A profile file is unreadable or invalid.
    #[error("sandbox profile {file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The job names a profile this runner does not have.
    #[error("unknown sandbox profile `{0}`: this runner has {1}")]
    Unknown(String, String),
    /// The job asks for more than its profile allows.
    #[error("the job asks for more than profile `{profile}` allows: {what}")]
    AboveCeiling {
        /// The profile.
        profile: String,
        /// Every request over its ceiling, e.g. `resources.memory = 8GiB > 4GiB`.
        what: String,
    },
}

/// The network a sandbox gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// A new network namespace with only `lo` (up): no route off the sandbox.
    None,
}

/// `[ceilings]` of a profile.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceilings {
    /// Most memory a job may ask for (`resources.memory`).
    pub memory: ByteSize,
    /// Most processes a job may ask for (`resources.pids`).
    pub pids: u64,
    /// CPU bandwidth every step gets, in CPUs.
    pub cpus: f64,
    /// Largest `/tmp` a job may ask for (`resources.tmp`).
    pub tmp: ByteSize,
    /// Longest `job.timeout`.
    pub wall_time: HumanDuration,
    /// Most bytes collected from `/out` (all files together, and any single one).
    pub output_bytes: ByteSize,
    /// `RLIMIT_NOFILE` of every step.
    pub open_files: u64,
}

/// `[images]` of a profile: what an `[[outputs.images]]` rootfs may hold. Both refused when
/// the table is absent: a setuid binary or a device node in an image is a privilege its
/// users inherit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePolicy {
    /// Whether files may keep their setuid and setgid bits.
    #[serde(default)]
    pub allow_setuid: bool,
    /// Whether character and block devices and FIFOs may be packaged.
    #[serde(default)]
    pub allow_devices: bool,
}

/// `[image_check]` of a profile: what the job's own image (`[image]`) must carry before any
/// step runs. Absent means nothing is required (see docs/images.md, "Checked build images").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageCheckPolicy {
    /// Whether the image must be vouched for by an attestation (today: SLSA provenance v1)
    /// signed by one of the runner's `--image-key` keys, whose subject is the image's pinned
    /// manifest digest. Required when the table is written.
    pub require_attestation: bool,
}

/// `[sbom]` of a profile: the vulnerability gate (docs/sbom.md). Absent means no gate; the
/// SBOM is made either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomPolicy {
    /// Fail a build whose packages have a known vulnerability at or above this severity
    /// (`LOW`, `MEDIUM`, `HIGH`, `CRITICAL`), found in the runner's `--osv-db`.
    #[serde(default, deserialize_with = "gate_severity")]
    pub deny_vulnerable: Option<crate::vulns::Severity>,
    /// Whether advisories that give no severity at all count for the gate too.
    #[serde(default)]
    pub deny_unrated: bool,
}

fn gate_severity<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::vulns::Severity>, D::Error> {
    let text = String::deserialize(d)?;
    match text.parse::<crate::vulns::Severity>() {
        Ok(crate::vulns::Severity::Unknown) | Err(_) => Err(serde::de::Error::custom(format!(
            "deny_vulnerable = {text:?}: use LOW, MEDIUM, HIGH or CRITICAL"
        ))),
        Ok(severity) => Ok(Some(severity)),
    }
}

/// `[trace]` of a profile: the runtime trace (docs/trace.md). Absent means off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracePolicy {
    /// Whether each step is traced (seccomp user notification) and the job gets a signed
    /// runtime-trace statement. Required when the table is written.
    pub enabled: bool,
    /// Refuse network calls to addresses outside the sandbox (`ENETUNREACH`) and fail a job
    /// that made one.
    #[serde(default)]
    pub fail_on_network: bool,
}

/// A profile file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    description: String,
    network: NetworkMode,
    seccomp: String,
    capabilities: Vec<String>,
    build_tokens: bool,
    ceilings: Ceilings,
    #[serde(default)]
    images: ImagePolicy,
    #[serde(default)]
    image_check: ImageCheckPolicy,
    #[serde(default)]
    sbom: SbomPolicy,
    #[serde(default)]
    trace: TracePolicy,
}

/// A loaded, checked sandbox profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The name jobs use in `job.profile`.
    pub name: String,
    /// For humans.
    pub description: String,
    /// The network mode.
    pub network: NetworkMode,
    /// The seccomp file name, as written in the profile.
    pub seccomp_file: String,
    /// The seccomp filter.
    pub seccomp: SeccompPolicy,
    /// Whether OIDC build tokens may be issued to jobs of this profile.
    pub build_tokens: bool,
    /// The ceilings.
    pub ceilings: Ceilings,
    /// What image outputs may hold.
    pub images: ImagePolicy,
    /// What the job's image must carry.
    pub image_check: ImageCheckPolicy,
    /// The vulnerability gate.
    pub sbom: SbomPolicy,
    /// The runtime trace.
    pub trace: TracePolicy,
}

impl Profile {
    /// CPU quota in thousandths of a CPU.
    pub fn cpu_millis(&self) -> u64 {
        // Checked positive and finite on load.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let millis = (self.ceilings.cpus * 1000.0).round() as u64;
        millis
    }

    /// Refuses a job that asks for more than this profile's ceilings, listing every excess,
    /// or for build tokens when the profile gives none.
    pub fn admit(&self, spec: &JobSpec) -> Result<(), ProfileError> {
        let c = &self.ceilings;
        let r = &spec.resources;
        let mut over = Vec::new();
        if r.memory.0 > c.memory.0 {
            over.push(format!("resources.memory = {} > {}", r.memory, c.memory));
        }
        if r.pids > c.pids {
            over.push(format!("resources.pids = {} > {}", r.pids, c.pids));
        }
        if r.tmp.0 > c.tmp.0 {
            over.push(format!("resources.tmp = {} > {}", r.tmp, c.tmp));
        }
        if spec.job.timeout.0 > c.wall_time.0 {
            over.push(format!(
                "job.timeout = {} > {}",
                spec.job.timeout, c.wall_time
            ));
        }
        if spec.oidc.is_some() && !self.build_tokens {
            over.push("[oidc] build tokens, which this profile never issues".to_owned());
        }
        if over.is_empty() {
            Ok(())
        } else {
            Err(ProfileError::AboveCeiling {
                profile: self.name.clone(),
                what: over.join("; "),
            })
        }
    }
}

/// Every profile a runner offers, by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Profiles(BTreeMap<String, Profile>);

impl Profiles {
    /// The profiles built into the binary (the files of `sandbox-profiles/`).
    pub fn built_in() -> Result<Self, ProfileError> {
        let files = BUILT_IN
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()));
        Self::from_files(files, |file| {
            BUILT_IN_SECCOMP
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, text)| (*text).to_owned())
                .ok_or_else(|| format!("no built-in seccomp filter `{file}`"))
        })
    }

    /// Every `*.toml` profile in `dir`; seccomp files are read from `dir` too.
    pub fn from_dir(dir: &Path) -> Result<Self, ProfileError> {
        let invalid = |reason: String| ProfileError::Invalid {
            file: dir.display().to_string(),
            reason,
        };
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| invalid(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| invalid(e.to_string()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".toml") {
                let text = std::fs::read_to_string(entry.path())
                    .map_err(|e| invalid(format!("{name}: {e}")))?;
                files.push((name, text));
            }
        }
        Self::from_files(files, |file| {
            std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{file}: {e}"))
        })
    }

    /// Parses `(file name, TOML)` pairs; `seccomp` reads a filter by file name.
    fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
        seccomp: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Self, ProfileError> {
        let mut profiles = BTreeMap::new();
        for (file, text) in files {
            let profile = parse(&file, &text, &seccomp)?;
            if profiles.contains_key(&profile.name) {
                return Err(ProfileError::Invalid {
                    file,
                    reason: format!("a second profile named `{}`", profile.name),
                });
            }
            profiles.insert(profile.name.clone(), profile);
        }
        if profiles.is_empty() {
            return Err(ProfileError::Invalid {
                file: "(profiles)".into(),
                reason: "no *.toml profile found".into(),
            });
        }
        Ok(Self(profiles))
    }

    /// The profile named `name`, or the refusal the job gets.
    pub fn get(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.0.get(name).ok_or_else(|| {
            ProfileError::Unknown(
                name.to_owned(),
                self.0.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })
    }

    /// The profile names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Parses and checks one profile file.
fn parse(
    file: &str,
    text: &str,
    seccomp: &impl Fn(&str) -> Result<String, String>,
) -> Result<Profile, ProfileError> {
    let invalid = |reason: String| ProfileError::Invalid {
        file: file.to_owned(),
        reason,
    };
    let raw: RawProfile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if Some(raw.name.as_str()) != file.strip_suffix(".toml") {
        return Err(invalid(format!(
            "`name = \"{}\"` must match the file name",
            raw.name
        )));
    }
    if !raw.capabilities.is_empty() {
        return Err(invalid(format!(
            "capabilities must be empty (steps run without any), not {:?}",
            raw.capabilities
        )));
    }
    let c = &raw.ceilings;
    if !(c.cpus.is_finite() && c.cpus >= 0.01 && c.cpus <= 1024.0) {
        return Err(invalid(format!(
            "ceilings.cpus = {} must be between 0.01 and 1024",
            c.cpus
        )));
    }
    if c.memory.0 < 16 << 20 || c.pids == 0 || c.tmp.0 == 0 || c.output_bytes.0 == 0 {
        return Err(invalid(
            "ceilings: memory must be at least 16MiB; pids, tmp and output_bytes positive".into(),
        ));
    }
    if c.wall_time.0.is_zero() || c.open_files < 16 {
        return Err(invalid(
            "ceilings: wall_time must be positive and open_files at least 16".into(),
        ));
    }
    if raw.seccomp.contains('/') || !raw.seccomp.ends_with(".json") {
        return Err(invalid(format!(
            "seccomp = {:?} must name a .json file in the profiles folder",
            raw.seccomp
        )));
    }
    let json = seccomp(&raw.seccomp).map_err(invalid)?;
    let policy = SeccompPolicy::from_json(&json)
        .map_err(|e| invalid(format!("seccomp {}: {e}", raw.seccomp)))?;
    Ok(Profile {
        name: raw.name,
        description: raw.description,
        network: raw.network,
        seccomp_file: raw.seccomp,
        seccomp: policy,
        build_tokens: raw.build_tokens,
        ceilings: raw.ceilings,
        images: raw.images,
        image_check: raw.image_check,
        sbom: raw.sbom,
        trace: raw.trace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox-profiles")
    }

    fn job(extra: &str) -> JobSpec {
        let toml = format!(
            r#"[job]
name = "j"
profile = "untrusted-pr"
timeout = "10m"
[source]
path = "."
[image]
ref = "oci-layout:/img@sha256:{}"
[[steps]]
run = "true"
[outputs]
paths = ["x"]
{extra}
"#,
            "a".repeat(64)
        );
        JobSpec::from_toml_str(&toml).expect("job")
    }

    #[test]
    fn built_in_profiles_match_the_folder_and_every_job_profile_exists() {
        let built_in = Profiles::built_in().expect("built in");
        let on_disk = Profiles::from_dir(&folder()).expect("folder");
        assert_eq!(built_in, on_disk, "rebuild: sandbox-profiles/ changed");
        let names: Vec<&str> = built_in.names().collect();
        let mut expected = airlock_job::PROFILES.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        for name in names {
            let p = built_in.get(name).expect("profile");
            assert_eq!(p.network, NetworkMode::None);
            assert!(p.seccomp.denies("mount") && p.seccomp.denies_clone_newuser());
        }
        assert!(!built_in.get("untrusted-pr").expect("p").build_tokens);
        assert!(built_in.get("release").expect("p").build_tokens);
        // Release builds are traced by default, the others are not.
        assert!(built_in.get("release").expect("p").trace.enabled);
        assert!(!built_in.get("trusted").expect("p").trace.enabled);
        // Checked build images are an operator's choice (their --profiles-dir copy with
        // --image-key): the built-in profiles run jobs on any pinned image.
        for name in ["untrusted-pr", "trusted", "release"] {
            assert_eq!(
                built_in.get(name).expect("p").image_check,
                ImageCheckPolicy {
                    require_attestation: false
                },
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_profiles_are_refused_by_name() {
        let p = Profiles::built_in().expect("built in");
        let e = p.get("yolo").expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "unknown sandbox profile `yolo`: this runner has release, trusted, untrusted-pr"
        );
    }

    #[test]
    fn jobs_within_ceilings_are_admitted_and_others_refused_with_every_excess() {
        let profiles = Profiles::built_in().expect("built in");
        let p = profiles.get("untrusted-pr").expect("p");
        p.admit(&job("")).expect("defaults fit");
        p.admit(&job(
            "[resources]\nmemory = \"4GiB\"\npids = 1024\ntmp = \"2GiB\"",
        ))
        .expect("exactly the ceilings fit");
        let e = p
            .admit(&job(
                "[resources]\nmemory = \"5GiB\"\npids = 1025\ntmp = \"3GiB\"\n[oidc]\naudiences = [\"x\"]",
            ))
            .expect_err("over");
        let text = e.to_string();
        for part in [
            "resources.memory",
            "resources.pids",
            "resources.tmp",
            "[oidc]",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let mut long = job("");
        long.job.timeout = HumanDuration(std::time::Duration::from_secs(2 * 3600));
        assert!(
            p.admit(&long)
                .expect_err("too long")
                .to_string()
                .contains("job.timeout")
        );
        assert_eq!(p.cpu_millis(), 2000);
        // trusted allows build tokens
        let t = profiles.get("trusted").expect("p");
        t.admit(&job("[oidc]\naudiences = [\"x\"]"))
            .expect("tokens allowed");
    }

    #[test]
    fn strict_parsing_refuses_bad_profiles() {
        let good = BUILT_IN[0].1;
        let seccomp = |f: &str| {
            (f == "seccomp-default.json")
                .then(|| crate::sandbox::SECCOMP_BASELINE_JSON.to_owned())
                .ok_or_else(|| format!("no {f}"))
        };
        parse("untrusted-pr.toml", good, &seccomp).expect("good");
        let cases = [
            (
                "unknown field",
                good.replace("build_tokens", "extra = 1\nbuild_tokens"),
            ),
            (
                "capability",
                good.replace("capabilities = []", "capabilities = [\"CAP_SYS_ADMIN\"]"),
            ),
            (
                "network",
                good.replace("network = \"none\"", "network = \"host\""),
            ),
            (
                "name",
                good.replace("name = \"untrusted-pr\"", "name = \"other\""),
            ),
            (
                "seccomp path",
                good.replace("seccomp-default.json", "../x.json"),
            ),
            (
                "seccomp missing",
                good.replace("seccomp-default.json", "none.json"),
            ),
            ("cpus", good.replace("cpus = 2.0", "cpus = 0.0")),
            ("missing ceiling", good.replace("open_files = 4096", "")),
            (
                "unknown image_check field",
                good.replace(
                    "require_attestation = false",
                    "require_attestation = false\nrequire_vsa = true",
                ),
            ),
            (
                "image_check without its field",
                good.replace("require_attestation = false", ""),
            ),
            (
                "image_check not a bool",
                good.replace(
                    "require_attestation = false",
                    "require_attestation = \"yes\"",
                ),
            ),
        ];
        for (what, text) in cases {
            assert!(
                parse("untrusted-pr.toml", &text, &seccomp).is_err(),
                "{what} must be refused"
            );
        }
        // The switch, on; and a profile without the table requires nothing.
        let on = good.replace("require_attestation = false", "require_attestation = true");
        let p = parse("untrusted-pr.toml", &on, &seccomp).expect("on");
        assert!(p.image_check.require_attestation);
        let without = good.replace("[image_check]\nrequire_attestation = false\n", "");
        assert_ne!(without, good);
        let p = parse("untrusted-pr.toml", &without, &seccomp).expect("no table");
        assert!(!p.image_check.require_attestation);
        assert_eq!(p.sbom, SbomPolicy::default(), "no [sbom]: no gate");

        assert_eq!(p.trace, TracePolicy::default(), "no [trace]: not traced");
        let traced = format!("{good}\n[trace]\nenabled = true\nfail_on_network = true\n");
        let p = parse("untrusted-pr.toml", &traced, &seccomp).expect("trace");
        assert!(p.trace.enabled && p.trace.fail_on_network);
        for bad in [
            "[trace]\nfail_on_network = true",
            "[trace]\nenabled = \"yes\"",
            "[trace]\nenabled = true\nsyscalls = []",
        ] {
            assert!(
                parse("untrusted-pr.toml", &format!("{good}\n{bad}\n"), &seccomp).is_err(),
                "{bad}"
            );
        }

        // The vulnerability gate: a severity by name; anything else is refused.
        let gated = format!("{good}\n[sbom]\ndeny_vulnerable = \"high\"\ndeny_unrated = true\n");
        let p = parse("untrusted-pr.toml", &gated, &seccomp).expect("gate");
        assert_eq!(p.sbom.deny_vulnerable, Some(crate::vulns::Severity::High));
        assert!(p.sbom.deny_unrated);
        for bad in ["\"SEVERE\"", "\"UNKNOWN\"", "3", "\"HIGH\"\nextra = 1"] {
            let text = format!("{good}\n[sbom]\ndeny_vulnerable = {bad}\n");
            let err = parse("untrusted-pr.toml", &text, &seccomp).unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
    }
}
