//! The servers screen in Chromium: the form, Test Connection, health badges
//! (one at a time and forty streamed over SSE).

use fantoccini::Locator;
use opterius_sim::{Faults, SimConfig, Target};
use serde_json::json;

use super::{Browser, create_admin, ids};
use crate::support::TestApp;

/// The servers screen: a group, a server whose first save is refused (typed
/// values kept, the secret not sent back), Test Connection before saving,
/// the plug icon, a token rotated on the Panel followed to Offline and back,
/// and an htmx error shown as a toast in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_screen_tests_a_server_before_saving_and_follows_a_rotated_token_to_offline_and_back()
 {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let old_token = app.sim.token(0);
    let b = Browser::start(&app.base).await;
    b.login().await;

    // A server group, then a server whose first save fails validation.
    b.goto("/admin/groups").await;
    b.fill("#group-name", "Shared EU").await;
    b.click("#create-group").await;
    b.wait_text(".flash-success", |t| t.contains("Shared EU"))
        .await;

    b.goto("/admin/servers/new").await;
    b.fill("#name", "panel-0").await;
    b.select_index("#group_id", 1).await;
    let url = app.sim.server_url(0);
    b.fill("[name='credentials.api_url']", &format!("{url}/"))
        .await;
    b.fill("[name='credentials.api_token']", &old_token).await;
    b.click("#save").await;
    let err = b.wait_text("#form-errors", |t| t.contains("api url")).await;
    assert!(err.contains("slash"), "{err}");
    assert_eq!(b.value("#name").await, "panel-0", "typed name kept");
    assert_eq!(
        b.value("[name='credentials.api_token']").await,
        "",
        "a secret is never sent back"
    );

    // Test Connection on the form, unsaved: green with the Panel's name and version.
    b.fill("[name='credentials.api_url']", &url).await;
    b.fill("[name='credentials.api_token']", &old_token).await;
    b.mark().await;
    b.click("#test-connection").await;
    let ok = b
        .wait_text("#test-banner", |t| t.contains("Connected"))
        .await;
    assert!(
        ok.contains("sim-panel-0") && ok.contains("2.4.1-sim"),
        "{ok}"
    );
    b.assert_no_page_load("Test Connection").await;
    b.screenshot("server-form-test-ok").await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("panel-0"))
        .await;
    let server_id = ids(&app, "servers").await[0];
    let badge = format!("#health-{server_id} .badge");
    assert_eq!(b.text(&badge).await, "Unknown");

    // The plug icon flips the badge in place.
    b.mark().await;
    b.click(&format!("#server-{server_id} .plug")).await;
    b.wait_text(&badge, |t| t == "Online").await;
    b.assert_no_page_load("the plug icon").await;

    // The token is rotated on the Panel: the form's test (blank = stored token)
    // shows the 401 and its fix; the plug icon turns the badge Offline.
    app.sim
        .rotate_token(Target::Server(0), "rotated-token-7f3a9c");
    b.goto(&format!("/admin/servers/{server_id}/edit")).await;
    assert!(
        b.text("#credential-fields")
            .await
            .contains("A token is stored; leave blank to keep it.")
    );
    let source = b.client.source().await.expect("source");
    assert!(
        !source.contains(&old_token),
        "the edit page shows the stored token"
    );
    b.click("#test-connection").await;
    let bad = b.wait_text("#test-banner", |t| t.contains("401")).await;
    assert!(bad.contains("401 Unauthorized"), "{bad}");
    assert!(
        bad.contains("Generate a new token in Panel → Settings → API"),
        "{bad}"
    );
    b.screenshot("server-form-test-401").await;
    b.goto("/admin/servers").await;
    b.mark().await;
    b.click(&format!("#server-{server_id} .plug")).await;
    b.wait_text(&badge, |t| t == "Offline").await;
    b.assert_no_page_load("the plug icon").await;
    assert!(
        b.text(&format!("#health-{server_id}"))
            .await
            .contains("401 Unauthorized")
    );
    b.screenshot("servers-offline").await;

    // Paste the new token, test, save: back online.
    b.goto(&format!("/admin/servers/{server_id}/edit")).await;
    b.fill("[name='credentials.api_token']", "rotated-token-7f3a9c")
        .await;
    b.click("#test-connection").await;
    b.wait_text("#test-banner", |t| t.contains("Connected"))
        .await;
    b.click("#save").await;
    b.wait_text(".flash-success", |t| t.contains("saved")).await;
    b.click(&format!("#server-{server_id} .plug")).await;
    b.wait_text(&badge, |t| t == "Online").await;
    b.screenshot("servers").await;

    // An htmx request that fails shows the server's toast fragment in place.
    b.js(&format!(
        "htmx.ajax('POST', '/admin/servers/987654/test', {{target: '#health-{server_id}', swap: 'outerHTML'}}); return 0;"
    ))
    .await;
    let toast = b
        .wait_text("#toast", |t| t.contains("does not exist"))
        .await;
    assert!(
        toast.contains("Not found") && toast.contains("Go back to the list"),
        "{toast}"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#toast .error-message').length;")
            .await,
        json!(1)
    );
    b.screenshot("htmx-error-toast").await;

    b.close().await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_all_streams_forty_badges_over_sse_within_one_timeout() {
    let app = TestApp::spawn_with(
        SimConfig {
            servers: 40,
            ..Default::default()
        },
        &[],
    )
    .await;
    create_admin(&app).await;
    let group = app.group("Big", "least_full").await;
    for n in 0..40 {
        app.add_server(&format!("panel-{n:02}"), group, n, 0).await;
    }
    let dead = [5usize, 15, 25, 35];
    for n in dead {
        app.sim.set_faults(
            Target::Server(n),
            Faults {
                hang: true,
                ..Default::default()
            },
        );
    }
    app.sim.rotate_token(Target::Server(7), "rotated");

    let b = Browser::start(&app.base).await;
    b.login().await;
    assert_eq!(
        b.client
            .find_all(Locator::Css("td.health .badge"))
            .await
            .expect("badges")
            .len(),
        40
    );
    b.mark().await;
    let clicked = chrono::Utc::now();
    b.click("#test-all").await;
    let summary = b
        .wait_text("#sweep-status[data-done]", |t| t.starts_with("Tested 40"))
        .await;
    b.assert_no_page_load("Test all").await;
    assert!(summary.contains("35 online, 5 offline"), "{summary}");
    // From the stored results, not wall time: each hung server was given the
    // whole timeout and then cut off, and the four were tested side by side
    // (one after another, the last result would come four timeouts after the
    // first).
    let timeout_ms = i32::try_from(app.state.config.sweep_timeout.as_millis()).expect("ms");
    type HealthRow = (
        String,
        Option<i32>,
        chrono::DateTime<chrono::Utc>,
        Option<String>,
    );
    let rows: Vec<HealthRow> = sqlx::query_as(
        "SELECT name, latency_ms, last_checked_at, last_error->>'kind' FROM servers ORDER BY name",
    )
    .fetch_all(&app.state.pool)
    .await
    .expect("servers");
    for n in dead {
        let (name, latency, _, kind) = &rows[n];
        assert_eq!(kind.as_deref(), Some("timeout"), "{name}: {rows:?}");
        assert!(
            latency.is_some_and(|l| l >= timeout_ms - 50),
            "{name} was cut off before its timeout: {rows:?}"
        );
    }
    let hung = app
        .sim
        .requests()
        .iter()
        .filter(|r| r.outcome == "hung")
        .count();
    assert_eq!(
        hung,
        dead.len(),
        "the sim saw each dead server's request hang"
    );
    assert!(
        rows.iter().all(|r| r.2 >= clicked),
        "every server's result is from this sweep: {rows:?}"
    );
    let last = rows.iter().map(|r| r.2).max().expect("results") - clicked;
    assert!(
        last.num_milliseconds() < 2 * i64::from(timeout_ms),
        "the last result came {last} after the click: the hung servers were tested one after another"
    );
    let mut online = 0;
    let mut offline = 0;
    for el in b
        .client
        .find_all(Locator::Css("td.health .badge"))
        .await
        .expect("badges")
    {
        match el.text().await.expect("text").as_str() {
            "Online" => online += 1,
            "Offline" => offline += 1,
            other => panic!("badge still {other:?} after the sweep"),
        }
    }
    assert_eq!((online, offline), (35, 5));
    let ids = ids(&app, "servers").await;
    let cell = b.text(&format!("#health-{}", ids[7])).await;
    assert!(cell.contains("401 Unauthorized"), "{cell}");
    let cell = b.text(&format!("#health-{}", ids[5])).await;
    assert!(cell.contains("Offline"), "{cell}");
    b.screenshot("servers-test-all").await;
    b.close().await;
    app.sim.clear_faults();
    app.get("/api/v1/servers").await;
    app.finish().await;
}
