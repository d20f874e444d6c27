//! The log viewer's server menu: kept a few seconds, yet a server added,
//! renamed or deleted through this process is in it at once, and a write from
//! elsewhere shows within `servers::MENU_FOR`.

use commerce::app::servers::MENU_FOR;

use crate::support::{self, Catalog, CatalogIds, TestApp};

/// The server menu's options of `/admin/log`, as `(value, label)`.
async fn menu(app: &TestApp, cookie: &str) -> Vec<(String, String)> {
    let resp = reqwest::Client::new()
        .get(format!("{}/admin/log", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .expect("log page");
    assert_eq!(resp.status().as_u16(), 200, "the log page");
    let page = resp.text().await.expect("log page");
    let select = page
        .split(r#"<select name="server_id""#)
        .nth(1)
        .and_then(|s| s.split("</select>").next())
        .unwrap_or_else(|| panic!("no server menu on the page: {page}"));
    select
        .split("<option value=\"")
        .skip(1)
        .filter_map(|o| {
            let (value, rest) = o.split_once('"')?;
            let label = rest.split_once('>')?.1.split('<').next()?;
            Some((value.to_owned(), label.trim().to_owned()))
        })
        .filter(|(value, _)| !value.is_empty())
        .collect()
}

#[tokio::test]
async fn the_server_menu_follows_this_processes_writes_at_once_and_others_within_menu_for() {
    let app = TestApp::spawn().await;
    let CatalogIds {
        group_id,
        server_id: first,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let (cookie, _) = support::admin_session(&app.state.pool, &app.base).await;
    let first_name = |name: &str| (first.to_string(), name.to_owned());
    let before = menu(&app, &cookie).await;
    assert_eq!(before.len(), 1, "{before:?}");

    let added = app.add_server("menu second", group_id, 1, 0).await;
    let after_add = menu(&app, &cookie).await;
    assert!(
        after_add.contains(&(added.to_string(), "menu second".to_owned())),
        "a server added here is listed at once: {after_add:?}"
    );

    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/servers/{first}"),
            Some(serde_json::json!({"name": "menu renamed"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        menu(&app, &cookie)
            .await
            .contains(&first_name("menu renamed")),
        "a rename here shows at once"
    );

    let (status, body) = app
        .call("DELETE", &format!("/api/v1/servers/{added}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        menu(&app, &cookie).await,
        vec![first_name("menu renamed")],
        "a server deleted here is gone at once"
    );

    // Another instance (here: plain SQL) renames it; the menu kept by this
    // process catches up once MENU_FOR has passed.
    sqlx::query("UPDATE servers SET name = 'menu elsewhere' WHERE id = $1")
        .bind(first)
        .execute(&app.state.pool)
        .await
        .expect("rename elsewhere");
    tokio::time::sleep(MENU_FOR + std::time::Duration::from_millis(200)).await;
    assert_eq!(
        menu(&app, &cookie).await,
        vec![first_name("menu elsewhere")],
        "another instance's rename shows within MENU_FOR"
    );
    app.finish().await;
}
