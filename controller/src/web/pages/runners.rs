//! `GET /runners`: the registered runners, most recent first: labels, version, whether
//! they are online (hold an unexpired runner token), their last lease and the jobs they hold.

use axum::extract::State;
use axum::http::HeaderMap;
use maud::{Markup, html};

use crate::store::RunnerActivity;
use crate::web::error::WebError;
use crate::web::session::Session;
use crate::web::{Shared, format};

/// Runners the page lists.
const LIMIT: u32 = 200;

/// `GET /runners`.
pub(crate) async fn page(
    State(web): State<Shared>,
    headers: HeaderMap,
) -> Result<Markup, WebError> {
    let viewer = web.reader(&headers, "/runners").await?;
    let runners = web.scheduler.store().runner_activity(LIMIT).await?;
    Ok(render(&runners, web.scheduler.now_ms(), viewer.as_ref()))
}

/// The runners page at `now_ms`.
pub(crate) fn render(runners: &[RunnerActivity], now_ms: i64, viewer: Option<&Session>) -> Markup {
    let body = html! {
        h1 { "Runners" }
        @if runners.is_empty() {
            p.note #no-runners { "No runner has registered yet." }
        } @else {
            table #runners {
                thead { tr {
                    th { "Name" } th { "Labels" } th { "Status" } th { "Last lease" }
                    th { "Jobs" } th { "Version" } th { "Registration" } th { "Registered" }
                } }
                tbody {
                    @for a in runners {
                        @let online = a.token_expires_ms.is_some_and(|t| t > now_ms);
                        tr data-runner=(a.runner.id) {
                            td { (a.runner.name) br; span.mono.note { (a.runner.id) } }
                            td { (a.runner.labels.join(", ")) }
                            td {
                                @if online {
                                    span.state.state-succeeded { "online" }
                                    br; span.note { "token valid until " (format::time(a.token_expires_ms)) }
                                } @else {
                                    span.state.state-cancelled { "offline" }
                                }
                            }
                            td { (format::time(a.last_leased_ms)) }
                            td {
                                @for job in &a.jobs {
                                    a href={ "/jobs/" (job.id) } { (job.name) }
                                    " " span class=(format::state_class(job.state)) { (job.state.as_str()) }
                                    br;
                                }
                            }
                            td { (a.runner.version) }
                            td { (a.runner.registration) }
                            td { (format::time(Some(a.runner.registered_ms))) }
                        }
                    }
                }
            }
        }
    };
    super::layout("Runners", viewer, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{JobId, RunnerId};
    use crate::state::JobState;
    use crate::store::{HeldJob, RunnerRecord};
    use crate::web::pages::tests::{HOSTILE, assert_escaped};

    #[test]
    fn runners_show_status_and_jobs_escaped() {
        let activity = |token_expires_ms| RunnerActivity {
            runner: RunnerRecord {
                id: RunnerId::new(uuid::Uuid::from_u128(7)),
                name: HOSTILE.into(),
                labels: vec!["linux".into(), "x86_64".into()],
                version: "0.1.0".into(),
                registered_ms: 1,
                registration: "default".into(),
            },
            token_expires_ms,
            last_leased_ms: Some(1_796_625_500_000),
            jobs: vec![HeldJob {
                id: JobId::new(uuid::Uuid::from_u128(9)),
                name: "build".into(),
                state: JobState::Running,
            }],
        };
        let page = render(&[activity(Some(2_000))], 1_000, None).into_string();
        assert!(page.contains(">online<") && page.contains("linux, x86_64"));
        assert!(page.contains(r#"<a href="/jobs/00000000-0000-0000-0000-000000000009">build</a>"#));
        assert!(page.contains("2026-12-07 06:38:20Z"));
        assert_escaped(&page);
        let offline = render(&[activity(Some(500))], 1_000, None).into_string();
        assert!(offline.contains(">offline<"));
        assert!(render(&[], 0, None).into_string().contains("No runner"));
    }
}
