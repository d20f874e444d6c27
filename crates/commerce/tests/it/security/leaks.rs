//! Secrets stay secret: a Panel that echoes the create body, sealed secrets
//! bound to their row and key rotation, Debug output of inputs.

use opterius_sim::{Faults, Target};

use super::{admin_cookie, page};
use crate::support::logs::Lines;
use crate::support::{Catalog, CatalogIds, TestApp};

/// Every log line written while the guard is alive (the test's runtime is
/// single-threaded, so the server and the workers log through it too).
fn capture_lines() -> (Lines, crate::support::logs::LogCapture) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug,sqlx=warn,hyper=warn,h2=warn,reqwest=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (lines, crate::support::logs::capture(subscriber))
}

/// Every row of every application table, as JSON text, except the sealed
/// password column (the one place the password may be, encrypted).
async fn all_columns(app: &TestApp) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.state.pool)
    .await
    .expect("tables");
    let mut rows = Vec::new();
    for t in tables {
        let sql = format!("SELECT (to_jsonb(t) - 'password_sealed')::text FROM \"{t}\" t");
        let mut got: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&app.state.pool)
            .await
            .expect("rows");
        rows.append(&mut got);
    }
    rows
}

#[tokio::test]
async fn a_panel_echoing_the_create_body_leaks_the_password_nowhere() {
    let (lines, _guard) = capture_lines();
    let app = TestApp::spawn().await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::on(&app).build().await;
    // 200 without an id, a 422 whose message quotes the body, a 500 body.
    let mut services = Vec::new();
    for (n, status) in [200u16, 422, 500].into_iter().enumerate() {
        app.sim.set_faults(
            Target::All,
            Faults {
                echo: Some(status),
                only: Some("create".into()),
                ..Default::default()
            },
        );
        let sid = app
            .order(product, &format!("echo{n}.example.com"))
            .await
            .service_id();
        let s = app.settle(sid, &["failed", "needs_attention"]).await;
        assert!(s.last_error.is_some(), "{s:?}");
        services.push(sid);
    }
    let passwords = app.passwords().await;
    assert_eq!(passwords.len(), 3);
    // The Panel really did get (and echo) the password: the test can fail.
    let creates = app
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/api/accounts"))
        .count();
    assert!(creates >= 3, "{creates}");

    let mut seen = Vec::new();
    for sid in &services {
        seen.push(
            app.get(&format!("/api/v1/services/{sid}"))
                .await
                .to_string(),
        );
        for entry in app.log_for(*sid).await {
            let id = entry.id;
            seen.push(
                app.get(&format!("/api/v1/provisioning-log/{id}"))
                    .await
                    .to_string(),
            );
        }
    }
    let (http, cookie) = admin_cookie(&app).await;
    for sid in &services {
        seen.push(page(&http, &cookie, format!("{}/admin/services/{sid}", app.base)).await);
    }
    seen.push(page(&http, &cookie, format!("{}/admin/log", app.base)).await);
    let log_ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM provisioning_log")
        .fetch_all(&app.state.pool)
        .await
        .expect("ids");
    for id in log_ids {
        seen.push(page(&http, &cookie, format!("{}/admin/log/{id}", app.base)).await);
    }
    seen.extend(all_columns(&app).await);
    seen.push(lines.text());
    let joined = seen.join("\n");
    assert!(
        joined.contains("[redacted]"),
        "the echo reached the log, redacted"
    );
    for pw in &passwords {
        let forms = [
            pw.clone(),
            serde_json::to_string(pw)
                .expect("json")
                .trim_matches('"')
                .to_owned(),
            serde_urlencoded::to_string([("p", pw)]).expect("form")[2..].to_owned(),
        ];
        for form in forms {
            assert!(
                !joined.contains(&form),
                "the password {form:?} leaked: {}",
                joined
                    .lines()
                    .find(|l| l.contains(&form))
                    .unwrap_or_default()
            );
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn sealed_secrets_stay_on_their_row_and_key_rotation_reseals_everything_resumably() {
    use commerce::crypto::{AppKey, Sealer};
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id: group,
        server_id: first,
        product_id: product,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let second = app.add_server("panel-1", group, 1, 0).await;
    for n in 0..3 {
        app.order(product, &format!("rot{n}.example.com")).await;
    }
    let pool = &app.state.pool;
    let row = |id: i64| commerce::app::servers::get(pool, id);
    // A sealed token copied onto another row does not open there.
    let saved = row(second).await.expect("row").secrets;
    sqlx::query(
        "UPDATE servers SET secrets = (SELECT secrets FROM servers WHERE id = $1) WHERE id = $2",
    )
    .bind(first)
    .bind(second)
    .execute(pool)
    .await
    .expect("move");
    let moved = row(second).await.expect("row");
    let e = commerce::app::servers::credentials(&moved, &app.state.sealer).expect_err("moved");
    assert!(e.to_string().contains("another row"), "{e}");
    sqlx::query("UPDATE servers SET secrets = $2 WHERE id = $1")
        .bind(second)
        .bind(saved)
        .execute(pool)
        .await
        .expect("restore");

    let old = AppKey::parse(crate::support::APP_KEY).expect("old key");
    let new = AppKey::parse(&AppKey::generate()).expect("new key");
    let rotating = Sealer::with_previous(&new, Some(&old));
    // Interrupted after one batch of one row, then run again to the end.
    let part = commerce::app::keys::rotate(pool, &rotating, 1, Some(1))
        .await
        .expect("first batch");
    assert_eq!((part.servers, part.services), (1, 0));
    let rest = commerce::app::keys::rotate(pool, &rotating, 1, None)
        .await
        .expect("the rest");
    assert_eq!((rest.servers, rest.services), (1, 3));
    let again = commerce::app::keys::rotate(pool, &rotating, 100, None)
        .await
        .expect("nothing left");
    assert_eq!((again.servers, again.services), (0, 0));
    let only_new = Sealer::new(&new);
    let only_old = Sealer::new(&old);
    for id in [first, second] {
        let r = row(id).await.expect("row");
        let creds =
            commerce::app::servers::credentials(&r, &only_new).expect("opens under the new key");
        assert!(creds.secrets.contains_key("api_token"));
        assert!(commerce::app::servers::credentials(&r, &only_old).is_err());
    }
    let sealed: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT id, password_sealed FROM services")
        .fetch_all(pool)
        .await
        .expect("services");
    for (id, s) in &sealed {
        only_new
            .open(commerce::app::orders::password_binding(*id), s)
            .expect("password under the new key");
    }
    // Back to the harness's key so its final checks can open everything.
    let back = Sealer::with_previous(&old, Some(&new));
    let undone = commerce::app::keys::rotate(pool, &back, 50, None)
        .await
        .expect("rotate back");
    assert_eq!((undone.servers, undone.services), (2, 3));
    app.finish().await;
}

#[test]
fn debug_output_of_inputs_holding_secrets_redacts_them() {
    let creds: std::collections::BTreeMap<String, String> = [
        ("api_url".to_owned(), "https://p.example.com".to_owned()),
        ("api_token".to_owned(), "tok-very-secret".to_owned()),
    ]
    .into();
    let input = commerce::app::servers::ServerInput {
        credentials: creds.clone(),
        ..Default::default()
    };
    let patch = commerce::app::servers::ServerPatch {
        credentials: Some(creds.clone()),
        ..Default::default()
    };
    let test = commerce::app::connection::UnsavedTest {
        module: "opterius".into(),
        credentials: creds,
        server_id: None,
        tls: None,
    };
    let agent = opterius::AgentCreateAccount {
        username: "u".into(),
        domain: "d".into(),
        email: "e".into(),
        password: "pw-very-secret".into(),
        package_id: 1,
    };
    for shown in [
        format!("{input:?}"),
        format!("{patch:?}"),
        format!("{test:?}"),
        format!("{agent:?}"),
    ] {
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
