//! Prints, for every simulator fault, what the Panel client reports: the error
//! kind, whether it is retryable, whether the outcome is unknown, the message.
//!
//! `cargo run -p opterius --example fault_table`

use std::time::Duration;

use opterius::{ApiUrl, ClientOptions, CreateAccount, PanelClient};
use opterius_sim::{Faults, Sim, SimConfig, Target};

fn client(url: &str, token: &str, opts: &ClientOptions) -> PanelClient {
    let http = opts.build().expect("http client");
    PanelClient::new(
        http,
        ApiUrl::parse(url).expect("api_url"),
        token.to_owned().into(),
    )
    .with_network(opts.network.clone())
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

#[tokio::main]
async fn main() {
    let opts = ClientOptions {
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        network: opterius::NetworkPolicy::parse_list("127.0.0.0/8").expect("networks"),
        ..Default::default()
    };
    let sim = Sim::start_local(SimConfig::default()).await.expect("sim");
    let panel = client(sim.url(), &sim.token(0), &opts);
    println!("| fault | kind | retryable | outcome unknown | message |\n|---|---|---|---|---|");
    let row = |fault: &str, r: Result<String, opterius::PanelError>| match r {
        Ok(ok) => println!("| {fault} | (success) | | | {ok} |"),
        Err(e) => println!(
            "| {fault} | {} | {} | {} | {} |",
            e.kind, e.retryable, e.outcome_unknown, e.message
        ),
    };
    let stats = |p: &PanelClient| {
        let p = p.clone();
        async move {
            p.server_stats()
                .await
                .result
                .map(|s| format!("{:?} {:?}", s.name, s.version))
        }
    };
    for (label, faults) in [
        (
            "latency_ms 300",
            Faults {
                latency_ms: 300,
                ..Default::default()
            },
        ),
        (
            "status 401",
            Faults {
                status: Some(401),
                ..Default::default()
            },
        ),
        (
            "status 403",
            Faults {
                status: Some(403),
                ..Default::default()
            },
        ),
        (
            "status 404",
            Faults {
                status: Some(404),
                ..Default::default()
            },
        ),
        (
            "status 422",
            Faults {
                status: Some(422),
                ..Default::default()
            },
        ),
        (
            "status 429",
            Faults {
                status: Some(429),
                ..Default::default()
            },
        ),
        (
            "status 500",
            Faults {
                status: Some(500),
                ..Default::default()
            },
        ),
        (
            "status 504",
            Faults {
                status: Some(504),
                ..Default::default()
            },
        ),
        (
            "error_rate 1.0 (503)",
            Faults {
                error_rate: 1.0,
                ..Default::default()
            },
        ),
        (
            "hang",
            Faults {
                hang: true,
                ..Default::default()
            },
        ),
        (
            "drop_connection",
            Faults {
                drop_connection: true,
                ..Default::default()
            },
        ),
        (
            "malformed_json",
            Faults {
                malformed_json: true,
                ..Default::default()
            },
        ),
    ] {
        sim.set_faults(Target::All, faults);
        row(label, stats(&panel).await);
    }
    sim.clear_faults();
    sim.set_faults(
        Target::All,
        Faults {
            lose_reply: true,
            remaining: Some(1),
            ..Default::default()
        },
    );
    row(
        "lose_reply (create)",
        panel
            .create_account(&account("erin", "Starter"))
            .await
            .result
            .map(|a| a.id),
    );
    row(
        "create again after lose_reply",
        panel
            .create_account(&account("erin", "Starter"))
            .await
            .result
            .map(|a| a.id),
    );
    row(
        "wrong-case package",
        panel
            .create_account(&account("carol", "starter"))
            .await
            .result
            .map(|a| a.id),
    );
    sim.rotate_token(Target::Server(0), "rotated");
    row("token rotated on the Panel", stats(&panel).await);
    let tls = Sim::start_local(SimConfig {
        tls: true,
        ..Default::default()
    })
    .await
    .expect("tls sim");
    row(
        "self-signed TLS",
        stats(&client(tls.url(), &tls.token(0), &opts)).await,
    );
    let insecure = ClientOptions {
        verify_tls: false,
        ..opts.clone()
    };
    row(
        "self-signed TLS, SSL_VERIFY=false",
        stats(&client(tls.url(), &tls.token(0), &insecure)).await,
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    row(
        "nothing listening (refused)",
        stats(&client(&format!("http://127.0.0.1:{port}"), "t", &opts)).await,
    );
}
