//! The `commerce` command line: serve, worker, migrate, admin, token, key.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "commerce",
    version,
    about = "Commerce provisioning service for Opterius Panel servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply all migrations (app and job queue); safe to run again.
    Migrate,
    /// Serve the admin UI and /api/v1, with the worker pool unless --no-worker.
    Serve {
        /// Address to listen on (default LISTEN_ADDR or 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Do not run workers in this process (run `commerce worker` elsewhere).
        #[arg(long)]
        no_worker: bool,
    },
    /// Run only the worker pool (scale out with several).
    Worker,
    /// Run a demo: in-process Panel simulator, demo catalog, admin login printed.
    #[cfg(feature = "demo")]
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Manage admin users.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage the application key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an admin user, or set a new password for one (ending their
    /// sessions). The password is read from stdin with --password-stdin, else
    /// generated and printed.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Deprecated: visible in `ps` and shell history; use --password-stdin.
        #[arg(long, hide = true)]
        password: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token; it is printed once, alone, on the last line.
    Create {
        #[arg(long)]
        name: String,
        /// `provision` (orders, clients, services, lifecycle actions, the log,
        /// reading products) or `admin` (everything: servers, groups, products).
        #[arg(long, default_value = "admin")]
        scope: String,
    },
    /// List API tokens (never their values) with scope and last use.
    List,
    /// Revoke a token by id (or every live token with that name); refused on
    /// its next request, in every process.
    Revoke {
        /// The token's id (from `token list`) or its name.
        which: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Print a fresh APP_KEY for .env.
    Generate,
    /// Re-seal every stored secret under APP_KEY, opening it with
    /// APP_KEY_PREVIOUS (the old key). Resumable: run it again after a stop.
    Rotate {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: i64,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Key {
        command: KeyCommand::Generate,
    } = cli.command
    {
        println!("{}", crate::crypto::AppKey::generate());
        return Ok(());
    }
    let config = Config::from_env()?;
    crate::runtime::init_logging(config.log_format);
    match cli.command {
        Command::Migrate => migrate(&config).await,
        Command::Serve { listen, no_worker } => serve(config, listen, no_worker).await,
        #[cfg(feature = "demo")]
        Command::Demo { listen } => demo(config, listen).await,
        Command::Worker => worker(config).await,
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    password_stdin,
                    password,
                },
        } => admin_create(&config, &email, password_stdin, password).await,
        Command::Token { command } => {
            token_command(&connect_migrated(&config).await?, command).await
        }
        Command::Key {
            command: KeyCommand::Rotate { batch_size },
        } => key_rotate(&config, batch_size).await,
        Command::Key {
            command: KeyCommand::Generate,
        } => Ok(()),
    }
}

/// A pool on a database with every migration applied.
async fn connect_migrated(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    let pool = crate::connect(config).await?;
    crate::migrate(&pool).await.context("applying migrations")?;
    Ok(pool)
}

/// The service state for a long-running command, its database migrated.
async fn migrated_state(config: Config) -> anyhow::Result<crate::front::AppState> {
    let state = crate::build_state(config).await?;
    crate::migrate(&state.pool)
        .await
        .context("applying migrations at startup")?;
    Ok(state)
}

/// What an application error means on a terminal: each field's rule, one per line.
fn cli_error(e: crate::app::error::AppError) -> anyhow::Error {
    use crate::app::error::AppError;
    match e {
        AppError::Validation(fields)
        | AppError::Conflict {
            fields: Some(fields),
            ..
        } => {
            let lines: Vec<String> = fields
                .0
                .iter()
                .flat_map(|(field, messages)| {
                    messages.iter().map(move |m| format!("  --{field}: {m}"))
                })
                .collect();
            anyhow::anyhow!("invalid input:\n{}", lines.join("\n"))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    connect_migrated(config).await?;
    println!("migrations applied");
    Ok(())
}

async fn serve(
    mut config: Config,
    listen: Option<SocketAddr>,
    no_worker: bool,
) -> anyhow::Result<()> {
    let addr = listen.unwrap_or(config.listen);
    // Cookie security follows the address actually listened on.
    config.listen = addr;
    let state = migrated_state(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(listen = %listener.local_addr()?, workers = !no_worker, "serving");
    crate::runtime::serve(state, listener, !no_worker).await
}

#[cfg(feature = "demo")]
async fn demo(mut config: Config, listen: SocketAddr) -> anyhow::Result<()> {
    config.listen = listen;
    if config.panel_networks.allowed().is_empty() {
        // The demo's simulated Panel listens on loopback.
        config.panel_networks =
            opterius::NetworkPolicy::parse_list("127.0.0.0/8").map_err(|e| anyhow::anyhow!(e))?;
    }
    let state = migrated_state(config).await?;
    crate::demo::run(state, listen).await
}

async fn worker(config: Config) -> anyhow::Result<()> {
    let state = migrated_state(config).await?;
    crate::runtime::work(state.core).await
}

async fn admin_create(
    config: &Config,
    email: &str,
    password_stdin: bool,
    password: Option<String>,
) -> anyhow::Result<()> {
    let pool = connect_migrated(config).await?;
    let (password, generated) = match (password_stdin, password) {
        (true, _) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            (line.trim_end_matches(['\r', '\n']).to_owned(), false)
        }
        (false, Some(p)) => {
            eprintln!(
                "warning: --password is deprecated (it shows in ps and shell history); use --password-stdin"
            );
            (p, false)
        }
        (false, None) => (provisioning::generate_password(20), true),
    };
    crate::app::admins::set_password(&pool, email, &password)
        .await
        .map_err(cli_error)?;
    println!("admin {email} created");
    if generated {
        println!("password: {password}");
    }
    Ok(())
}

async fn key_rotate(config: &Config, batch_size: i64) -> anyhow::Result<()> {
    if config.app_key_previous.is_none() {
        anyhow::bail!(
            "set APP_KEY to the new key and APP_KEY_PREVIOUS to the old one, then run `commerce key rotate` again"
        );
    }
    let pool = connect_migrated(config).await?;
    let sealer =
        crate::crypto::Sealer::with_previous(&config.app_key, config.app_key_previous.as_ref());
    let done = crate::app::keys::rotate(&pool, &sealer, batch_size.max(1), None).await?;
    println!(
        "re-sealed {} server secret sets and {} service passwords under APP_KEY; APP_KEY_PREVIOUS can be removed",
        done.servers, done.services
    );
    Ok(())
}

async fn token_command(pool: &sqlx::PgPool, command: TokenCommand) -> anyhow::Result<()> {
    use crate::app::tokens::{self, Scope};
    match command {
        TokenCommand::Create { name, scope } => {
            let scope = Scope::parse(&scope).ok_or_else(|| {
                anyhow::anyhow!("--scope must be provision or admin, not {scope:?}")
            })?;
            let token = tokens::create(pool, &name, scope).await?;
            println!(
                "API token {name:?} ({} scope) created; it is shown only once:",
                scope.as_str()
            );
            println!("{token}");
        }
        TokenCommand::List => {
            let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or_else(
                    || "-".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                )
            };
            println!(
                "{:>5}  {:<24} {:<10} {:<24} {:<24} revoked",
                "id", "name", "scope", "created", "last used"
            );
            for t in tokens::list(pool).await? {
                println!(
                    "{:>5}  {:<24} {:<10} {:<24} {:<24} {}",
                    t.id,
                    t.name,
                    t.scope,
                    when(Some(t.created_at)),
                    when(t.last_used_at),
                    when(t.revoked_at)
                );
            }
        }
        TokenCommand::Revoke { which } => {
            let n = tokens::revoke(pool, &which).await?;
            if n == 0 {
                anyhow::bail!("no live API token has the id or name {which:?}");
            }
            println!("revoked {n} API token(s) {which:?}");
        }
    }
    Ok(())
}

impl std::fmt::Debug for AdminCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Create {
                email,
                password_stdin,
                password,
            } => f
                .debug_struct("Create")
                .field("email", email)
                .field("password_stdin", password_stdin)
                .field("password", &password.as_ref().map(|_| "[redacted]"))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Clap's own consistency checks over every subcommand and argument.
    #[test]
    fn the_command_line_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
