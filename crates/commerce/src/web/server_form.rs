//! Add / Edit server. Credential fields come from the module's metadata; a
//! secret is never put back into the page. "Test Connection" tests the values
//! as typed, unsaved.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use provisioning::{InputType, ModuleInfo};
use serde::Deserialize;

use crate::app::catalog;
use crate::app::connection::{self, UnsavedTest};
use crate::app::error::AppError;
use crate::app::servers::{self, ServerInput};
use crate::domain::FieldErrors;
use crate::front::AppState;
use crate::web::error::WebResult;
use crate::web::form::{Errors, FormData, form_errors};
use crate::web::page::{Chrome, Id, fragment, page_with};
use crate::web::session::{Admin, flash_redirect};
use crate::web::view::{Choice, ErrorBox};

/// One credential input, as the module describes it.
pub struct CredField {
    pub key: String,
    pub label: &'static str,
    pub input_type: &'static str,
    pub required: bool,
    pub secret: bool,
    pub placeholder: &'static str,
    pub help: &'static str,
    /// The typed or stored value; always empty for a secret.
    pub value: String,
    /// A secret has a stored value (left blank = kept).
    pub stored: bool,
    pub error: String,
}

fn cred_fields(
    info: &ModuleInfo,
    values: &dyn Fn(&str) -> String,
    stored: &[String],
    errors: &Errors,
) -> Vec<CredField> {
    info.credential_fields
        .iter()
        .map(|f| {
            let key = format!("credentials.{}", f.name);
            CredField {
                error: errors.of(&key),
                key,
                label: f.label,
                input_type: match f.input_type {
                    _ if f.secret => "password",
                    InputType::Text => "text",
                    InputType::Url => "url",
                    InputType::Password => "password",
                    InputType::Number => "number",
                },
                required: f.required && !(f.secret && stored.iter().any(|s| s == f.name)),
                secret: f.secret,
                placeholder: f.placeholder,
                help: f.help,
                value: if f.secret {
                    String::new()
                } else {
                    values(f.name)
                },
                stored: f.secret && stored.iter().any(|s| s == f.name),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "servers/form.html")]
struct FormPage {
    chrome: Chrome,
    title: String,
    action: String,
    server_id: String,
    name: String,
    modules: Vec<Choice>,
    module_description: String,
    groups: Vec<Choice>,
    max_accounts: String,
    max_concurrent: String,
    enabled: bool,
    creds: Vec<CredField>,
    tls_mode: String,
    tls_sha256: String,
    errors: Errors,
    /// The saved server's recent health (inline SVG), or "".
    chart: Option<crate::web::health_chart::Chart>,
}

#[derive(Template)]
#[template(path = "servers/credential_fields.html")]
struct CredFragment {
    creds: Vec<CredField>,
    module_description: String,
}

/// What the form shows: typed values (on a failed save) or stored ones.
struct Values {
    name: String,
    module: String,
    group_id: i64,
    max_accounts: String,
    max_concurrent: String,
    enabled: bool,
    creds: std::collections::BTreeMap<String, String>,
    stored_secrets: Vec<String>,
    tls_mode: String,
    tls_sha256: String,
}

async fn render(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    id: Option<i64>,
    v: Values,
    errors: Errors,
) -> WebResult<Response> {
    let groups = catalog::list_groups(&state.pool).await?;
    let module = state
        .registry
        .get(&v.module)
        .or_else(|| state.registry.all().next().cloned());
    let modules = state
        .registry
        .all()
        .map(|m| Choice {
            value: m.info().id.to_owned(),
            label: m.info().label.to_owned(),
            selected: module.as_ref().is_some_and(|s| s.info().id == m.info().id),
        })
        .collect();
    let creds = module.as_ref().map_or_else(Vec::new, |m| {
        cred_fields(
            m.info(),
            &|k| v.creds.get(k).cloned().unwrap_or_default(),
            &v.stored_secrets,
            &errors,
        )
    });
    let t = FormPage {
        chrome: Chrome::new(admin, "servers"),
        title: if id.is_some() {
            format!("Edit server {}", v.name)
        } else {
            "Add server".to_owned()
        },
        action: id.map_or_else(
            || "/admin/servers".to_owned(),
            |i| format!("/admin/servers/{i}"),
        ),
        server_id: id.map(|i| i.to_string()).unwrap_or_default(),
        name: v.name,
        module_description: module
            .as_ref()
            .map(|m| m.info().description.to_owned())
            .unwrap_or_default(),
        modules,
        groups: groups
            .into_iter()
            .map(|g| Choice {
                selected: g.id == v.group_id,
                value: g.id.to_string(),
                label: format!("{} ({})", g.name, g.placement.replace('_', " ")),
            })
            .collect(),
        max_accounts: v.max_accounts,
        max_concurrent: v.max_concurrent,
        enabled: v.enabled,
        creds,
        tls_mode: v.tls_mode,
        tls_sha256: v.tls_sha256,
        errors,
        chart: match id {
            Some(id) => crate::web::health_chart::Chart::of(
                &servers::health_history(&state.pool, id, 60).await?,
            ),
            None => None,
        },
    };
    page_with(state, admin, status, &t)
}

pub async fn new(State(state): State<AppState>, admin: Admin) -> WebResult<Response> {
    let v = Values {
        name: String::new(),
        module: String::new(),
        group_id: 0,
        max_accounts: "0".into(),
        max_concurrent: servers::DEFAULT_MAX_CONCURRENT.to_string(),
        enabled: true,
        creds: Default::default(),
        stored_secrets: Vec::new(),
        tls_mode: "verify".into(),
        tls_sha256: String::new(),
    };
    render(&state, &admin, StatusCode::OK, None, v, Errors::default()).await
}

pub async fn edit(State(state): State<AppState>, admin: Admin, Id(id): Id) -> WebResult<Response> {
    let r = servers::get(&state.pool, id).await?;
    let v = Values {
        name: r.name,
        module: r.module,
        group_id: r.group_id,
        max_accounts: r.max_accounts.to_string(),
        max_concurrent: r.max_concurrent.to_string(),
        enabled: r.enabled,
        creds: r.credentials.0,
        stored_secrets: r.secrets_set,
        tls_mode: r.tls_mode,
        tls_sha256: r.tls_sha256.unwrap_or_default(),
    };
    render(
        &state,
        &admin,
        StatusCode::OK,
        Some(id),
        v,
        Errors::default(),
    )
    .await
}

/// The TLS trust the form says (`verify` when left out).
fn tls_of(form: &FormData) -> crate::app::tls::ServerTls {
    crate::app::tls::ServerTls {
        mode: Some(form.get("tls_mode"))
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "verify".into()),
        sha256: Some(form.get("tls_sha256")),
    }
}

fn input_of(form: &FormData, errors: &mut FieldErrors) -> ServerInput {
    ServerInput {
        name: form.get("name"),
        module: form.get("module"),
        group_id: form.int("group_id", 0, errors),
        max_accounts: form.int("max_accounts", 0, errors),
        max_concurrent: form.int("max_concurrent", servers::DEFAULT_MAX_CONCURRENT, errors),
        enabled: form.has("enabled"),
        credentials: form.prefixed("credentials."),
        tls: Some(tls_of(form)),
    }
}

async fn save(
    state: AppState,
    admin: Admin,
    id: Option<i64>,
    form: FormData,
) -> WebResult<Response> {
    let mut parse_errors = FieldErrors::default();
    let input = input_of(&form, &mut parse_errors);
    let result = if !parse_errors.is_empty() {
        Err(AppError::Validation(parse_errors))
    } else if let Some(id) = id {
        servers::replace(&state, id, &input, None).await
    } else {
        servers::create(&state, &input).await
    };
    match result {
        Ok(saved) => Ok(flash_redirect(
            &state,
            "/admin/servers",
            "success",
            &format!(
                "Server {} saved. Use the plug icon to check that it is online.",
                saved.name
            ),
        )),
        Err(e) => {
            let errors = form_errors(e)?;
            let stored_secrets = match id {
                Some(id) => servers::get(&state.pool, id).await?.secrets_set,
                None => Vec::new(),
            };
            let v = Values {
                name: input.name,
                module: input.module,
                group_id: input.group_id,
                max_accounts: form.get("max_accounts"),
                max_concurrent: form.get("max_concurrent"),
                enabled: input.enabled,
                creds: input.credentials,
                stored_secrets,
                tls_mode: form.get("tls_mode"),
                tls_sha256: form.get("tls_sha256"),
            };
            render(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                id,
                v,
                errors,
            )
            .await
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    form: FormData,
) -> WebResult<Response> {
    save(state, admin, None, form).await
}

pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
    form: FormData,
) -> WebResult<Response> {
    save(state, admin, Some(id), form).await
}

#[derive(Deserialize)]
pub struct ModuleQuery {
    module: String,
    #[serde(default)]
    server_id: String,
}

/// The credential fields of another module (the module select's htmx swap).
pub async fn module_fields(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<ModuleQuery>,
) -> WebResult<Response> {
    let Some(module) = state.registry.get(q.module.trim()) else {
        return fragment(&CredFragment {
            creds: Vec::new(),
            module_description: format!("Unknown module {:?}.", q.module),
        });
    };
    let stored = match q.server_id.parse::<i64>() {
        Ok(id) => Some(servers::get(&state.pool, id).await?),
        Err(_) => None,
    }
    .filter(|r| r.module == module.info().id);
    let (values, secrets) = stored
        .map(|r| (r.credentials.0, r.secrets_set))
        .unwrap_or_default();
    fragment(&CredFragment {
        creds: cred_fields(
            module.info(),
            &|k| values.get(k).cloned().unwrap_or_default(),
            &secrets,
            &Errors::default(),
        ),
        module_description: module.info().description.to_owned(),
    })
}

#[derive(Template)]
#[template(path = "servers/test_result.html")]
struct TestResult {
    ok: bool,
    name: String,
    version: String,
    latency_ms: u64,
    error: Option<ErrorBox>,
    certificate: Option<provisioning::CertificateInfo>,
    problems: Vec<String>,
}

/// "Test Connection": the form's values as typed (blank secret = stored one).
pub async fn test(
    State(state): State<AppState>,
    _admin: Admin,
    form: FormData,
) -> WebResult<Response> {
    let input = UnsavedTest {
        module: form.get("module"),
        credentials: form.prefixed("credentials."),
        server_id: form.get("server_id").trim().parse().ok(),
        tls: Some(tls_of(&form)),
    };
    let mut t = TestResult {
        ok: false,
        name: String::new(),
        version: String::new(),
        latency_ms: 0,
        error: None,
        certificate: None,
        problems: Vec::new(),
    };
    match connection::test_unsaved(&state, &input).await {
        Ok(o) => {
            let text = |k: &str| {
                o.server
                    .as_ref()
                    .and_then(|s| s.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            t.ok = o.ok;
            t.name = text("name");
            t.version = text("version");
            t.latency_ms = o.latency_ms;
            t.error = o.error.as_ref().map(ErrorBox::from_failure);
            t.certificate = o
                .error
                .as_ref()
                .and_then(|e| e.certificate.as_deref().cloned());
        }
        Err(e) => t.problems = form_errors(e)?.all(),
    }
    fragment(&t)
}
