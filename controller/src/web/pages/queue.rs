//! `GET /`: the queue, the most recent jobs first, 100 a page (`?before=<created_ms>` for
//! older ones).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use maud::{Markup, html};

use crate::scheduler::trigger_of;
use crate::state::JobState;
use crate::store::JobRecord;
use crate::web::error::WebError;
use crate::web::session::Session;
use crate::web::{Shared, format, params};

/// Jobs a page lists.
pub(crate) const PAGE: u32 = 100;

/// One row of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) state: JobState,
    pub(crate) profile: String,
    pub(crate) created_ms: i64,
    pub(crate) triggered_by: String,
}

impl From<JobRecord> for QueueRow {
    fn from(job: JobRecord) -> Self {
        Self {
            triggered_by: trigger_of(&job.spec_json)
                .map(|t| t.describe())
                .unwrap_or_default(),
            id: job.id.to_string(),
            name: job.name,
            state: job.state,
            profile: job.profile,
            created_ms: job.created_ms,
        }
    }
}

/// `GET /`.
pub(crate) async fn page(
    State(web): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Markup, WebError> {
    let viewer = web.reader(&headers, "/").await?;
    let before = params::number::<i64>(query.as_deref(), "before")?;
    let jobs = web.scheduler.store().recent_jobs(PAGE, before).await?;
    let full = jobs.len() == usize::try_from(PAGE).unwrap_or(usize::MAX);
    let rows: Vec<QueueRow> = jobs.into_iter().map(QueueRow::from).collect();
    Ok(render(&rows, before.is_some(), full, viewer.as_ref()))
}

/// The queue page: `rows` newest first; `paged` when this is not the first page; `full`
/// when older jobs may follow.
pub(crate) fn render(
    rows: &[QueueRow],
    paged: bool,
    full: bool,
    viewer: Option<&Session>,
) -> Markup {
    let body = html! {
        h1 { "Queue" }
        @if rows.is_empty() {
            p.note #no-jobs { "No jobs yet." }
        } @else {
            table #jobs {
                thead { tr { th { "Job" } th { "Name" } th { "State" } th { "Profile" } th { "Created" } th { "Triggered by" } } }
                tbody {
                    @for row in rows {
                        tr data-job=(row.id) {
                            td.mono { a href={ "/jobs/" (row.id) } { (row.id) } }
                            td { (row.name) }
                            td { span class=(format::state_class(row.state)) { (row.state.as_str()) } }
                            td { (row.profile) }
                            td { (format::time(Some(row.created_ms))) }
                            td { (row.triggered_by) }
                        }
                    }
                }
            }
        }
        p.pager {
            @if paged { a #newest href="/" { "Newest" } " " }
            @if full {
                @if let Some(last) = rows.last() {
                    a #older href={ "/?before=" (last.created_ms) } { "Older" }
                }
            }
        }
    };
    super::layout("Queue", viewer, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::pages::tests::{HOSTILE, assert_escaped};

    #[test]
    fn the_queue_links_jobs_and_pages_and_escapes_names() {
        let row = QueueRow {
            id: "00000000-0000-4000-8000-000000000001".into(),
            name: "build".into(),
            state: JobState::Running,
            profile: "trusted".into(),
            created_ms: 1_796_625_500_000,
            triggered_by: HOSTILE.into(),
        };
        let page = render(&[row], true, true, None).into_string();
        assert!(page.contains(
            r#"<a href="/jobs/00000000-0000-4000-8000-000000000001">00000000-0000-4000-8000-000000000001</a>"#
        ));
        assert!(page.contains(r#"<span class="state state-running">RUNNING</span>"#));
        assert!(page.contains("2026-12-07 06:38:20Z"));
        assert!(
            page.contains(r#"href="/?before=1796625500000""#) && page.contains(r#"id="newest""#)
        );
        assert_escaped(&page);
        let empty = render(&[], false, false, None).into_string();
        assert!(empty.contains("No jobs yet.") && !empty.contains("older"));
    }
}
