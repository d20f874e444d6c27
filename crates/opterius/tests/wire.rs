//! The Panel and Agent clients against the in-process simulator: every endpoint,
//! every fault, the error kind and the fix the admin is shown.

use std::sync::Arc;
use std::time::Duration;

use opterius::{
    AgentClient, AgentCreateAccount, ApiUrl, ClientOptions, CreateAccount, ErrorKind, PanelClient,
    PanelError,
};
use opterius_sim::{Faults, Sim, SimConfig, Target};
use secrecy::SecretString;

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        network: opterius::NetworkPolicy::parse_list("127.0.0.0/8").expect("networks"),
        ..Default::default()
    }
}

fn client_for(url: &str, token: &str, opts: &ClientOptions) -> PanelClient {
    PanelClient::new(
        opts.build().expect("http client"),
        ApiUrl::parse(url).expect("api_url"),
        SecretString::from(token.to_owned()),
    )
    .with_network(opts.network.clone())
}

async fn sim() -> Sim {
    Sim::start_local(SimConfig {
        servers: 4,
        ..Default::default()
    })
    .await
    .expect("sim starts")
}

fn account(username: &str, package: &str) -> CreateAccount {
    CreateAccount {
        username: username.into(),
        password: "Gen3rated!Passw0rd".into(),
        domain: format!("{username}.example.com"),
        package: package.into(),
        email: format!("{username}@example.com"),
        disk_limit_mb: 1024,
        bandwidth_limit_mb: 10240,
    }
}

fn err<T: std::fmt::Debug>(r: Result<T, PanelError>) -> PanelError {
    r.expect_err("the call should fail")
}

#[tokio::test]
async fn every_panel_endpoint_round_trips() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());

    let stats = panel.server_stats().await.result.expect("stats");
    assert_eq!(stats.name.as_deref(), Some("sim-panel-0"));
    assert_eq!(stats.version.as_deref(), Some("2.4.1-sim"));

    let created = panel.create_account(&account("alice", "Starter")).await;
    let id = created.result.expect("create").id;
    assert_eq!(created.response.as_ref().map(|r| r.status), Some(201));
    let logged = created.request.body.expect("body recorded").to_string();
    assert!(
        logged.contains("[redacted]") && !logged.contains("Gen3rated"),
        "password is redacted: {logged}"
    );

    let info = panel.account_info(&id).await.result.expect("info");
    assert_eq!(
        (info.username.as_deref(), info.status.as_deref()),
        (Some("alice"), Some("active"))
    );
    panel.suspend_account(&id).await.result.expect("suspend");
    assert_eq!(
        panel
            .account_info(&id)
            .await
            .result
            .expect("info")
            .status
            .as_deref(),
        Some("suspended")
    );
    panel
        .unsuspend_account(&id)
        .await
        .result
        .expect("unsuspend");
    assert_eq!(
        panel
            .account_info(&id)
            .await
            .result
            .expect("info")
            .status
            .as_deref(),
        Some("active")
    );
    panel
        .terminate_account(&id)
        .await
        .result
        .expect("terminate");
    let gone = err(panel.account_info(&id).await.result);
    assert_eq!(gone.kind, ErrorKind::NotFound);
    assert_eq!(sim.creates(Target::Server(0)).get("alice"), Some(&1));
}

#[tokio::test]
async fn api_url_with_a_path_prefix_reaches_that_server_with_its_own_token() {
    let sim = sim().await;
    let panel = client_for(&sim.server_url(3), &sim.token(3), &options());
    let stats = panel.server_stats().await.result.expect("stats");
    assert_eq!(stats.name.as_deref(), Some("sim-panel-3"));
    // Server 0's token does not open server 3.
    let wrong = client_for(&sim.server_url(3), &sim.token(0), &options());
    assert_eq!(
        err(wrong.server_stats().await.result).kind,
        ErrorKind::Unauthorized
    );
}

#[tokio::test]
async fn duplicate_username_is_a_conflict() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    panel
        .create_account(&account("bob", "Pro"))
        .await
        .result
        .expect("first create");
    let e = err(panel.create_account(&account("bob", "Pro")).await.result);
    assert_eq!(
        (e.kind, e.http_status, e.retryable),
        (ErrorKind::Conflict, Some(409), false)
    );
    assert!(e.message.contains("bob"), "{}", e.message);
    assert_eq!(sim.creates(Target::All).get("bob"), Some(&1));
}

#[tokio::test]
async fn wrong_case_package_is_422_with_the_panel_message_and_the_case_hint() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    let e = err(panel
        .create_account(&account("carol", "starter"))
        .await
        .result);
    assert_eq!(
        (e.kind, e.http_status, e.retryable),
        (ErrorKind::Validation, Some(422), false)
    );
    assert!(
        e.message.contains("Package 'starter' does not exist"),
        "{}",
        e.message
    );
    assert!(
        e.hint.contains("case-sensitive") && e.hint.contains("Panel → Packages"),
        "{}",
        e.hint
    );
    assert!(sim.accounts(Target::All).is_empty());
}

#[tokio::test]
async fn rotated_token_gives_401_with_the_new_token_hint() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    panel
        .server_stats()
        .await
        .result
        .expect("works before rotation");
    sim.rotate_token(Target::Server(0), "rotated-token");
    let e = err(panel.server_stats().await.result);
    assert_eq!(
        (e.kind, e.http_status, e.retryable),
        (ErrorKind::Unauthorized, Some(401), false)
    );
    assert!(
        e.hint
            .contains("Generate a new token in Panel → Settings → API"),
        "{}",
        e.hint
    );
    client_for(sim.url(), "rotated-token", &options())
        .server_stats()
        .await
        .result
        .expect("new token works");
}

#[tokio::test]
async fn forced_statuses_map_to_their_kinds_and_hints() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    let cases = [
        (
            401,
            ErrorKind::Unauthorized,
            false,
            "Panel → Settings → API",
        ),
        (403, ErrorKind::Forbidden, false, "allowlist"),
        (422, ErrorKind::Validation, false, "case-sensitive"),
        (404, ErrorKind::NotFound, false, "api_url"),
        (409, ErrorKind::Conflict, false, "already exists"),
        (400, ErrorKind::ClientError, false, "refused"),
        (429, ErrorKind::RateLimited, true, "backoff"),
        (500, ErrorKind::ServerError, true, "logs"),
        (503, ErrorKind::ServerError, true, "retries"),
        (504, ErrorKind::GatewayTimeout, true, "Nginx/Apache"),
    ];
    for (status, kind, retryable, hint) in cases {
        sim.set_faults(
            Target::Server(0),
            Faults {
                status: Some(status),
                ..Default::default()
            },
        );
        let e = err(panel.server_stats().await.result);
        assert_eq!(
            (e.kind, e.retryable, e.http_status),
            (kind, retryable, Some(status)),
            "status {status}"
        );
        assert!(e.hint.contains(hint), "status {status}: {}", e.hint);
        assert!(!e.message.is_empty());
    }
}

#[tokio::test]
async fn error_rate_one_gives_503_and_clearing_it_recovers() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    sim.set_faults(
        Target::Server(0),
        Faults {
            error_rate: 1.0,
            remaining: Some(2),
            ..Default::default()
        },
    );
    for _ in 0..2 {
        let e = err(panel.server_stats().await.result);
        assert_eq!(
            (e.kind, e.http_status, e.retryable, e.outcome_unknown),
            (ErrorKind::ServerError, Some(503), true, false)
        );
    }
    panel
        .server_stats()
        .await
        .result
        .expect("faults used up after two requests");
}

#[tokio::test]
async fn latency_below_the_timeout_still_succeeds() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    sim.set_faults(
        Target::Server(0),
        Faults {
            latency_ms: 300,
            ..Default::default()
        },
    );
    let ex = panel.server_stats().await;
    ex.result.expect("slow but fine");
    assert!(ex.elapsed >= Duration::from_millis(300));
}

#[tokio::test]
async fn hang_is_a_timeout_whose_outcome_is_unknown() {
    let sim = sim().await;
    let opts = ClientOptions {
        timeout: Duration::from_millis(500),
        ..options()
    };
    let panel = client_for(sim.url(), &sim.token(0), &opts);
    sim.set_faults(
        Target::Server(0),
        Faults {
            hang: true,
            ..Default::default()
        },
    );
    let ex = panel.create_account(&account("dave", "Starter")).await;
    let e = err(ex.result);
    assert_eq!(
        (e.kind, e.retryable, e.outcome_unknown),
        (ErrorKind::Timeout, true, true)
    );
    assert!(e.hint.contains("health"), "{}", e.hint);
    // What happened, not how long it took: the Panel got the request and hung.
    let seen: Vec<_> = sim.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(seen, ["hung"]);
    assert!(ex.response.is_none(), "no answer arrived");
}

#[tokio::test]
async fn dropped_connection_is_reported_with_unknown_outcome() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    sim.set_faults(
        Target::Server(0),
        Faults {
            drop_connection: true,
            ..Default::default()
        },
    );
    let e = err(panel.server_stats().await.result);
    assert_eq!(
        (e.kind, e.retryable, e.outcome_unknown),
        (ErrorKind::ConnectionDropped, true, true),
        "{e:?}"
    );
    assert!(e.hint.contains("outcome is unknown"), "{}", e.hint);
}

#[tokio::test]
async fn malformed_json_is_an_invalid_response() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    sim.set_faults(
        Target::Server(0),
        Faults {
            malformed_json: true,
            ..Default::default()
        },
    );
    let e = err(panel.server_stats().await.result);
    assert_eq!(
        (e.kind, e.http_status),
        (ErrorKind::InvalidResponse, Some(200))
    );
    assert!(e.message.contains("not valid JSON"), "{}", e.message);
    assert!(
        e.hint.contains("api_url points at the Panel API"),
        "{}",
        e.hint
    );
}

#[tokio::test]
async fn commit_then_lose_the_reply_creates_exactly_one_account() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    sim.set_faults(
        Target::Server(0),
        Faults {
            lose_reply: true,
            only: Some("create".into()),
            remaining: Some(1),
            ..Default::default()
        },
    );
    let e = err(panel
        .create_account(&account("erin", "Starter"))
        .await
        .result);
    assert_eq!(
        (e.kind, e.outcome_unknown),
        (ErrorKind::ConnectionDropped, true)
    );
    assert_eq!(
        sim.accounts(Target::Server(0)).len(),
        1,
        "the Panel did create it"
    );
    // Creating again under the same username is refused, never doubled.
    let again = err(panel
        .create_account(&account("erin", "Starter"))
        .await
        .result);
    assert_eq!(again.kind, ErrorKind::Conflict);
    assert_eq!(sim.creates(Target::All).get("erin"), Some(&1));
}

#[tokio::test]
async fn self_signed_tls_fails_verification_unless_ssl_verify_is_off() {
    let sim = Sim::start_local(SimConfig {
        tls: true,
        ..Default::default()
    })
    .await
    .expect("tls sim");
    assert!(sim.url().starts_with("https://"));
    let e = err(client_for(sim.url(), &sim.token(0), &options())
        .server_stats()
        .await
        .result);
    assert_eq!((e.kind, e.retryable), (ErrorKind::Tls, false), "{e:?}");
    assert!(
        e.message.contains("SSL certificate verify failed"),
        "{}",
        e.message
    );
    assert!(
        e.hint.contains("SSL_VERIFY=false") && e.hint.contains("valid certificate"),
        "{}",
        e.hint
    );
    let insecure = ClientOptions {
        verify_tls: false,
        ..options()
    };
    let stats = client_for(sim.url(), &sim.token(0), &insecure)
        .server_stats()
        .await
        .result
        .expect("verify off");
    assert_eq!(stats.name.as_deref(), Some("sim-panel-0"));
}

#[tokio::test]
async fn closed_port_is_connection_refused_with_the_port_hint() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let panel = client_for(&format!("http://127.0.0.1:{port}"), "t", &options());
    let e = err(panel.server_stats().await.result);
    assert_eq!(
        (e.kind, e.retryable, e.outcome_unknown),
        (ErrorKind::ConnectionRefused, true, false),
        "{e:?}"
    );
    assert!(
        e.hint.contains("port in api_url") && e.hint.contains("firewall"),
        "{}",
        e.hint
    );
}

/// Resolves only `*.sim.test` names to loopback; everything else fails the way
/// getaddrinfo does, so the DNS test sends no packet off this machine.
struct LoopbackResolver(std::net::SocketAddr);

impl reqwest::dns::Resolve for LoopbackResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let known = name.as_str().ends_with(".sim.test");
        let addr = self.0;
        Box::pin(async move {
            if known {
                Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs)
            } else {
                Err(Box::new(std::io::Error::other(
                    "failed to lookup address information: Name or service not known",
                ))
                    as Box<dyn std::error::Error + Send + Sync>)
            }
        })
    }
}

#[tokio::test]
async fn unknown_host_is_a_dns_error_with_the_hostname_hint() {
    let sim = sim().await;
    let opts = ClientOptions {
        resolver: Some(Arc::new(LoopbackResolver(sim.addr()))),
        ..options()
    };
    let port = sim.addr().port();
    let ok = client_for(
        &format!("http://panel.sim.test:{port}"),
        &sim.token(0),
        &opts,
    );
    ok.server_stats().await.result.expect("known name resolves");
    let typo = client_for(
        &format!("http://pnael.example.invalid:{port}"),
        &sim.token(0),
        &opts,
    );
    let e = err(typo.server_stats().await.result);
    assert_eq!((e.kind, e.retryable), (ErrorKind::Dns, false), "{e:?}");
    assert!(e.message.contains("pnael.example.invalid"), "{}", e.message);
    assert!(e.hint.contains("hostname in api_url"), "{}", e.hint);
}

#[tokio::test]
async fn stale_and_tampered_requests_are_refused_by_the_simulator() {
    let sim = sim().await;
    let http = options().build().expect("client");
    let token = sim.token(0);
    let old = (chrono::Utc::now().timestamp() - 301).to_string();
    let future = (chrono::Utc::now().timestamp() + 301).to_string();
    for ts in [old, future] {
        let sig = opterius::panel::sign(&token, &ts, b"");
        let r = http
            .get(format!("{}/api/server/stats", sim.url()))
            .header("X-Timestamp", &ts)
            .header("X-Signature", sig)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 401);
    }
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = opterius::panel::sign(&token, &ts, br#"{"username":"x"}"#);
    let r = http
        .post(format!("{}/api/accounts", sim.url()))
        .header("X-Timestamp", &ts)
        .header("X-Signature", sig)
        .header("Content-Type", "application/json")
        .body(r#"{"username":"y"}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 401);
    assert!(sim.accounts(Target::All).is_empty());
}

#[tokio::test]
async fn agent_client_signs_full_paths_and_round_trips() {
    let sim = sim().await;
    let http = options().build().expect("client");
    let agent = AgentClient::new(
        http.clone(),
        ApiUrl::parse(&sim.agent_url()).expect("url"),
        SecretString::from("sim-agent-secret".to_owned()),
    )
    .with_network(options().network);
    agent.health().await.result.expect("health");
    let new = AgentCreateAccount {
        username: "alice".into(),
        domain: "alice.example.com".into(),
        email: "alice@example.com".into(),
        password: "s3cur3p@ss-long".into(),
        package_id: 1,
    };
    agent.create_account(&new).await.result.expect("create");
    assert_eq!(
        err(agent.create_account(&new).await.result).kind,
        ErrorKind::Conflict
    );
    agent
        .suspend_account("alice")
        .await
        .result
        .expect("suspend");
    assert!(sim.accounts(Target::Agent)[0].suspended);
    agent
        .unsuspend_account("alice")
        .await
        .result
        .expect("unsuspend");
    agent.delete_account("alice").await.result.expect("delete");
    assert!(sim.accounts(Target::Agent).is_empty());
    assert_eq!(
        err(agent.suspend_account("alice").await.result).kind,
        ErrorKind::NotFound
    );

    let wrong = AgentClient::new(
        http,
        ApiUrl::parse(&sim.agent_url()).expect("url"),
        SecretString::from("nope".to_owned()),
    )
    .with_network(options().network);
    assert_eq!(
        err(wrong.health().await.result).kind,
        ErrorKind::Unauthorized
    );
    sim.set_faults(
        Target::Agent,
        Faults {
            status: Some(403),
            ..Default::default()
        },
    );
    assert_eq!(err(agent.health().await.result).kind, ErrorKind::Forbidden);
}

/// Fails every lookup with a message that has none of getaddrinfo's words.
struct TerseResolver;

impl reqwest::dns::Resolve for TerseResolver {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            Err(Box::new(std::io::Error::other("no such host"))
                as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

#[tokio::test]
async fn a_lookup_failure_in_other_words_is_still_a_dns_error() {
    let opts = ClientOptions {
        resolver: Some(Arc::new(TerseResolver)),
        ..options()
    };
    let panel = client_for("http://panel.example.invalid:1", "any-token", &opts);
    let e = err(panel.server_stats().await.result);
    assert_eq!((e.kind, e.retryable), (ErrorKind::Dns, false), "{e:?}");
    assert!(e.message.contains("panel.example.invalid"), "{}", e.message);
}

#[tokio::test]
async fn answers_are_kept_for_the_log_with_secret_keys_redacted_and_the_rest_intact() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    sim.set_faults(
        Target::Server(0),
        Faults {
            secret_fields: true,
            ..Default::default()
        },
    );
    let ex = panel.create_account(&account("ivan", "Starter")).await;
    let created = ex.result.expect("created");
    let logged = ex.response.expect("an answer");
    assert_eq!(logged.status, 201);
    let body: serde_json::Value = serde_json::from_str(&logged.body)
        .unwrap_or_else(|e| panic!("the logged answer is not JSON ({e}): {}", logged.body));
    assert_eq!(body["id"].to_string(), created.id, "{body}");
    assert_eq!(body["username"], "ivan", "{body}");
    for key in [
        "password",
        "api_token",
        "token",
        "secret",
        "secret_key",
        "signature",
    ] {
        assert_eq!(body[key], "[redacted]", "{key}: {body}");
        assert_eq!(body["credentials"][key], "[redacted]", "{key}: {body}");
    }
    assert!(!logged.body.contains("sim-leak-"), "{}", logged.body);
}

#[tokio::test]
async fn an_answer_cut_mid_body_is_a_dropped_connection_after_the_panel_acted() {
    let sim = sim().await;
    let panel = client_for(sim.url(), &sim.token(0), &options());
    sim.set_faults(
        Target::Server(0),
        Faults {
            cut_body: true,
            only: Some("create".into()),
            ..Default::default()
        },
    );
    let e = err(panel
        .create_account(&account("judy", "Starter"))
        .await
        .result);
    assert_eq!(
        (e.kind, e.retryable, e.outcome_unknown),
        (ErrorKind::ConnectionDropped, true, true),
        "{e:?}"
    );
    assert!(
        e.message.contains("broke while reading the answer"),
        "the Panel had answered: {}",
        e.message
    );
    assert_eq!(sim.creates(Target::Server(0)).get("judy"), Some(&1));
}
