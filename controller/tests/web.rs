//! The web pages over real HTTP/1.1 on the controller's listen address: logging in with an
//! API token, sessions (expiry by the injected clock, a client dropped from the
//! configuration), CSRF refusals, the security headers, escaping of everything a job says,
//! the live tail's JSON, provenance downloads and the Cancel button's POST.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;
mod web_support;

use std::time::Duration;

use airlock_proto::v1 as pb;
use common::*;
use web_support::*;

#[tokio::test]
async fn pages_need_a_login_and_show_a_job_escaped() {
    let state = tempfile::tempdir().unwrap();
    let tc = controller(state.path(), false, false).await;
    let job = hostile_job(&tc).await;
    let page = format!("/jobs/{job}");

    // Without a session: pages redirect to the form, the JSON endpoint answers 401.
    let r = get(&tc, &page, None).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let next = format!("/login?next=%2Fjobs%2F{job}");
    assert_eq!(r.header("location"), Some(next.as_str()));
    for path in ["/", "/runners", &format!("{page}/provenance.intoto.jsonl")] {
        assert_eq!(get(&tc, path, None).await.status, 303, "{path}");
    }
    let r = get(&tc, &format!("{page}/events?after=0"), None).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("\"error\""), "{}", r.body);
    assert_eq!(get(&tc, "/login", None).await.status, 200);
    assert_eq!(get(&tc, "/assets/app.js", None).await.status, 200);

    // A wrong token, or a login from another origin, starts no session.
    let r = login(&tc, "not-a-token", &page).await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    assert!(r.body.contains("belongs to no configured client"));
    let foreign = http(
        &tc,
        "POST",
        "/login",
        &[("Origin", "https://evil.example")],
        &format!("token={API_TOKEN}"),
    )
    .await;
    assert_eq!(
        (foreign.status, foreign.header("set-cookie")),
        (403, None),
        "{}",
        foreign.body
    );
    let bare = http(&tc, "POST", "/login", &[], &format!("token={API_TOKEN}")).await;
    assert_eq!((bare.status, bare.header("set-cookie")), (403, None));

    // The right token: a strict, HttpOnly, Secure (the issuer is https) session cookie.
    let r = login(&tc, API_TOKEN, &page).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some(page.as_str()));
    let set = r.header("set-cookie").unwrap();
    for part in [
        "airlock_session=airlock-ws_",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
    ] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains(API_TOKEN));
    let cookie = r.cookie();

    let r = get(&tc, &page, Some(&cookie)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-security-policy"),
        Some(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("same-origin"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.body
            .contains(r#"id="job-state" class="state state-succeeded">SUCCEEDED<"#)
    );
    assert!(
        r.body.contains(&format!(r#"data-step="{ESCAPED}""#)),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(&format!("building\n{ESCAPED}\n")),
        "the log, escaped"
    );
    assert!(!r.body.contains("<script>alert") && !r.body.contains("<img"));
    assert!(r.body.contains(r#"id="provenance-statement""#));
    assert!(r.body.contains("https://in-toto.io/Statement/v1"));
    assert!(r.body.contains("Logged in as"), "{}", r.body);

    // The downloads are the stored documents.
    let docs = tc
        .jobs()
        .await
        .get_provenance(pb::GetProvenanceRequest {
            job_id: job.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let r = get(
        &tc,
        &format!("{page}/provenance.intoto.jsonl"),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, docs.envelope_json.as_str())
    );
    assert!(
        r.header("content-disposition")
            .unwrap()
            .contains("hello.intoto.jsonl")
    );
    let r = get(
        &tc,
        &format!("{page}/provenance.sigstore.json"),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, docs.bundle_json.as_str())
    );
    for (file, body, name) in [
        ("sbom.spdx.json", &docs.spdx_json, "hello.spdx.json"),
        ("sbom.cdx.json", &docs.cyclonedx_json, "hello.cdx.json"),
        (
            "sbom.intoto.jsonl",
            &docs.sbom_envelope_json,
            "hello.sbom.intoto.jsonl",
        ),
    ] {
        let r = get(&tc, &format!("{page}/{file}"), Some(&cookie)).await;
        assert!(!body.is_empty(), "{file}");
        assert_eq!((r.status, r.body.as_str()), (200, body.as_str()), "{file}");
        assert!(
            r.header("content-disposition").unwrap().contains(name),
            "{file}"
        );
    }
    assert!(page_links_sboms(&tc, &page, &cookie).await);

    // The live tail's JSON carries the raw text: the script sets it as text.
    let r = get(&tc, &format!("{page}/events?after=0"), Some(&cookie)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let update: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(update["state"], "SUCCEEDED");
    assert_eq!(update["terminal"], true);
    assert!(update["log"].as_str().unwrap().contains(HOSTILE));
    assert_eq!(update["steps"][1]["name"], HOSTILE);
    assert_eq!(update["steps"][1]["status"], "succeeded");
    let r = get(&tc, &format!("{page}/events?after=x"), Some(&cookie)).await;
    assert_eq!(r.status, 400);

    let r = get(&tc, "/", Some(&cookie)).await;
    assert!(
        r.body.contains(&format!(r#"<a href="/jobs/{job}">"#)),
        "{}",
        r.body
    );
    let r = get(&tc, "/runners", Some(&cookie)).await;
    assert!(
        r.body.contains("test-runner") && r.body.contains(">online<"),
        "{}",
        r.body
    );
    let r = get(
        &tc,
        "/jobs/00000000-0000-4000-8000-00000000dead",
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        get(&tc, "/jobs/not-a-uuid", Some(&cookie)).await.status,
        404
    );

    // A session ends at its lifetime (12 h by default).
    tc.clock.advance(Duration::from_secs(12 * 3600 + 1));
    assert_eq!(get(&tc, "/", Some(&cookie)).await.status, 303);
    tc.stop().await;
}

#[tokio::test]
async fn cancel_and_logout_need_this_origin_and_the_csrf_token() {
    let state = tempfile::tempdir().unwrap();
    let tc = controller(state.path(), false, false).await;
    let mut jobs = tc.jobs().await;
    let source = upload_source(&mut jobs, b"source").await;
    let job = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: spec_json(&source, &[]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let page = format!("/jobs/{job}");
    let cookie = login(&tc, API_TOKEN, "/").await.cookie();
    let r = get(&tc, &page, Some(&cookie)).await;
    assert!(
        r.body.contains(r#"id="cancel""#),
        "admin may cancel: {}",
        r.body
    );
    let csrf = r.csrf();

    // A reader sees no button and may not cancel.
    let reader = login(&tc, READER_TOKEN, "/").await.cookie();
    let r = get(&tc, &page, Some(&reader)).await;
    assert!(!r.body.contains(r#"id="cancel""#));
    let r = post(
        &tc,
        &format!("{page}/cancel"),
        Some(&reader),
        &format!("csrf={}", r.csrf()),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    let cancel = format!("{page}/cancel");
    let r = post(&tc, &cancel, Some(&cookie), "csrf=wrong").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("CSRF token"), "{}", r.body);
    let r = post(&tc, &cancel, Some(&cookie), "").await;
    assert_eq!(r.status, 403);
    let r = http(
        &tc,
        "POST",
        &cancel,
        &[("Origin", "https://evil.example"), ("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = http(
        &tc,
        "POST",
        &cancel,
        &[("Sec-Fetch-Site", "cross-site"), ("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(&tc, &cancel, None, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 403, "no session");
    assert!(
        get(&tc, &page, Some(&cookie))
            .await
            .body
            .contains(">QUEUED<")
    );

    let r = post(&tc, &cancel, Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some(page.as_str()));
    let r = get(&tc, &page, Some(&cookie)).await;
    assert!(
        r.body
            .contains(r#"class="state state-cancelled">CANCELLED<"#),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("on the web page"),
        "the reason names the page: {}",
        r.body
    );

    // Logging out needs the token too, then the cookie no longer works.
    let r = post(&tc, "/logout", Some(&cookie), "csrf=wrong").await;
    assert_eq!(r.status, 403);
    let r = post(&tc, "/logout", Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(get(&tc, "/", Some(&cookie)).await.status, 303);
    assert_eq!(
        get(&tc, "/", Some(&reader)).await.status,
        200,
        "other sessions live on"
    );
    tc.stop().await;
}

#[tokio::test]
async fn anonymous_read_shows_pages_and_a_dropped_client_is_logged_out() {
    let state = tempfile::tempdir().unwrap();
    let tc = controller(state.path(), false, true).await;
    let job = hostile_job(&tc).await;
    let page = format!("/jobs/{job}");
    let r = get(&tc, &page, None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(">SUCCEEDED<") && r.body.contains(r#"id="login-link""#));
    assert_eq!(
        get(&tc, &format!("{page}/events?after=0"), None)
            .await
            .status,
        200
    );
    let reader = login(&tc, READER_TOKEN, "/").await.cookie();
    assert!(
        get(&tc, "/", Some(&reader))
            .await
            .body
            .contains("Logged in as")
    );
    tc.stop().await;

    // The same state, with the `reader` client gone from [auth]: its session is refused.
    let tc = controller(state.path(), true, false).await;
    let r = get(&tc, &page, Some(&reader)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let admin = login(&tc, API_TOKEN, "/").await.cookie();
    assert_eq!(get(&tc, &page, Some(&admin)).await.status, 200);
    tc.stop().await;
}

/// Whether the job page links the three SBOM downloads.
async fn page_links_sboms(tc: &TestController, page: &str, cookie: &str) -> bool {
    let r = get(tc, page, Some(cookie)).await;
    ["/sbom.spdx.json", "/sbom.cdx.json", "/sbom.intoto.jsonl"]
        .iter()
        .all(|l| r.body.contains(&format!("{page}{l}")))
}
