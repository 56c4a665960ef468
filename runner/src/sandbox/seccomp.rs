//! The seccomp policy of a sandbox: a deny-list on top of an allow-by-default filter.
//!
//! The baseline denies what a build step never needs and what widens the kernel attack
//! surface: mounting, namespace creation and joining (including `clone(CLONE_NEWUSER)`),
//! keyrings, BPF, perf, tracing other processes, kernel modules, kexec, swap, reboot,
//! clock changes and the new mount API. Denied calls fail with `EPERM`, so well-behaved
//! programs see an ordinary permission error. `clone3` fails with `ENOSYS` instead: its flags
//! live in a struct that seccomp cannot inspect, and `ENOSYS` makes glibc fall back to
//! `clone`, whose flags the filter does check.
//!
//! The filter is x86_64 only: libseccomp kills a process that makes a system call through
//! another ABI (i386 `int 0x80`, x32), so those cannot be used to bypass the rules.

use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use super::SandboxError;

/// `CLONE_NEWUSER` from `<linux/sched.h>`.
const CLONE_NEWUSER: u64 = 0x1000_0000;

/// System calls the baseline policy answers with `EPERM`.
const BASELINE_EPERM: &[&str] = &[
    // mounting and the new mount API
    "mount",
    "umount2",
    "pivot_root",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fspick",
    // namespaces
    "unshare",
    "setns",
    // keyrings
    "keyctl",
    "add_key",
    "request_key",
    // BPF, perf, tracing and other processes' memory
    "bpf",
    "perf_event_open",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    // kernel code
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    // misc. attack surface and host administration
    "userfaultfd",
    "open_by_handle_at",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "settimeofday",
    "clock_settime",
    // io_uring runs operations outside the reach of seccomp (beyond the original brief)
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// System calls the baseline policy answers with `ENOSYS` (so libc falls back).
const BASELINE_ENOSYS: &[&str] = &["clone3"];

/// A seccomp policy: default allow, with named system calls refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeccompPolicy {
    /// System calls that fail with `EPERM`.
    pub deny_eperm: Vec<String>,
    /// System calls that fail with `ENOSYS`, for which libc has a fallback.
    pub deny_enosys: Vec<String>,
    /// Whether `clone` with `CLONE_NEWUSER` in its flags fails with `EPERM`.
    pub deny_clone_newuser: bool,
}

impl Default for SeccompPolicy {
    fn default() -> Self {
        Self::baseline()
    }
}

impl SeccompPolicy {
    /// The baseline policy described in the module documentation.
    pub fn baseline() -> Self {
        Self {
            deny_eperm: BASELINE_EPERM.iter().map(|s| (*s).to_owned()).collect(),
            deny_enosys: BASELINE_ENOSYS.iter().map(|s| (*s).to_owned()).collect(),
            deny_clone_newuser: true,
        }
    }

    /// Whether the policy refuses `syscall` unconditionally.
    pub fn denies(&self, syscall: &str) -> bool {
        self.deny_eperm
            .iter()
            .chain(&self.deny_enosys)
            .any(|s| s == syscall)
    }

    /// The policy as the `linux.seccomp` section of an OCI runtime spec.
    pub fn to_oci(&self) -> Result<LinuxSeccomp, SandboxError> {
        let mut rules: Vec<LinuxSyscall> = Vec::new();
        if !self.deny_eperm.is_empty() {
            rules.push(errno_rule(&self.deny_eperm, Errno::EPERM)?);
        }
        if !self.deny_enosys.is_empty() {
            rules.push(errno_rule(&self.deny_enosys, Errno::ENOSYS)?);
        }
        if self.deny_clone_newuser {
            let flags_have_newuser = LinuxSeccompArgBuilder::default()
                .index(0usize)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .value(CLONE_NEWUSER)
                .value_two(CLONE_NEWUSER)
                .build()?;
            rules.push(
                LinuxSyscallBuilder::default()
                    .names(vec!["clone".to_owned()])
                    .action(LinuxSeccompAction::ScmpActErrno)
                    .errno_ret(Errno::EPERM as u32)
                    .args(vec![flags_have_newuser])
                    .build()?,
            );
        }
        Ok(LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .architectures(vec![Arch::ScmpArchX86_64])
            .syscalls(rules)
            .build()?)
    }
}

/// One rule: every name in `names` fails with `errno`.
fn errno_rule(names: &[String], errno: Errno) -> Result<LinuxSyscall, SandboxError> {
    Ok(LinuxSyscallBuilder::default()
        .names(names.to_vec())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno as u32)
        .build()?)
}

#[cfg(test)]
mod tests {
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
    fn baseline_denies_the_dangerous_calls_with_eperm() {
        let seccomp = SeccompPolicy::baseline().to_oci().expect("seccomp");
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(
            seccomp.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
        for name in [
            "mount",
            "unshare",
            "setns",
            "bpf",
            "ptrace",
            "keyctl",
            "pivot_root",
        ] {
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
        let seccomp = SeccompPolicy::baseline().to_oci().expect("seccomp");
        let clone3 = rule_for(&seccomp, "clone3");
        assert_eq!(clone3[0].errno_ret(), Some(Errno::ENOSYS as u32));
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
    fn empty_policy_has_no_rules() {
        let policy = SeccompPolicy {
            deny_eperm: vec![],
            deny_enosys: vec![],
            deny_clone_newuser: false,
        };
        let seccomp = policy.to_oci().expect("seccomp");
        assert_eq!(seccomp.syscalls().as_ref().map(Vec::len), Some(0));
        assert!(!policy.denies("mount"));
    }
}
