//! The seccomp policy of a sandbox, read from a JSON file in the OCI/Docker seccomp format.
//!
//! The baseline (`sandbox-profiles/seccomp-default.json`, built into the binary so it works
//! anywhere) allows by default and denies what a build step never needs and what widens the
//! kernel attack surface: mounting, namespace creation and joining (including
//! `clone(CLONE_NEWUSER)`), keyrings, BPF, perf, tracing other processes, kernel modules,
//! kexec, swap, reboot, clock changes, `userfaultfd`, io_uring and the new mount API. Denied
//! calls fail with `EPERM`, so well-behaved programs see an ordinary permission error.
//! `clone3` fails with `ENOSYS` instead: its flags live in a struct that seccomp cannot
//! inspect, and `ENOSYS` makes glibc fall back to `clone`, whose flags the filter does check.
//!
//! The filter is x86_64 only: libseccomp kills a process that makes a system call through
//! another ABI (i386 `int 0x80`, x32), so those cannot be used to bypass the rules.
//!
//! Accepted JSON: `defaultAction`, `architectures`, `syscalls[]` with `names`, `action`,
//! `errnoRet`, `args[]` (`index`, `value`, `valueTwo`, `op`), and `comment` anywhere; other
//! Docker extensions (`archMap`, `includes`, `excludes`, ...) are refused, not ignored. Every
//! policy must deny at least [`MANDATORY_DENIALS`] and nested user namespaces.

use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};

use super::SandboxError;

/// `CLONE_NEWUSER` from `<linux/sched.h>`.
const CLONE_NEWUSER: u64 = 0x1000_0000;

/// The baseline filter, as shipped in `sandbox-profiles/seccomp-default.json`.
pub const BASELINE_JSON: &str = include_str!("../../../sandbox-profiles/seccomp-default.json");

/// The file name of the baseline filter in the profiles folder.
pub const BASELINE_FILE: &str = "seccomp-default.json";

/// System calls every policy must refuse unconditionally (whatever the profile says).
pub const MANDATORY_DENIALS: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "open_by_handle_at",
    "clone3",
    "io_uring_setup",
];

/// A seccomp policy, parsed and checked. Build it with [`SeccompPolicy::baseline`] or
/// [`SeccompPolicy::from_json`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeccompPolicy {
    #[serde(default, skip_serializing)]
    comment: Option<String>,
    default_action: String,
    architectures: Vec<String>,
    syscalls: Vec<SeccompRule>,
}

/// One rule of the JSON file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeccompRule {
    #[serde(default, skip_serializing)]
    comment: Option<String>,
    names: Vec<String>,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<SeccompArg>>,
}

/// An argument filter of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeccompArg {
    index: usize,
    value: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_two: Option<u64>,
    op: String,
}

/// Actions that refuse a call.
fn is_refusal(action: &str) -> bool {
    matches!(
        action,
        "SCMP_ACT_ERRNO" | "SCMP_ACT_KILL" | "SCMP_ACT_KILL_PROCESS" | "SCMP_ACT_KILL_THREAD"
    )
}

impl Default for SeccompPolicy {
    fn default() -> Self {
        Self::baseline()
    }
}

impl SeccompPolicy {
    /// The built-in baseline policy (the module documentation says what it denies).
    pub fn baseline() -> Self {
        #[allow(clippy::expect_used)] // checked by a unit test on every build
        Self::from_json(BASELINE_JSON).expect("the built-in seccomp-default.json is valid")
    }

    /// Parses and checks a filter in the OCI/Docker JSON format.
    pub fn from_json(json: &str) -> Result<Self, SandboxError> {
        let policy: Self = serde_json::from_str(json)
            .map_err(|e| SandboxError::plan("seccomp", format!("not a valid filter: {e}")))?;
        policy.check()?;
        Ok(policy)
    }

    /// Checks actions, architectures and the mandatory denials.
    fn check(&self) -> Result<(), SandboxError> {
        // Let oci-spec check every action, operator and architecture name.
        self.to_oci_unchecked()?;
        if self.architectures != ["SCMP_ARCH_X86_64"] {
            return Err(SandboxError::plan(
                "seccomp",
                format!(
                    "architectures must be [\"SCMP_ARCH_X86_64\"] (other ABIs are then killed), not {:?}",
                    self.architectures
                ),
            ));
        }
        if is_refusal(&self.default_action) {
            // A deny-by-default filter is fine: everything mandatory is refused.
            return Ok(());
        }
        let missing: Vec<&str> = MANDATORY_DENIALS
            .iter()
            .copied()
            .filter(|name| !self.denies(name))
            .collect();
        if !missing.is_empty() {
            return Err(SandboxError::plan(
                "seccomp",
                format!(
                    "the filter must refuse {} unconditionally",
                    missing.join(", ")
                ),
            ));
        }
        if !self.denies_clone_newuser() {
            return Err(SandboxError::plan(
                "seccomp",
                "the filter must refuse `clone` with CLONE_NEWUSER (a SCMP_CMP_MASKED_EQ rule on \
                 argument 0 with value and valueTwo 268435456)",
            ));
        }
        Ok(())
    }

    /// Whether the policy refuses `syscall` unconditionally.
    pub fn denies(&self, syscall: &str) -> bool {
        self.syscalls.iter().any(|r| {
            is_refusal(&r.action) && r.args.is_none() && r.names.iter().any(|n| n == syscall)
        })
    }

    /// The errno a refused `syscall` fails with, if a rule refuses it unconditionally.
    pub fn errno_of(&self, syscall: &str) -> Option<u32> {
        self.syscalls
            .iter()
            .find(|r| {
                r.action == "SCMP_ACT_ERRNO"
                    && r.args.is_none()
                    && r.names.iter().any(|n| n == syscall)
            })
            .and_then(|r| r.errno_ret)
    }

    /// Whether `clone` with `CLONE_NEWUSER` in its flags is refused.
    pub fn denies_clone_newuser(&self) -> bool {
        self.denies("clone")
            || self.syscalls.iter().any(|r| {
                is_refusal(&r.action)
                    && r.names.iter().any(|n| n == "clone")
                    && r.args.as_ref().is_some_and(|args| {
                        args.len() == 1
                            && args[0].index == 0
                            && args[0].op == "SCMP_CMP_MASKED_EQ"
                            && args[0].value == CLONE_NEWUSER
                            && args[0].value_two == Some(CLONE_NEWUSER)
                    })
            })
    }

    /// The policy as the `linux.seccomp` section of an OCI runtime spec.
    pub fn to_oci(&self) -> Result<LinuxSeccomp, SandboxError> {
        self.to_oci_unchecked()
    }

    /// The policy with `SCMP_ACT_NOTIFY` rules for `syscalls`, which no rule of the policy may
    /// already name (a refusal must stay a refusal). `sendto` notifies only when it carries an
    /// address (argument 4 non-null): sends on a connected socket are no new destination.
    pub fn with_notify(&self, syscalls: &[&str]) -> Result<Self, SandboxError> {
        if let Some(taken) = syscalls.iter().find(|name| {
            self.syscalls
                .iter()
                .any(|r| r.names.iter().any(|n| n == *name))
        }) {
            return Err(SandboxError::plan(
                "seccomp",
                format!(
                    "the filter has a rule for `{taken}`, which the runtime trace must observe; \
                     remove that rule or turn [trace] off for the profile"
                ),
            ));
        }
        let mut traced = self.clone();
        for name in syscalls {
            traced.syscalls.push(SeccompRule {
                comment: None,
                names: vec![(*name).to_owned()],
                action: "SCMP_ACT_NOTIFY".to_owned(),
                errno_ret: None,
                args: (*name == "sendto").then(|| {
                    vec![SeccompArg {
                        index: 4,
                        value: 0,
                        value_two: None,
                        op: "SCMP_CMP_NE".to_owned(),
                    }]
                }),
            });
        }
        traced.check()?;
        Ok(traced)
    }

    fn to_oci_unchecked(&self) -> Result<LinuxSeccomp, SandboxError> {
        // The accepted subset of the Docker format is the OCI format (comments aside).
        let value = serde_json::to_value(self)
            .map_err(|e| SandboxError::plan("seccomp", format!("serialising: {e}")))?;
        serde_json::from_value(value)
            .map_err(|e| SandboxError::plan("seccomp", format!("not a valid OCI filter: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;
    use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompOperator, LinuxSyscall};

    use super::*;

    fn rule_for<'a>(seccomp: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        seccomp
            .syscalls()
            .as_ref()
            .map(|rules| {
                rules
                    .iter()
                    .filter(|r| r.names().iter().any(|n| n == name))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_file_on_disk_and_the_built_in_copy_agree() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sandbox-profiles")
            .join(BASELINE_FILE);
        let on_disk = std::fs::read_to_string(&path).expect("read the profiles folder");
        assert_eq!(
            on_disk,
            BASELINE_JSON,
            "rebuild: {} changed",
            path.display()
        );
        assert_eq!(
            SeccompPolicy::from_json(&on_disk).expect("valid"),
            SeccompPolicy::baseline()
        );
    }

    #[test]
    fn baseline_denies_the_dangerous_calls_with_eperm() {
        let seccomp = SeccompPolicy::baseline().to_oci().expect("seccomp");
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(
            seccomp.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
        for name in MANDATORY_DENIALS.iter().filter(|n| **n != "clone3") {
            let rules = rule_for(&seccomp, name);
            assert_eq!(rules.len(), 1, "{name}");
            assert_eq!(
                rules[0].action(),
                LinuxSeccompAction::ScmpActErrno,
                "{name}"
            );
            assert_eq!(rules[0].errno_ret(), Some(Errno::EPERM as u32), "{name}");
            assert!(
                rules[0].args().is_none(),
                "{name} must be denied unconditionally"
            );
        }
    }

    #[test]
    fn clone3_gets_enosys_and_clone_newuser_eperm() {
        let policy = SeccompPolicy::baseline();
        assert_eq!(policy.errno_of("clone3"), Some(Errno::ENOSYS as u32));
        assert!(policy.denies_clone_newuser() && !policy.denies("clone"));
        let seccomp = policy.to_oci().expect("seccomp");
        let clone = rule_for(&seccomp, "clone");
        assert_eq!(clone.len(), 1);
        let args = clone[0]
            .args()
            .as_ref()
            .expect("clone rule has an argument filter");
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), CLONE_NEWUSER);
        assert_eq!(args[0].value_two(), Some(CLONE_NEWUSER));
    }

    #[test]
    fn the_trace_adds_notify_rules_and_keeps_every_refusal() {
        let base = SeccompPolicy::baseline();
        let traced = base.with_notify(&["openat", "sendto"]).expect("traced");
        let seccomp = traced.to_oci().expect("oci");
        let openat = rule_for(&seccomp, "openat");
        assert_eq!(openat.len(), 1);
        assert_eq!(openat[0].action(), LinuxSeccompAction::ScmpActNotify);
        let sendto = rule_for(&seccomp, "sendto");
        let args = sendto[0]
            .args()
            .as_ref()
            .expect("sendto notifies only with an address");
        assert_eq!(
            (args[0].index(), args[0].op()),
            (4, LinuxSeccompOperator::ScmpCmpNe)
        );
        for name in MANDATORY_DENIALS {
            assert!(traced.denies(name) || *name == "clone3", "{name}");
        }
        // A call the filter already rules on is never turned into a notification.
        let e = base
            .with_notify(&["ptrace"])
            .expect_err("ptrace is refused");
        assert!(e.to_string().contains("ptrace"), "{e}");
    }

    #[test]
    fn weak_or_unknown_filters_are_refused() {
        let without_bpf = BASELINE_JSON.replace("\"bpf\", ", "");
        let e = SeccompPolicy::from_json(&without_bpf).expect_err("bpf allowed");
        assert!(e.to_string().contains("bpf"), "{e}");
        let without_newuser = BASELINE_JSON.replace("268435456", "1");
        assert!(SeccompPolicy::from_json(&without_newuser).is_err());
        let docker_ext =
            BASELINE_JSON.replacen("\"defaultAction\"", "\"archMap\": [], \"defaultAction\"", 1);
        assert!(SeccompPolicy::from_json(&docker_ext).is_err());
        let bad_action = BASELINE_JSON.replace("SCMP_ACT_ERRNO", "SCMP_ACT_PLEASE");
        assert!(SeccompPolicy::from_json(&bad_action).is_err());
        let other_arch = BASELINE_JSON.replace("SCMP_ARCH_X86_64", "SCMP_ARCH_X86");
        assert!(SeccompPolicy::from_json(&other_arch).is_err());
    }
}
