//! Sign in and out. The login form carries its own CSRF token (a cookie and a
//! matching field), failed sign-ins are throttled per address and email.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::app::admins;
use crate::crypto::random_token;
use crate::front::AppState;
use crate::web::error::{WebError, WebResult};
use crate::web::form::FormData;
use crate::web::ratelimit::LoginLimiter;
use crate::web::session::{self, Admin, our_cookie, set_cookie};

const LOGIN_CSRF_COOKIE: &str = "commerce_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    next: String,
    error: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only local admin paths are followed after sign-in (no open redirect).
fn safe_next(next: &str) -> String {
    if next.starts_with("/admin") && !next.starts_with("//") && !next.contains('\\') {
        next.to_owned()
    } else {
        "/admin".to_owned()
    }
}

fn render(
    state: &AppState,
    status: StatusCode,
    email: String,
    next: String,
    error: String,
) -> WebResult<Response> {
    let csrf = random_token(24);
    let body = LoginPage {
        csrf: csrf.clone(),
        email,
        next,
        error,
    }
    .render()?;
    Ok((
        status,
        [(
            header::SET_COOKIE,
            set_cookie(state, LOGIN_CSRF_COOKIE, &csrf, 3600),
        )],
        Html(body),
    )
        .into_response())
}

pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> WebResult<Response> {
    let next = safe_next(q.next.as_deref().unwrap_or("/admin"));
    if session::current(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    render(&state, StatusCode::OK, String::new(), next, String::new())
}

/// The client's address: the peer, or, when the peer is a trusted proxy
/// (`TRUSTED_PROXIES`), the right-most `X-Forwarded-For` hop it did not add
/// itself. Without connect info every client is "unknown": stricter, never looser.
pub fn client_ip(
    info: Option<&ConnectInfo<SocketAddr>>,
    headers: &HeaderMap,
    trusted: &[opterius::Cidr],
) -> String {
    let Some(peer) = info.map(|c| c.0.ip()) else {
        return "unknown".to_owned();
    };
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer.to_string();
    }
    let hops: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
        .to_string()
}

pub async fn submit(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<LoginLimiter>>,
    info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: FormData,
) -> WebResult<Response> {
    let email = form.get("email").trim().to_owned();
    let password = form.get("password");
    let next = safe_next(&form.get("next"));
    let expected = our_cookie(&state, &headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected != form.get("_csrf") {
        return render(
            &state,
            StatusCode::FORBIDDEN,
            email,
            next,
            "This sign-in form had expired. It has been refreshed: enter your password again."
                .into(),
        );
    }
    let ip = client_ip(
        info.as_ref().map(|e| &e.0),
        &headers,
        &state.config.trusted_proxies,
    );
    // Reserve before verifying: parallel attempts cannot all pass the check.
    let slot = match limiter.reserve(&ip, &email) {
        Ok(slot) => slot,
        Err(wait) => {
            return render(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                email,
                next,
                format!(
                    "Too many sign-in attempts for this account or from this address. Wait {} second(s) and try again.",
                    wait.as_secs().max(1)
                ),
            );
        }
    };
    match admins::verify(&state.pool, &email, &password, &limiter.hashing).await? {
        Some(admin_id) => {
            slot.succeeded();
            let value = session::start(&state, admin_id).await?;
            tracing::info!(admin.id = admin_id, "admin signed in");
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            h.append(header::SET_COOKIE, session::session_cookie(&state, &value));
            h.append(
                header::SET_COOKIE,
                set_cookie(&state, LOGIN_CSRF_COOKIE, "", 0),
            );
            Ok(resp)
        }
        None => {
            slot.failed();
            tracing::info!("failed admin sign-in");
            render(
                &state,
                StatusCode::UNAUTHORIZED,
                email,
                next,
                "Wrong email or password. Check both and try again (after 5 failures, sign-in for the account pauses for a minute).".into(),
            )
        }
    }
}

pub async fn logout(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let clear = session::end(&state, &headers).await?;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, clear);
    Ok(resp)
}
