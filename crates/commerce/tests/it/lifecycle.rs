//! An account's life beyond the seeds, end to end: suspension reasons (an
//! unsuspend on payment never lifts an abuse suspension), client mail through
//! a real SMTP conversation, usage schedules and drift.

use opterius_sim::Target;
use serde_json::json;

use crate::support::{Catalog, CatalogIds, Service, TestApp};

fn panel_calls(app: &TestApp, path_end: &str) -> usize {
    app.sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(path_end))
        .count()
}

#[tokio::test]
async fn an_overdue_unsuspend_leaves_an_abuse_suspension_alone() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    let sid = app.order(product, "rita.example.com").await.service_id();
    app.settle(sid, &["active"]).await;

    // Unknown fields are named in a 422; nothing is queued.
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/suspend"),
            Some(json!({"reason": "abuse", "why": "spam"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["fields"].get("why").is_some(), "{body}");
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/suspend"),
            Some(json!({"reason": "late"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["fields"].get("reason").is_some(), "{body}");
    assert_eq!(panel_calls(&app, "/accounts/suspend"), 0);

    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/suspend"),
            Some(json!({"reason": "abuse", "note": "phishing kit, ticket 4411"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let service = app.settle(sid, &["suspended"]).await;
    assert_eq!(
        service.suspension_reason.as_deref(),
        Some("abuse"),
        "{service:?}"
    );
    assert_eq!(
        service.suspension_note.as_deref(),
        Some("phishing kit, ticket 4411")
    );
    let account = &app.sim.accounts(Target::Server(0))[0];
    assert!(account.suspended);
    assert_eq!(
        app.sim.v1_meta(0)[&account.id]["suspend_reason"],
        "abuse: phishing kit, ticket 4411",
        "the reason reaches the Panel"
    );

    // Payment arrives: the billing system lifts only what it suspended.
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/unsuspend"),
            Some(json!({"only_if_reason": "overdue"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("abuse"),
        "{body}"
    );
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/unsuspend"),
            Some(json!({"only_if": "overdue"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["fields"].get("only_if").is_some(), "{body}");
    assert_eq!(
        panel_calls(&app, "/accounts/unsuspend"),
        0,
        "nothing reached the Panel"
    );
    assert_eq!(app.service(sid).await.status, "suspended");
    assert!(app.sim.accounts(Target::Server(0))[0].suspended);

    // The admin's decision (abuse) lifts it; the reason goes with it.
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/unsuspend"),
            Some(json!({"only_if_reason": "abuse"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let service = app.settle(sid, &["active"]).await;
    assert_eq!(service.suspension_reason, None, "{service:?}");
    assert_eq!(panel_calls(&app, "/accounts/unsuspend"), 1);

    // No body at all means reason other, which an overdue unsuspend leaves
    // alone too; an overdue suspension is lifted by an overdue unsuspend.
    let (status, _) = app
        .call("POST", &format!("/api/v1/services/{sid}/suspend"), None)
        .await;
    assert_eq!(status, 202);
    let service = app.settle(sid, &["suspended"]).await;
    assert_eq!(service.suspension_reason.as_deref(), Some("other"));
    let account = &app.sim.accounts(Target::Server(0))[0];
    assert_eq!(app.sim.v1_meta(0)[&account.id]["suspend_reason"], "other");
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/unsuspend"),
            Some(json!({"only_if_reason": "overdue"})),
        )
        .await;
    assert_eq!(status, 409);
    app.post(&format!("/api/v1/services/{sid}/unsuspend"), json!({}))
        .await;
    app.settle(sid, &["active"]).await;
    app.post(
        &format!("/api/v1/services/{sid}/suspend"),
        json!({"reason": "overdue"}),
    )
    .await;
    app.settle(sid, &["suspended"]).await;
    app.post(
        &format!("/api/v1/services/{sid}/unsuspend"),
        json!({"only_if_reason": "overdue"}),
    )
    .await;
    app.settle(sid, &["active"]).await;
    assert_eq!(panel_calls(&app, "/accounts/unsuspend"), 3);
    app.finish().await;
}

/// A tiny SMTP server on loopback: enough of RFC 5321 for lettre (greeting,
/// EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT). The first `fail` transactions
/// get a temporary 451 at MAIL FROM.
pub struct SmtpSink {
    pub url: String,
    pub messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub fail: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub conversations: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let url = format!("smtp://{}", listener.local_addr().expect("addr"));
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let fail = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let conversations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (m, f, c) = (messages.clone(), fail.clone(), conversations.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (m, f, c) = (m.clone(), f.clone(), c.clone());
                tokio::spawn(async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r);
                    let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let verb = line.trim_end().to_ascii_uppercase();
                        let reply: &[u8] = if verb.starts_with("EHLO") || verb.starts_with("HELO") {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if verb.starts_with("MAIL FROM") {
                            let busy = f
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok();
                            if busy {
                                b"451 4.3.0 try again later\r\n"
                            } else {
                                b"250 OK\r\n"
                            }
                        } else if verb.starts_with("RCPT TO")
                            || verb.starts_with("RSET")
                            || verb.starts_with("NOOP")
                        {
                            b"250 OK\r\n"
                        } else if verb == "DATA" {
                            let _ = w.write_all(b"354 go ahead\r\n").await;
                            let mut body = String::new();
                            loop {
                                line.clear();
                                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                body.push_str(&line);
                            }
                            m.lock().expect("lock").push(body);
                            b"250 OK queued\r\n"
                        } else if verb == "QUIT" {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"502 not implemented\r\n"
                        };
                        if w.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            url,
            messages,
            fail,
            conversations,
        }
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }

    /// Waits until `n` mails arrived, looking again as `app`'s mail jobs finish.
    pub async fn wait_for(&self, app: &TestApp, n: usize) -> Vec<String> {
        app.wait_until(&format!("{n} mails arriving"), || async {
            let m = self.messages();
            if m.len() >= n {
                Ok(m)
            } else {
                Err(format!("only {} arrived", m.len()))
            }
        })
        .await
    }
}

/// Undoes quoted-printable soft breaks and `=3D`, enough to find a password.
fn unfold(raw: &str) -> String {
    raw.replace("=\r\n", "").replace("=3D", "=")
}

#[tokio::test]
async fn the_welcome_mail_carries_the_password_over_smtp_and_a_failure_is_retried() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(
        opterius_sim::SimConfig {
            servers: 2,
            ..Default::default()
        },
        &[
            ("SMTP_URL", &sink.url),
            ("MAIL_FROM", "Hosting <hosting@example.net>"),
        ],
    )
    .await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    let sid = app.order(product, "sam.example.com").await.service_id();
    app.settle(sid, &["active"]).await;
    let mails = sink.wait_for(&app, 1).await;
    let welcome = unfold(&mails[0]);
    let password = app.passwords().await.remove(0);
    assert!(
        welcome.contains(&password),
        "the welcome mail carries the password"
    );
    assert!(welcome.contains("sam.example.com") && welcome.contains("Username:"));
    assert!(
        welcome.contains(&app.sim.server_url(0)),
        "the Panel's address"
    );
    assert!(welcome.contains("keeps its own password"));
    assert!(welcome.contains("To: owner@sam.example.com"));
    assert!(welcome.contains("text/html"), "text and HTML parts");
    let (status, attempts, _) = settled_outbox(&app, sid, "welcome").await;
    assert_eq!((status.as_str(), attempts), ("sent", 1));

    // The SMTP server refuses twice: the password-change mail arrives on the third try.
    sink.fail.store(2, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/change-password"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let mails = sink.wait_for(&app, 2).await;
    let changed = unfold(&mails[1]);
    let new_password = app.passwords().await.remove(0);
    assert_ne!(new_password, password);
    assert!(
        changed.contains(&new_password),
        "the new password is mailed"
    );
    let (status, attempts, error) = settled_outbox(&app, sid, "password_changed").await;
    assert_eq!((status.as_str(), attempts, error), ("sent", 3, None));
    assert!(sink.conversations.load(std::sync::atomic::Ordering::SeqCst) >= 3);

    // Nothing secret in the outbox, the API answers (checked by finish) or the log.
    let outbox_text: String =
        sqlx::query_scalar("SELECT string_agg(row_to_json(m)::text, ' ') FROM mail_outbox m")
            .fetch_one(&app.state.pool)
            .await
            .expect("outbox");
    assert!(!outbox_text.contains(&password) && !outbox_text.contains(&new_password));
    // A resend over the API carries the current password; the answer does not.
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/services/{sid}/resend-welcome"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let mails = sink.wait_for(&app, 3).await;
    assert!(unfold(&mails[2]).contains(&new_password));
    app.service(sid).await;
    app.drain().await;
    app.finish().await;
}

/// Acts on the simulated v1 Panel directly, as a Panel admin would.
async fn behind_our_back(app: &TestApp, action: &str, username: &str) {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/accounts/{action}",
            app.sim.server_url(0)
        ))
        .bearer_auth(app.sim.api_key(0))
        .header("Accept", "application/json")
        .json(&json!({"username": username, "reason": "done on the Panel"}))
        .send()
        .await
        .expect("sim");
    assert_eq!(resp.status(), 200, "{action} on the Panel");
}

async fn sync(app: &TestApp, sid: i64) -> Service {
    let before = app.log_for(sid).await.len();
    app.post(&format!("/api/v1/services/{sid}/sync"), json!({}))
        .await;
    app.wait_for_log(sid, |l| {
        l.len() > before
            && l.last()
                .is_some_and(|e| e.action == "info" && e.status != "pending")
    })
    .await;
    app.service(sid).await
}

#[tokio::test]
async fn drift_is_flagged_when_the_panel_suspends_or_loses_an_account_behind_our_back() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    let sid = app.order(product, "tess.example.com").await.service_id();
    let service = app.settle(sid, &["active"]).await;
    let username = service.username;
    let service = sync(&app, sid).await;
    assert_eq!(service.drift, None, "{service:?}");

    behind_our_back(&app, "suspend", &username).await;
    let service = sync(&app, sid).await;
    assert_eq!(service.status, "active", "nothing changed silently");
    assert_eq!(service.panel_status.as_deref(), Some("suspended"));
    assert_eq!(
        service.drift.as_deref(),
        Some("suspended on the Panel, active here")
    );
    assert_eq!(
        commerce::app::dashboard::services_with_drift(&app.state.pool)
            .await
            .expect("count"),
        1
    );
    let listed = app.get("/api/v1/services?drift=1").await;
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(panel_calls(&app, "/accounts/unsuspend"), 0);

    // Put right on the Panel: the next sync clears it.
    behind_our_back(&app, "unsuspend", &username).await;
    let service = sync(&app, sid).await;
    assert_eq!(service.drift, None, "{service:?}");

    behind_our_back(&app, "terminate", &username).await;
    let service = sync(&app, sid).await;
    assert_eq!(service.status, "active");
    assert_eq!(service.panel_status.as_deref(), Some("missing"));
    assert!(
        service
            .drift
            .as_deref()
            .unwrap_or_default()
            .contains("missing on the Panel"),
        "{service:?}"
    );
    assert_eq!(app.get("/api/v1/services?drift=1").await["total"], 1);
    app.finish().await;
}

#[tokio::test]
async fn the_usage_schedule_syncs_every_live_account_once_per_round_spread_per_server() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    app.add_v1_server("panel-v1-b", group, 1).await;
    let ids = app
        .orders(product, 4, |n| format!("u{n}.example.com"))
        .await;
    for sid in &ids {
        app.settle(*sid, &["active"]).await;
    }
    // Two processes tick at once: one round is queued, by one of them.
    let interval = std::time::Duration::from_secs(2);
    let (a, b) = tokio::join!(
        commerce::app::usage_schedule::tick(&app.state, interval),
        commerce::app::usage_schedule::tick(&app.state, interval)
    );
    let (a, b) = (a.expect("tick"), b.expect("tick"));
    assert_eq!(a + b, 4, "each account once: {a} + {b}");
    assert_eq!(
        commerce::app::usage_schedule::tick(&app.state, interval)
            .await
            .expect("tick"),
        0,
        "not due again before the interval"
    );
    // Spread: a server's syncs run at least 1 / SYNC_PER_SERVER_PER_SEC apart.
    let run_ats: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM run_at)::float8 FROM apalis.jobs WHERE job_type = 'commerce.sync_account' ORDER BY run_at",
    )
    .fetch_all(&app.state.pool)
    .await
    .expect("jobs");
    assert_eq!(run_ats.len(), 4);
    assert!(
        run_ats[3] - run_ats[0] >= 0.4,
        "spread over the interval: {run_ats:?}"
    );
    for sid in &ids {
        app.wait_for_log(*sid, |l| {
            l.iter()
                .any(|e| e.outcome() == ("info", "success") && e.triggered_by == "system")
        })
        .await;
        let s = app.service(*sid).await;
        assert_eq!(s.panel_status.as_deref(), Some("active"), "{s:?}");
    }
    app.finish().await;
}

/// The figures, printed: mails a second to a local SMTP sink, and a
/// sync of many services (time, Panel calls a second per server). Scale with
/// FIGURE_MAILS and FIGURE_SERVICES (defaults 200 and 400).
#[tokio::test]
async fn figures_mail_rate_and_sync_throughput() {
    let count = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (mails, services) = (count("FIGURE_MAILS", 200), count("FIGURE_SERVICES", 400));
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_settings(&[("SMTP_URL", &sink.url)]).await;
    let CatalogIds {
        group_id: group,
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    for n in 1..4 {
        app.add_v1_server(&format!("panel-v1-{n}"), group, n).await;
    }
    let first = app.order(product, "m0.example.com").await.service_id();
    app.settle(first, &["active"]).await;
    sink.wait_for(&app, 1).await;

    let started = std::time::Instant::now();
    for _ in 0..mails {
        commerce::mail::resend_welcome(&app.state, first)
            .await
            .expect("queue");
    }
    sink.wait_for(&app, 1 + mails).await;
    let took = started.elapsed().as_secs_f64();
    println!(
        "FIGURE mail: {mails} mails to the local SMTP sink in {took:.2} s = {:.0} mails/s",
        mails as f64 / took
    );

    let mut ids = vec![first];
    ids.extend(
        app.orders(product, services - 1, |n| format!("m{}.example.com", n + 1))
            .await,
    );
    for sid in &ids {
        app.settle(*sid, &["active"]).await;
    }
    let started = std::time::Instant::now();
    let mut conn = app.state.pool.acquire().await.expect("conn");
    commerce::jobs::enqueue_many(
        &mut conn,
        commerce::domain::Action::Info,
        ids.iter()
            .map(|id| {
                (
                    commerce::jobs::JobArgs {
                        service_id: *id,
                        attempt: 1,
                        triggered_by: commerce::domain::TriggeredBy::System,
                    },
                    None,
                )
            })
            .collect(),
    )
    .await
    .expect("enqueue");
    drop(conn);
    if let Err(left) = app.drain_within(std::time::Duration::from_secs(600)).await {
        panic!("the syncs did not finish: {} jobs left", left.len());
    }
    let synced: i64 =
        sqlx::query_scalar("SELECT count(*) FROM services WHERE panel_status = 'active'")
            .fetch_one(&app.state.pool)
            .await
            .expect("count");
    assert_eq!(synced as usize, ids.len(), "every service synced");
    let took = started.elapsed().as_secs_f64();
    let mut per_server = std::collections::BTreeMap::new();
    for r in app
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/accounts/usage"))
    {
        *per_server.entry(r.target.clone()).or_insert(0usize) += 1;
    }
    let rates: Vec<String> = per_server
        .iter()
        .map(|(t, n)| format!("{t}: {n} calls, {:.0}/s", *n as f64 / took))
        .collect();
    println!(
        "FIGURE sync: {} services in {took:.2} s = {:.0} services/s; {}",
        ids.len(),
        ids.len() as f64 / took,
        rates.join("; ")
    );
    assert_eq!(
        per_server.values().sum::<usize>(),
        ids.len(),
        "one usage call per service"
    );
    app.finish().await;
}

/// A mail's outbox row once its job has run: it says `sent` just after the
/// sink has the message.
async fn settled_outbox(app: &TestApp, sid: i64, kind: &str) -> (String, i32, Option<String>) {
    app.drain().await;
    sqlx::query_as(
        "SELECT status, attempts, last_error FROM mail_outbox WHERE service_id = $1 AND kind = $2",
    )
    .bind(sid)
    .bind(kind)
    .fetch_one(&app.state.pool)
    .await
    .expect("outbox row")
}
