//! The product form's package field: a pick list from the Panel (exact case)
//! when the module can list packages, else free text with the case note; a
//! warning when the package exists on none of the group's servers.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::modules;
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::page::fragment;
use crate::web::session::Admin;
use crate::web::view::Choice;

/// The package field, as the form page holds it and htmx swaps it.
#[derive(Template, Default)]
#[template(path = "products/package_field.html")]
pub struct PackageField {
    /// Pick from the Panel's list (else type it).
    pub pick: bool,
    pub value: String,
    pub choices: Vec<Choice>,
    /// Shown under the field: the package is on none of the group's servers, or
    /// a server could not be asked.
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

impl PackageField {
    /// `pick`, `text`, or `text-warned` (free text with warnings).
    pub fn shown(&self) -> &'static str {
        match (self.pick, self.warnings.is_empty()) {
            (true, _) => "pick",
            (false, true) => "text",
            (false, false) => "text-warned",
        }
    }

    /// Builds the field for `module` and `group_id` with `value` current.
    pub async fn build(state: &AppState, module: &str, group_id: i64, value: &str) -> Self {
        let found = match group_id {
            0 => modules::GroupPackages::default(),
            id => modules::group_packages(state, module, id)
                .await
                .unwrap_or_default(),
        };
        let listable = modules::can(state, module, provisioning::Capability::ListPackages);
        let mut warnings = found.problems.clone();
        if listable && found.servers == 0 && group_id != 0 {
            warnings.push(format!(
                "The group has no enabled {module} server yet: the package cannot be checked."
            ));
        } else if listable
            && !value.is_empty()
            && found.servers > 0
            && !found.names.iter().any(|n| n == value)
        {
            warnings.push(format!(
                "Package \"{value}\" exists on none of the group's servers (they have: {}). Names are case-sensitive.",
                found.names.join(", ")
            ));
        }
        let pick = listable && !found.names.is_empty();
        let mut choices: Vec<Choice> = found
            .names
            .iter()
            .map(|n| Choice {
                value: n.clone(),
                label: n.clone(),
                selected: n == value,
            })
            .collect();
        if pick && !value.is_empty() && !found.names.iter().any(|n| n == value) {
            choices.insert(
                0,
                Choice {
                    value: value.to_owned(),
                    label: format!("{value} (not on the Panel)"),
                    selected: true,
                },
            );
        }
        Self {
            pick,
            value: value.to_owned(),
            choices,
            warnings,
            error: None,
        }
    }
}

#[derive(Deserialize)]
pub struct FieldQuery {
    #[serde(default)]
    module: String,
    #[serde(default)]
    group_id: String,
    #[serde(default)]
    package: String,
    /// What the page shows now: `text` (no warnings) lets an unchanged free-text
    /// field stay in place, so typing is never interrupted by a swap.
    #[serde(default)]
    package_shown: String,
}

/// The field for another module or group (the selects' htmx swap).
pub async fn field(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<FieldQuery>,
) -> WebResult<Response> {
    let group = q.group_id.trim().parse().unwrap_or(0);
    let field = PackageField::build(&state, q.module.trim(), group, &q.package).await;
    if q.package_shown == "text" && field.shown() == "text" {
        // htmx swaps nothing on a 204: the field the admin is typing in stays.
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    }
    fragment(&field)
}
