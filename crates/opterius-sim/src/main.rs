//! `opterius-sim`: run the fake Opterius Panel (and Agent) as a process.

use std::net::SocketAddr;

use clap::Parser;
use opterius_sim::{Faults, Sim, SimConfig, Target};

/// A faithful fake Opterius Panel for tests, benchmarks and demos.
///
/// Prints its base URL (the api_url of server 0) as the first line of stdout.
/// Server n is also reachable at BASE/s/n with token TOKEN-n (server 0: TOKEN);
/// the Agent API is at BASE/agent. Every server also speaks the Panel's shipped
/// v1 API (Panel v2.8+) at BASE[/s/n]/api/v1/... with Bearer key API_KEY
/// (server n > 0: API_KEY-n): both dialects in one process, per server by path.
/// Faults are driven at run time through the unsigned control API:
///
///   POST   BASE/_sim/faults?server=N|agent|all   JSON body, any of:
///          {"latency_ms":100, "error_rate":0.3, "hang_rate":0.05, "status":401,
///           "hang":true, "drop_connection":true, "malformed_json":true,
///           "lose_reply":true, "status_after_act":503, "after_act_error_rate":0.3, "remaining":3, "only":"create",
///           v1 only: "key_expired":true, "ip_denied":true,
///           "scopes":["account.create"], "warning":true, "retry_after_secs":7,
///           "no_servers":true, "license_limit":5}
///   DELETE BASE/_sim/faults?server=...             clear faults
///   POST   BASE/_sim/token?server=N   {"token":"new"}   rotate a token
///   POST   BASE/_sim/packages?server=N {"packages":["Starter"]}
///   GET    BASE/_sim/accounts?server=N | /_sim/creates | /_sim/requests?limit=100
///   GET    BASE/_sim/servers          POST BASE/_sim/reset
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// api_token of server 0 (server n > 0 uses TOKEN-n).
    #[arg(long, default_value = "sim-token")]
    token: String,
    /// Comma-separated package names (case-sensitive, as Panel → Packages).
    #[arg(long, default_value = "Starter,Pro", value_delimiter = ',')]
    packages: Vec<String>,
    /// Number of Panel servers to simulate, at BASE/s/0 .. BASE/s/{N-1}.
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// Accepted X-Timestamp skew, in seconds, before answering 401.
    #[arg(long, default_value_t = 300)]
    window_secs: u64,
    /// Serve HTTPS with a freshly generated self-signed certificate.
    #[arg(long)]
    tls: bool,
    /// The v1 API key of server 0 (server n > 0 uses API_KEY-n).
    #[arg(
        long,
        default_value = "opt_sim0000000000000000000000000000000000000000000000"
    )]
    api_key: String,
    /// The Agent's secret_key (Agent API under BASE/agent).
    #[arg(long, default_value = "sim-agent-secret")]
    agent_secret: String,
    /// Panel version reported by /api/server/stats.
    #[arg(long, default_value = "2.4.1-sim")]
    panel_version: String,
    /// Start with this latency on every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Start with this fraction (0..1) of requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Start with this fraction (0..1) of requests left hanging.
    #[arg(long, default_value_t = 0.0)]
    hang_rate: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    anyhow::ensure!(args.servers >= 1, "--servers must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.error_rate),
        "--error-rate is a fraction between 0 and 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.hang_rate),
        "--hang-rate is a fraction between 0 and 1"
    );
    let config = SimConfig {
        token: args.token,
        packages: args
            .packages
            .into_iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        servers: args.servers,
        window_secs: args.window_secs,
        tls: args.tls,
        agent_secret: args.agent_secret,
        version: args.panel_version,
        api_key: args.api_key,
    };
    let sim = Sim::start(config, args.listen).await?;
    if args.latency_ms > 0 || args.error_rate > 0.0 || args.hang_rate > 0.0 {
        sim.set_faults(
            Target::All,
            Faults {
                latency_ms: args.latency_ms,
                error_rate: args.error_rate,
                hang_rate: args.hang_rate,
                ..Faults::default()
            },
        );
    }
    println!("{}", sim.url());
    println!(
        "servers: {} (BASE/s/N), agent: {}, control: {}/_sim",
        args.servers,
        sim.agent_url(),
        sim.url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
