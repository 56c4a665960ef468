//! SBOMs through the real gRPC API (issue 20): the controller makes and signs one beside the
//! provenance of every success, from the runner's image package report; a job its profile's
//! vulnerability gate failed keeps a signed SBOM and gets no provenance; a report that does
//! not check out (a malformed package, a finding about a package the SBOM does not list)
//! fails the job with no SBOM at all.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use airlock_attest::Envelope;
use airlock_attest::sbom::SbomStatement;
use airlock_proto::v1 as pb;
use common::*;
use serde_json::Value;
use tonic::Code;

const SOURCE: &[u8] = b"a canonical tar of the source tree";
const HELLO: &[u8] = b"\x7fELF pretend binary";

async fn leased(tc: &TestController) -> (Jobs, Runners, pb::Lease) {
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: spec_json(&source, &["linux"]),
        ..Default::default()
    })
    .await
    .unwrap();
    let runner_id = register(&mut runners, &["linux"]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.expect("a lease");
    upload_output(&mut runners, &lease, "hello", HELLO).await;
    (jobs, runners, lease)
}

fn contents() -> pb::ImageContents {
    pb::ImageContents {
        os: Some(pb::OsRelease {
            id: "debian".into(),
            version_id: "12".into(),
            version_codename: "bookworm".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
        }),
        packages: vec![pb::OsPackage {
            manager: "dpkg".into(),
            name: "libc6".into(),
            version: "2.36-9+deb12u4".into(),
            architecture: "amd64".into(),
            source_name: "glibc".into(),
            licenses: vec!["GPL-2+".into()],
            ..Default::default()
        }],
        databases: vec!["/var/lib/dpkg/status".into()],
        unsupported: vec![],
    }
}

const LIBC_PURL: &str =
    "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc";

fn finding() -> pb::VulnerabilityFinding {
    pb::VulnerabilityFinding {
        id: "CVE-2026-0001".into(),
        purl: LIBC_PURL.into(),
        severity: "high".into(),
        score: Some(7.5),
        summary: "a bug in glibc".into(),
        ..Default::default()
    }
}

async fn provenance(
    jobs: &mut Jobs,
    lease: &pb::Lease,
) -> Result<pb::ProvenanceDocuments, tonic::Status> {
    jobs.get_provenance(pb::GetProvenanceRequest {
        job_id: lease.job_id.clone(),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn job(jobs: &mut Jobs, lease: &pb::Lease) -> pb::Job {
    jobs.get_job(pb::GetJobRequest {
        job_id: lease.job_id.clone(),
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn a_success_has_a_signed_sbom_beside_its_provenance() {
    let tc = TestController::start().await;
    let (mut jobs, mut runners, lease) = leased(&tc).await;
    let mut report = complete_request(
        &lease,
        pb::Outcome::Succeeded,
        vec![output_file("hello", HELLO)],
    );
    report.image_contents = Some(contents());
    report.vulnerabilities = vec![finding()];
    let done = runners.complete_job(report).await.unwrap().into_inner();
    assert_eq!(done.state(), pb::JobState::Succeeded);

    let docs = provenance(&mut jobs, &lease).await.unwrap();
    assert!(!docs.envelope_json.is_empty());
    let envelope = Envelope::from_json(docs.sbom_envelope_json.trim_end().as_bytes()).unwrap();
    assert_eq!(
        envelope.signatures[0].keyid, docs.keyid,
        "one key signs both"
    );
    let statement = SbomStatement::verify(&envelope, std::slice::from_ref(&tc.public_key)).unwrap();
    let spdx: Value = serde_json::from_str(&docs.spdx_json).unwrap();
    assert_eq!(
        statement.predicate, spdx,
        "the statement carries the SPDX document"
    );
    assert_eq!(statement.subject.len(), 1);
    assert_eq!(statement.subject[0].name.as_deref(), Some("hello"));
    let libc = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "libc6")
        .unwrap();
    assert_eq!(libc["versionInfo"], "2.36-9+deb12u4");
    assert_eq!(libc["externalRefs"][0]["referenceLocator"], LIBC_PURL);
    assert!(
        spdx["documentNamespace"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/jobs/{}/attempts/1/sbom", lease.job_id))
    );
    let cdx: Value = serde_json::from_str(&docs.cyclonedx_json).unwrap();
    assert_eq!(cdx["specVersion"], "1.6");
    assert_eq!(cdx["vulnerabilities"][0]["id"], "CVE-2026-0001");
    assert_eq!(cdx["vulnerabilities"][0]["ratings"][0]["severity"], "high");
    // Another key does not verify it.
    let other = airlock_attest::SigningKey::generate().unwrap();
    assert!(SbomStatement::verify(&envelope, &[other.verifying_key().clone()]).is_err());
    tc.stop().await;
}

#[tokio::test]
async fn a_gate_failure_keeps_a_signed_sbom_and_gets_no_provenance() {
    let tc = TestController::start().await;
    let (mut jobs, mut runners, lease) = leased(&tc).await;
    let mut report = complete_request(
        &lease,
        pb::Outcome::Failed,
        vec![output_file("hello", HELLO)],
    );
    report.message = "vulnerability gate (HIGH): CVE-2026-0001 in libc6".into();
    report.vulnerability_gate_failed = true;
    report.image_contents = Some(contents());
    report.vulnerabilities = vec![finding()];
    let done = runners.complete_job(report).await.unwrap().into_inner();
    assert_eq!(done.state(), pb::JobState::Failed);
    let j = job(&mut jobs, &lease).await;
    assert!(j.message.contains("CVE-2026-0001"), "{}", j.message);
    assert!(j.builder_id.is_empty());

    let docs = provenance(&mut jobs, &lease).await.unwrap();
    assert!(
        docs.envelope_json.is_empty() && docs.bundle_json.is_empty(),
        "no provenance"
    );
    let envelope = Envelope::from_json(docs.sbom_envelope_json.trim_end().as_bytes()).unwrap();
    SbomStatement::verify(&envelope, std::slice::from_ref(&tc.public_key)).unwrap();
    let cdx: Value = serde_json::from_str(&docs.cyclonedx_json).unwrap();
    assert_eq!(cdx["vulnerabilities"][0]["id"], "CVE-2026-0001");
    tc.stop().await;
}

#[tokio::test]
async fn a_plain_failure_has_neither() {
    let tc = TestController::start().await;
    let (mut jobs, mut runners, lease) = leased(&tc).await;
    let done = runners
        .complete_job(complete_request(&lease, pb::Outcome::Failed, vec![]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), pb::JobState::Failed);
    let err = provenance(&mut jobs, &lease).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    tc.stop().await;
}

#[tokio::test]
async fn reports_that_do_not_check_out_fail_the_job_without_an_sbom() {
    type Spoil = fn(&mut pb::CompleteJobRequest);
    let cases: [(&str, Spoil, &str); 4] = [
        (
            "control character",
            |r| {
                r.image_contents.as_mut().unwrap().packages[0].version = "1\n2".into();
            },
            "image package 0",
        ),
        (
            "unknown manager",
            |r| {
                r.image_contents.as_mut().unwrap().packages[0].manager = "pacman".into();
            },
            "manager",
        ),
        (
            "finding about an unlisted package",
            |r| {
                r.vulnerabilities[0].purl = "pkg:deb/debian/openssl@3.0.0".into();
            },
            "not in the SBOM",
        ),
        (
            "gate failure with a wrong output digest",
            |r| {
                r.outcome = pb::Outcome::Failed as i32;
                r.vulnerability_gate_failed = true;
                r.outputs[0].sha256 = "0".repeat(64);
            },
            "output verification failed",
        ),
    ];
    for (what, spoil, expected) in cases {
        let tc = TestController::start().await;
        let (mut jobs, mut runners, lease) = leased(&tc).await;
        let mut report = complete_request(
            &lease,
            pb::Outcome::Succeeded,
            vec![output_file("hello", HELLO)],
        );
        report.image_contents = Some(contents());
        report.vulnerabilities = vec![finding()];
        spoil(&mut report);
        let done = runners.complete_job(report).await.unwrap().into_inner();
        assert_eq!(done.state(), pb::JobState::InfraFailed, "{what}");
        let j = job(&mut jobs, &lease).await;
        assert!(j.message.contains(expected), "{what}: {}", j.message);
        let err = provenance(&mut jobs, &lease).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{what}");
        tc.stop().await;
    }
}
