//! The product form's package field: the Panel's packages, or free text.

use super::{Http, create_admin};
use crate::support::{Catalog, CatalogIds, TestApp};

#[tokio::test]
async fn product_form_package_field_lists_v1_packages_warns_on_a_missing_one_and_keeps_seed_free_text()
 {
    let app = TestApp::spawn().await;
    create_admin(&app).await;
    let CatalogIds {
        group_id: seed_group,
        ..
    } = Catalog::on(&app).auto_setup("manual").build().await;
    let CatalogIds {
        group_id: v1_group, ..
    } = Catalog::v1(&app).auto_setup("manual").build().await;
    let mut http = Http::signed_in(&app).await;
    let field = |module: &str, group: i64, package: &str, shown: &str| {
        format!(
            "/admin/products/package-field?module={module}&group_id={group}&package={package}&package_shown={shown}"
        )
    };
    let (status, body) = http
        .get(&field("opterius_v1", v1_group, "Starter", "text"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<select id=\"package\"") && body.contains("value=\"Pro\""),
        "{body}"
    );
    assert!(body.contains("value=\"Starter\" selected"), "{body}");
    let (_, body) = http
        .get(&field("opterius_v1", v1_group, "starter", "pick"))
        .await;
    assert!(body.contains("exists on none of the group"), "{body}");
    assert!(body.contains("starter (not on the Panel)"), "{body}");
    // The seed module: free text with the case note, and no swap while typing.
    let (status, body) = http
        .get(&field("opterius", seed_group, "Starter", "pick"))
        .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<input id=\"package\"") && body.contains("Case-sensitive"),
        "{body}"
    );
    let (status, body) = http
        .get(&field("opterius", seed_group, "Starter", "text"))
        .await;
    assert_eq!((status, body.as_str()), (204, ""));
    app.finish().await;
}
