//! Phase 3b, after the outputs are collected: the image's and the lockfile's packages looked
//! up in the runner's OSV database, every finding reported for the SBOM, and the profile's
//! vulnerability gate (`[sbom] deny_vulnerable`) applied.

use airlock_attest::sbom::os_package_purl;
use airlock_proto::v1 as pb;

use super::Runner;
use super::prepare::PreparedJob;
use crate::fetch::prepare::ResolvedInputs;
use crate::profile::Profile;
use crate::report::events::EventSink;
use crate::vulns::{Finding, Severity, gate};

/// Most findings named in a gate failure's message (all are in the SBOM).
const LISTED: usize = 20;

impl Runner {
    /// A profile with a gate needs a database: a job of it on a runner without `--osv-db`
    /// fails before any step instead of passing unchecked.
    pub(super) fn gate_is_checkable(&self, profile: &Profile) -> Result<(), String> {
        match (profile.sbom.deny_vulnerable, &self.cfg.osv) {
            (Some(threshold), None) => Err(format!(
                "profile `{}` has a vulnerability gate ([sbom] deny_vulnerable = \"{threshold}\"), \
                 but this runner has no OSV database: start it with --osv-db DIR",
                profile.name
            )),
            _ => Ok(()),
        }
    }

    /// Looks the job's packages up, records the findings in `resolved` and, when the gate
    /// refuses them, why. `Err` is an infrastructure failure (a purl the database cannot
    /// read).
    pub(super) async fn check_vulnerabilities(
        &self,
        events: &EventSink,
        profile: &Profile,
        prepared: &PreparedJob,
        resolved: &mut ResolvedInputs,
    ) -> Result<(), String> {
        let Some(db) = self.cfg.osv.clone() else {
            return Ok(());
        };
        let contents = &prepared.image_contents;
        let mut purls = Vec::with_capacity(contents.packages.len() + resolved.dependencies.len());
        for package in &contents.packages {
            purls.push(
                os_package_purl(package, contents.os.as_ref())
                    .map_err(|e| format!("vulnerability check: {e}"))?,
            );
        }
        purls.extend(resolved.dependencies.iter().map(|d| d.purl.clone()));
        let findings = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for purl in &purls {
                all.extend(
                    db.affecting(purl)
                        .map_err(|e| format!("vulnerability check: {e}"))?,
                );
            }
            Ok::<_, String>(all)
        })
        .await
        .map_err(|e| format!("the vulnerability check panicked: {e}"))??;

        events
            .system(
                0,
                format!(
                    "vulnerabilities: {} known in the image's and the lockfile's packages{}",
                    findings.len(),
                    summary(&findings)
                ),
            )
            .await;
        resolved.vulnerabilities = findings.iter().map(finding_proto).collect();
        if let Some(threshold) = profile.sbom.deny_vulnerable {
            let refused = gate(&findings, threshold, profile.sbom.deny_unrated);
            if !refused.is_empty() {
                let message = gate_message(
                    &profile.name,
                    threshold,
                    profile.sbom.deny_unrated,
                    &refused,
                );
                events.system(0, message.clone()).await;
                resolved.gate_failure = Some(message);
            }
        }
        Ok(())
    }
}

/// ` (2 CRITICAL, 1 HIGH)`, or nothing.
fn summary(findings: &[Finding]) -> String {
    let counts: Vec<String> = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ]
    .iter()
    .filter_map(|s| {
        let n = findings.iter().filter(|f| f.severity == *s).count();
        (n > 0).then(|| format!("{n} {s}"))
    })
    .collect();
    if counts.is_empty() {
        String::new()
    } else {
        format!(" ({})", counts.join(", "))
    }
}

/// The job's failure message: the threshold and each advisory at or above it, with the
/// packages it affects (one advisory of a source package names all its binary packages).
fn gate_message(profile: &str, threshold: Severity, unrated: bool, refused: &[&Finding]) -> String {
    let mut advisories: Vec<(&Finding, Vec<&str>)> = Vec::new();
    for f in refused {
        // The qualifiers (arch, distro, upstream) are in the SBOM; the message stays short.
        let package = f.purl.split_once('?').map_or(f.purl.as_str(), |(p, _)| p);
        match advisories.iter_mut().find(|(a, _)| a.id == f.id) {
            Some((_, packages)) => packages.push(package),
            None => advisories.push((f, vec![package])),
        }
    }
    let packages: std::collections::BTreeSet<&str> = advisories
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let list: Vec<String> = advisories
        .iter()
        .take(LISTED)
        .map(|(f, packages)| {
            let score = f.score.map(|s| format!(" {s:.1}")).unwrap_or_default();
            let fixed = f
                .fixed_version
                .as_ref()
                .map(|v| format!(", fixed in {v}"))
                .unwrap_or_default();
            format!(
                "{} ({}{score}) in {}{fixed}",
                f.id,
                f.severity,
                packages.join(", ")
            )
        })
        .collect();
    let more = advisories.len().saturating_sub(LISTED);
    format!(
        "vulnerability gate of profile `{profile}` ({threshold}{}): {} advisor{} in {} package{}: \
         {}{}; the SBOM lists every finding",
        if unrated { " or unrated" } else { "" },
        advisories.len(),
        if advisories.len() == 1 { "y" } else { "ies" },
        packages.len(),
        if packages.len() == 1 { "" } else { "s" },
        list.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    )
}

fn finding_proto(f: &Finding) -> pb::VulnerabilityFinding {
    pb::VulnerabilityFinding {
        id: f.id.clone(),
        aliases: f.aliases.clone(),
        purl: f.purl.clone(),
        severity: f.severity.to_string().to_ascii_lowercase(),
        score: f.score,
        summary: f.summary.clone().unwrap_or_default(),
        fixed_version: f.fixed_version.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, severity: Severity, score: Option<f64>) -> Finding {
        Finding {
            id: id.into(),
            aliases: vec![],
            purl: "pkg:cargo/a@1.0.0".into(),
            summary: None,
            severity,
            score,
            fixed_version: Some("1.0.1".into()),
            modified: None,
        }
    }

    #[test]
    fn the_gate_message_names_the_threshold_and_each_finding() {
        let a = finding("GHSA-1", Severity::Critical, Some(9.8));
        let b = finding("GHSA-2", Severity::High, None);
        let mut a2 = a.clone();
        a2.purl = "pkg:cargo/b@2.0.0?x=y".into();
        let message = gate_message("release", Severity::High, false, &[&a, &a2, &b]);
        assert!(
            message.starts_with(
                "vulnerability gate of profile `release` (HIGH): 2 advisories in 2 packages:"
            ),
            "{message}"
        );
        assert!(
            message.contains(
                "GHSA-1 (CRITICAL 9.8) in pkg:cargo/a@1.0.0, pkg:cargo/b@2.0.0, fixed in 1.0.1"
            ),
            "{message}"
        );
        assert!(message.contains("GHSA-2 (HIGH) in"), "{message}");
        assert_eq!(summary(&[a.clone(), b, a]), " (2 CRITICAL, 1 HIGH)");
        assert_eq!(summary(&[]), "");
        let p = finding_proto(&finding("X", Severity::Medium, Some(5.0)));
        assert_eq!((p.severity.as_str(), p.score), ("medium", Some(5.0)));
    }
}
