//! Adopt shows what the Panel has before the admin confirms.

use opterius_sim::{Faults, Target};

use super::{Http, assert_no_secret, create_admin};
use crate::support::{Catalog, CatalogIds, TestApp};

#[tokio::test]
async fn adopt_shows_what_the_panel_has_before_the_admin_confirms() {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let CatalogIds {
        product_id: product,
        ..
    } = Catalog::v1(&app).build().await;
    app.sim.set_faults(
        Target::All,
        Faults {
            warning: true,
            remaining: Some(1),
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let sid = app.order(product, "hugo.example.com").await.service_id();
    let service = app.settle(sid, &["failed", "active"]).await;
    assert_eq!(service.error_kind(), "needs_attention", "{service:?}");
    let mut http = Http::signed_in(&app).await;
    let (_, page) = http.get(&format!("/admin/services/{sid}")).await;
    assert!(
        page.contains(&format!("href=\"/admin/services/{sid}/adopt\"")),
        "a link to the preview, not a blind POST"
    );
    let (status, preview) = http.get(&format!("/admin/services/{sid}/adopt")).await;
    assert_eq!(status, 200, "{preview}");
    assert!(preview.contains("id=\"adopt-facts\""), "{preview}");
    let username = service.username.as_str();
    assert!(preview.contains("<dd>hugo.example.com</dd>"), "{preview}");
    assert!(
        preview.contains(&format!("<dd>{username}</dd>")),
        "{preview}"
    );
    assert!(preview.contains("Disk used (MB)"), "usage shown: {preview}");
    assert_eq!(
        app.service(sid).await.status,
        "failed",
        "looking changes nothing"
    );
    let csrf = http.csrf.clone();
    let (status, _) = http
        .post_form(
            &format!("/admin/services/{sid}/adopt"),
            &[("_csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(status, 303);
    let service = app.settle(sid, &["active"]).await;
    assert!(service.panel_account_id.is_some(), "{service:?}");
    let secrets = app.passwords().await;
    assert_no_secret("adopt preview", &preview, &secrets);
    app.finish().await;
}
