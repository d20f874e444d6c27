//! Admin sessions: a random cookie whose SHA-256 names a row in `admin_sessions`,
//! the [`Admin`] extractor every admin handler takes (it also checks the CSRF
//! token of state-changing requests), and flash messages carried in a cookie.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::Deserialize;

use crate::app::sessions::{self, SESSION_HOURS};
use crate::front::AppState;
use crate::web::error::WebError;

pub const SESSION_COOKIE: &str = "commerce_session";
const FLASH_COOKIE: &str = "commerce_flash";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in admin, with the session's CSRF token and any flash message.
#[derive(Debug, Clone)]
pub struct Admin {
    pub id: i64,
    pub email: String,
    pub csrf: String,
    pub flash: Option<Flash>,
}

/// A one-shot message shown on the next full page.
#[derive(Debug, Clone)]
pub struct Flash {
    /// `success`, `error` or `info`.
    pub kind: String,
    pub message: String,
}

/// The CSRF token a form carried in its `_csrf` field, lifted out of the body
/// by [`csrf_from_form`] so the [`Admin`] extractor can check it.
#[derive(Clone)]
struct FormCsrf(String);

pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some()
}

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A cookie's name on the wire: `__Host-` prefixed when cookies are Secure, so
/// a browser only accepts it from this host over TLS, for path `/`.
pub fn cookie_name(state: &AppState, base: &str) -> String {
    if state.config.cookies_secure() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The value of our cookie `base` (under its wire name).
pub fn our_cookie(state: &AppState, headers: &HeaderMap, base: &str) -> Option<String> {
    cookie(headers, &cookie_name(state, base))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure (and
/// `__Host-`) unless serving plain HTTP on loopback.
pub fn set_cookie(state: &AppState, base: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.cookies_secure() {
        "; Secure"
    } else {
        ""
    };
    let name = cookie_name(state, base);
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Starts a session for `admin_id`; returns the cookie value (stored only hashed).
pub async fn start(state: &AppState, admin_id: i64) -> Result<String, WebError> {
    Ok(sessions::start(&state.pool, admin_id).await?)
}

/// The session cookie for a new login.
pub fn session_cookie(state: &AppState, value: &str) -> HeaderValue {
    set_cookie(state, SESSION_COOKIE, value, SESSION_HOURS * 3600)
}

/// Ends the session and clears its cookie.
pub async fn end(state: &AppState, headers: &HeaderMap) -> Result<HeaderValue, WebError> {
    if let Some(value) = our_cookie(state, headers, SESSION_COOKIE) {
        sessions::end(&state.pool, &value).await?;
    }
    Ok(set_cookie(state, SESSION_COOKIE, "", 0))
}

/// The admin of the request's session, if it is valid.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Admin>, WebError> {
    let Some(value) = our_cookie(state, headers, SESSION_COOKIE).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    Ok(sessions::current(&state.pool, &value)
        .await?
        .map(|a| Admin {
            id: a.id,
            email: a.email,
            csrf: a.csrf,
            flash: read_flash(state, headers),
        }))
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Constant-time string comparison for tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Where an unauthenticated request is sent: a 303 to the login page, or for
/// htmx an `HX-Redirect` so the whole page goes there.
fn to_login(parts: &Parts) -> Response {
    if is_htmx(&parts.headers) {
        return (StatusCode::UNAUTHORIZED, [("HX-Redirect", "/login")]).into_response();
    }
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/admin");
    let target = if parts.method == Method::GET {
        format!(
            "/login?{}",
            serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
        )
    } else {
        "/login".to_owned()
    };
    Redirect::to(&target).into_response()
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let admin = current(state, &parts.headers)
            .await
            .map_err(IntoResponse::into_response)?
            .ok_or_else(|| to_login(parts))?;
        if unsafe_method(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| parts.extensions.get::<FormCsrf>().map(|f| f.0.clone()));
            if !sent.is_some_and(|t| same(&t, &admin.csrf)) {
                return Err(WebError::Forbidden(
                    "This request is missing its security (CSRF) token, or the token is from an old session. Reload the page and try again.".into(),
                )
                .into_response());
            }
        }
        Ok(admin)
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Lifts `_csrf` out of urlencoded form bodies of state-changing requests (plain
/// HTML forms cannot send headers); the body is passed on unchanged.
pub async fn csrf_from_form(req: Request, next: Next) -> Response {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !unsafe_method(req.method()) || !is_form || req.headers().contains_key(CSRF_HEADER) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return WebError::BadRequest("the form is too large or could not be read".into())
                .into_response();
        }
    };
    if let Ok(CsrfField { csrf: Some(token) }) = serde_urlencoded::from_bytes(&bytes) {
        parts.extensions.insert(FormCsrf(token));
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn read_flash(state: &AppState, headers: &HeaderMap) -> Option<Flash> {
    let raw = our_cookie(state, headers, FLASH_COOKIE)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (kind, message) = text.split_once('|')?;
    let kind = match kind {
        "success" | "error" | "info" => kind.to_owned(),
        _ => "info".to_owned(),
    };
    Some(Flash {
        kind,
        message: message.to_owned(),
    })
}

/// A 303 to `to` that shows `message` there.
pub fn flash_redirect(state: &AppState, to: &str, kind: &str, message: &str) -> Response {
    let value =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}|{message}"));
    let mut resp = Redirect::to(to).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, FLASH_COOKIE, &value, 60),
    );
    resp
}

/// Clears the flash cookie once a page has shown it.
pub fn clear_flash(state: &AppState, resp: &mut Response) {
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(state, FLASH_COOKIE, "", 0));
}
