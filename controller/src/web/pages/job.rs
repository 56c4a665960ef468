//! `GET /jobs/{id}`: one job: its state and facts, steps, the tail of its log (followed
//! live by `/assets/app.js` while the job runs), attempts, outputs, and for a succeeded job
//! its provenance with download links; a Cancel button for clients that may cancel it.

use airlock_proto::v1 as pb;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use maud::{Markup, html};

use super::provenance::{self, ProvenanceView};
use crate::ids::JobId;
use crate::state::JobState;
use crate::store::LogTail;
use crate::web::error::WebError;
use crate::web::session::Session;
use crate::web::steps::{self, StepView};
use crate::web::{Shared, Web, format, params};

/// How much of the log the page shows: the last 64 KiB.
pub(crate) const LOG_TAIL_BYTES: usize = 64 * 1024;

/// Everything the job page shows.
#[derive(Debug, Clone)]
pub(crate) struct JobPage {
    /// The client view (state, message, attempts, outputs, ...).
    pub(crate) job: pb::Job,
    /// Its state.
    pub(crate) state: JobState,
    /// `job.profile`.
    pub(crate) profile: String,
    /// Its steps.
    pub(crate) steps: Vec<StepView>,
    /// The end of its log.
    pub(crate) log: LogTail,
    /// The last event the page includes: the live tail continues after it.
    pub(crate) seq: u64,
    /// The decoded provenance of a succeeded job (or why it cannot be shown).
    pub(crate) provenance: Option<Result<ProvenanceView, String>>,
}

impl Web {
    /// Loads the job page of `id`.
    pub(crate) async fn job_page(&self, id: JobId) -> Result<JobPage, WebError> {
        let store = self.scheduler.store();
        // The record first: when it is terminal, every event is already stored, so the steps
        // and the log below are complete; when it is not, the live tail takes over at `seq`.
        let record = self.scheduler.job(id).await?;
        let seq = store.last_event_seq(id).await?;
        let step_events = store.step_events(id, seq).await?;
        let log = store.log_tail(id, seq, LOG_TAIL_BYTES).await?;
        let job = self.scheduler.job_view(id).await?;
        let provenance = match (&record.state, &record.provenance) {
            (JobState::Succeeded, Some(p)) => {
                Some(provenance::decode(&p.envelope_json).map_err(|e| e.to_string()))
            }
            _ => None,
        };
        let terminal = record.state.is_terminal();
        Ok(JobPage {
            steps: steps::derive(steps::planned(&record.spec_json), &step_events, terminal),
            state: record.state,
            profile: record.profile,
            log,
            seq,
            provenance,
            job,
        })
    }
}

/// `GET /jobs/{id}`.
pub(crate) async fn page(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Markup, WebError> {
    let id = params::job_id(&raw)?;
    let viewer = web.reader(&headers, &format!("/jobs/{id}")).await?;
    let page = web.job_page(id).await?;
    Ok(render(&page, viewer.as_ref()))
}

/// Whether `viewer` sees a Cancel button for the job.
fn may_cancel(page: &JobPage, viewer: Option<&Session>) -> bool {
    !page.state.is_terminal()
        && !page.job.cancel_requested
        && viewer.is_some_and(|s| s.client.require_cancel(&page.profile).is_ok())
}

/// The job page.
pub(crate) fn render(page: &JobPage, viewer: Option<&Session>) -> Markup {
    let job = &page.job;
    let terminal = page.state.is_terminal();
    let body = html! {
        section #job data-job-id=(job.job_id) data-seq=(page.seq)
            data-terminal=(if terminal { "true" } else { "false" }) {
            h1 { (job.name) " " span.mono.note { (job.job_id) } }
            dl.facts {
                dt { "State" }
                dd {
                    span #job-state class=(format::state_class(page.state)) { (page.state.as_str()) }
                    @if job.cancel_requested && !terminal { " " span.note { "(cancel requested)" } }
                }
                dt { "Message" } dd #job-message { (job.message) }
                dt { "Exit code" } dd #job-exit-code { (job.exit_code) }
                dt { "Priority" } dd #job-priority { (job.priority) }
                dt { "Profile" } dd #job-profile { (page.profile) }
                dt { "Triggered by" } dd #job-triggered-by { (job.triggered_by) }
                dt { "Created" } dd { (format::time(Some(job.created_at_ms))) }
                dt { "Started" } dd { (format::time(Some(job.started_at_ms))) }
                dt { "Finished" } dd { (format::time(Some(job.finished_at_ms))) }
                dt { "Runner" } dd.mono { (job.runner_id) }
                @if !job.builder_id.is_empty() { dt { "Builder" } dd.mono #job-builder { (job.builder_id) } }
            }
            @if may_cancel(page, viewer) {
                @if let Some(session) = viewer {
                    form.actions method="post" action={ "/jobs/" (job.job_id) "/cancel" } {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        button.danger #cancel type="submit" { "Cancel job" }
                    }
                }
            }
            @if !terminal { p.live #live-status { "Live: following the job." } }
            h2 { "Steps" }
            ol #steps {
                @for step in &page.steps { (step_item(step)) }
            }
            h2 { "Log" }
            @if page.log.truncated {
                p.note #log-truncated { "Showing the last " (format::size(LOG_TAIL_BYTES as u64)) " of the log." }
            }
            pre #log { (String::from_utf8_lossy(&page.log.data)) }
            h2 { "Attempts" }
            (attempts(&job.attempts))
            h2 { "Outputs" }
            (outputs(&job.outputs))
            @if let Some(provenance) = &page.provenance {
                h2 { "Provenance" }
                (provenance_section(&job.job_id, provenance))
            }
        }
    };
    super::layout(&job.name, viewer, body)
}

fn step_item(step: &StepView) -> Markup {
    html! {
        li class={ "step step-" (step.status.as_str()) } data-index=(step.index) data-step=(step.name) {
            span.step-name { (step.name) } " "
            span.step-status {
                (step.status.as_str())
                @if let Some(code) = step.exit_code { " (exit " (code) ")" }
            }
            @if let Some(ms) = step.duration_ms {
                " " span.note.step-duration { (format::duration_ms(ms)) }
            }
        }
    }
}

fn attempts(attempts: &[pb::Attempt]) -> Markup {
    html! {
        @if attempts.is_empty() {
            p.note { "Not leased yet." }
        } @else {
            table #attempts {
                thead { tr { th { "#" } th { "Runner" } th { "Leased" } th { "Ended" } th { "State" } th { "Reason" } } }
                tbody {
                    @for a in attempts {
                        tr {
                            td { (a.attempt) }
                            td.mono { (a.runner_id) }
                            td { (format::time(Some(a.leased_at_ms))) }
                            td { (format::time(Some(a.finished_at_ms))) }
                            td { (proto_state_name(a.state)) }
                            td { (a.reason) }
                        }
                    }
                }
            }
        }
    }
}

/// `SUCCEEDED` for the proto's wire value; `-` for none.
fn proto_state_name(state: i32) -> &'static str {
    match pb::JobState::try_from(state) {
        Ok(pb::JobState::Unspecified) | Err(_) => "-",
        Ok(s) => s.as_str_name().trim_start_matches("JOB_STATE_"),
    }
}

fn outputs(outputs: &[pb::OutputFile]) -> Markup {
    html! {
        @if outputs.is_empty() {
            p.note { "No outputs recorded." }
        } @else {
            table #outputs {
                thead { tr { th { "Path" } th { "sha256" } th { "Size" } } }
                tbody {
                    @for o in outputs {
                        tr {
                            td.mono { (o.path) @if o.executable { " " span.note { "(executable)" } } }
                            td.mono { (o.sha256) }
                            td { (format::size(o.size)) }
                        }
                    }
                }
            }
        }
    }
}

fn provenance_section(job_id: &str, provenance: &Result<ProvenanceView, String>) -> Markup {
    html! {
        p {
            a #download-intoto href={ "/jobs/" (job_id) "/provenance.intoto.jsonl" } { "provenance.intoto.jsonl" }
            " (DSSE envelope) · "
            a #download-sigstore href={ "/jobs/" (job_id) "/provenance.sigstore.json" } { "provenance.sigstore.json" }
            " (Sigstore bundle). Check them with " code { "airlock verify" } "."
        }
        p {
            "SBOM: "
            a #download-spdx href={ "/jobs/" (job_id) "/sbom.spdx.json" } { "sbom.spdx.json" }
            " (SPDX 2.3) · "
            a #download-cdx href={ "/jobs/" (job_id) "/sbom.cdx.json" } { "sbom.cdx.json" }
            " (CycloneDX 1.6) · "
            a #download-sbom-intoto href={ "/jobs/" (job_id) "/sbom.intoto.jsonl" } { "sbom.intoto.jsonl" }
            " (signed statement)."
        }
        @match provenance {
            Ok(view) => {
                dl.facts {
                    dt { "Payload type" } dd.mono { (view.payload_type) }
                    dt { "Key id" } dd.mono #provenance-keyid { (view.keyids.join(", ")) }
                }
                pre.json #provenance-statement { (view.statement) }
            }
            Err(why) => { p.error #provenance-error { (why) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::web::pages::tests::{HOSTILE, assert_escaped, session};
    use crate::web::steps::StepStatus;

    fn fake(state: JobState) -> JobPage {
        JobPage {
            job: pb::Job {
                job_id: "00000000-0000-4000-8000-000000000001".into(),
                name: "hostile".into(),
                state: state.to_proto_i32(),
                message: HOSTILE.into(),
                exit_code: 3,
                priority: 5,
                triggered_by: HOSTILE.into(),
                attempts: vec![pb::Attempt {
                    attempt: 1,
                    runner_id: "r1".into(),
                    leased_at_ms: 1,
                    finished_at_ms: 0,
                    state: 0,
                    reason: HOSTILE.into(),
                }],
                outputs: vec![pb::OutputFile {
                    path: HOSTILE.into(),
                    sha256: "ab".repeat(32),
                    size: 2048,
                    executable: false,
                }],
                ..Default::default()
            },
            state,
            profile: "untrusted-pr".into(),
            steps: vec![StepView {
                index: 0,
                name: HOSTILE.into(),
                status: StepStatus::Failed,
                exit_code: Some(3),
                duration_ms: Some(1500),
            }],
            log: LogTail {
                data: format!("line one\n{HOSTILE}\n").into_bytes(),
                truncated: true,
            },
            seq: 42,
            provenance: Some(Ok(ProvenanceView {
                payload_type: "application/vnd.in-toto+json".into(),
                keyids: vec!["k1".into()],
                statement: format!("{{\"subject\": \"{HOSTILE}\"}}"),
            })),
        }
    }

    #[test]
    fn every_job_value_is_escaped() {
        let page = render(&fake(JobState::Running), None).into_string();
        assert_escaped(&page);
        // Each hostile field shows up escaped: message, trigger, reason, step (text and
        // attribute), log, output path, statement.
        assert!(
            page.matches("&lt;script&gt;alert(1)").count() >= 8,
            "{page}"
        );
        assert!(page.contains(
            r#"data-step="&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;""#
        ));
        assert_eq!(page.matches("<script").count(), 1, "only the app.js tag");
    }

    #[test]
    fn the_page_carries_what_the_live_tail_needs() {
        let page = render(&fake(JobState::Running), None).into_string();
        assert!(page.contains(r#"data-job-id="00000000-0000-4000-8000-000000000001""#));
        assert!(page.contains(r#"data-seq="42""#) && page.contains(r#"data-terminal="false""#));
        assert!(page.contains(r#"id="job-state" class="state state-running">RUNNING<"#));
        assert!(page.contains(r#"class="step step-failed" data-index="0""#));
        assert!(page.contains("failed (exit 3)") && page.contains("1.5 s"));
        assert!(page.contains(r#"id="log-truncated""#) && page.contains("64.0 KiB"));
        assert!(page.contains(r#"id="live-status""#));
        let done = render(&fake(JobState::Succeeded), None).into_string();
        assert!(done.contains(r#"data-terminal="true""#) && !done.contains("live-status"));
        assert!(done.contains(
            r#"href="/jobs/00000000-0000-4000-8000-000000000001/provenance.intoto.jsonl""#
        ));
        assert!(done.contains(r#"id="provenance-statement""#));
    }

    #[test]
    fn only_clients_that_may_cancel_see_the_button() {
        let running = fake(JobState::Running);
        let button = |viewer: Option<&Session>| {
            render(&running, viewer)
                .into_string()
                .contains(r#"id="cancel""#)
        };
        assert!(!button(None));
        assert!(!button(Some(&session("dash", Role::Read))));
        assert!(button(Some(&session("ops", Role::Admin))));
        let with_button = render(&running, Some(&session("ops", Role::Admin))).into_string();
        assert!(
            with_button.contains(r#"action="/jobs/00000000-0000-4000-8000-000000000001/cancel""#)
        );
        let done = fake(JobState::Failed);
        assert!(
            !render(&done, Some(&session("ops", Role::Admin)))
                .into_string()
                .contains(r#"id="cancel""#)
        );
    }

    #[test]
    fn attempt_states_read_as_names() {
        assert_eq!(
            proto_state_name(JobState::TimedOut.to_proto_i32()),
            "TIMED_OUT"
        );
        assert_eq!(proto_state_name(0), "-");
        assert_eq!(proto_state_name(99), "-");
    }
}
