//! The `latchkey` command: `serve` runs the provider, `migrate` applies database migrations,
//! `client create` registers a relying party, `user create` / `user enroll-link` give a first
//! administrator a way in on a fresh install.
//! Configuration comes from `LATCHKEY_*` environment variables (see the README).

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use latchkey::{
    accounts::{self, CreateUserError, SignupForm},
    config::{Config, LogFormat},
    enrollment,
    oidc::clients::{self, ClientError, ClientSecrets, ClientSpec},
};
use tracing_subscriber::EnvFilter;

/// jemalloc: steady speed and less fragmentation under many small, short-lived allocations
/// (see the note on `tikv-jemallocator` in Cargo.toml).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(version, about = "Latchkey, a passkey-first OpenID Connect provider")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, then serve HTTP on LATCHKEY_LISTEN.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage OIDC clients (relying parties).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage accounts (for a first administrator on a fresh install).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account without a passkey; follow with `user enroll-link`.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Print a one-time link with which the person creates a passkey and signs in.
    EnrollLink {
        /// Username or email of the account.
        username: String,
        /// How long the link stays valid (e.g. 24h, 30m).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its client_id and, for a confidential client, its secret.
    Create(CreateClient),
}

#[derive(Args)]
struct CreateClient {
    /// Display name shown on the consent page.
    #[arg(long)]
    name: String,
    /// Exact redirect URI (repeatable).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Exact post-logout redirect URI (repeatable).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// A public client (SPA, native app): no secret, PKCE only.
    #[arg(long)]
    public: bool,
    /// A first-party client: no consent screen.
    #[arg(long)]
    first_party: bool,
    /// Allowed scope (repeatable, or space-separated); default: openid profile email offline_access.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Allowed grant type (repeatable); default: authorization_code refresh_token.
    #[arg(long = "grant-type", value_name = "GRANT")]
    grant_types: Vec<String>,
    /// ID token signing algorithm: RS256 (default), ES256 or EdDSA.
    #[arg(long, value_name = "ALG")]
    alg: Option<String>,
    /// The client_id to use instead of a generated one.
    #[arg(long)]
    client_id: Option<String>,
    /// Allow http redirect URIs on any host, not only on loopback (development only).
    #[arg(long)]
    allow_http_redirect_uris: bool,
}

impl CreateClient {
    fn into_spec(self) -> ClientSpec {
        let list = |items: Vec<String>| -> Option<Vec<String>> {
            let items: Vec<String> = items.iter().flat_map(|item| item.split_whitespace()).map(str::to_owned).collect();
            (!items.is_empty()).then_some(items)
        };
        ClientSpec {
            client_id: self.client_id,
            name: self.name,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            public: self.public,
            first_party: self.first_party,
            allowed_scopes: list(self.scopes),
            grant_types: list(self.grant_types),
            id_token_signed_response_alg: self.alg,
            allow_http_redirect_uris: self.allow_http_redirect_uris,
            ..ClientSpec::default()
        }
    }
}

fn main() -> ExitCode {
    match runtime() {
        Ok(runtime) => runtime.block_on(run()),
        Err(err) => {
            eprintln!("latchkey: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime. On one CPU (a container limited to one core, `taskset`), a current-thread
/// runtime: a multi-thread one would run a single worker anyway, and pay for the cross-thread
/// synchronisation of its scheduler on every wake-up (one core: +3.5 % logins, +12 % code
/// exchanges; docs/benchmarks.md, ninth run). With more, a worker thread per CPU.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("latchkey: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    // A command's own output goes to stdout; its logs must not mix into it.
    let logs_to_stderr = matches!(cli.command, Command::Client(_) | Command::User(_));
    init_tracing(config.log_format, logs_to_stderr);
    let result = match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Client(ClientCommand::Create(args)) => create_client(config, args.into_spec()).await,
        Command::User(command) => user_command(config, command).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "latchkey stopped");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    latchkey::app::run(config, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(config: Config) -> anyhow::Result<ExitCode> {
    let db = latchkey::store::connect(&config.database_url).await?;
    latchkey::store::migrate(&db).await?;
    tracing::info!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

/// `client create`: exit code 2 for a spec that breaks a rule, 1 for a taken client_id.
async fn create_client(config: Config, spec: ClientSpec) -> anyhow::Result<ExitCode> {
    let db = latchkey::store::connect(&config.database_url).await?;
    latchkey::store::migrate(&db).await?;
    let secrets = ClientSecrets::load(&db).await?;
    match clients::create(&db, &secrets, &spec, chrono::Utc::now()).await {
        Ok((client, secret)) => {
            println!("client_id: {}", client.client_id);
            if let Some(secret) = secret {
                println!("client_secret: {secret}");
                println!("The client secret is shown only once: store it now. Latchkey keeps only a hash of it.");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Invalid(errors)) => {
            for (field, message) in errors {
                eprintln!("latchkey: {field}: {message}");
            }
            Ok(ExitCode::from(2))
        }
        Err(ClientError::Conflict) => {
            eprintln!("latchkey: a client with this client_id already exists");
            Ok(ExitCode::FAILURE)
        }
        Err(ClientError::Db(err)) => Err(err.into()),
    }
}

/// `user create` and `user enroll-link`: exit code 2 for invalid input, 1 for a taken name
/// or an unknown account.
async fn user_command(config: Config, command: UserCommand) -> anyhow::Result<ExitCode> {
    let db = latchkey::store::connect(&config.database_url).await?;
    latchkey::store::migrate(&db).await?;
    let now = chrono::Utc::now();
    match command {
        UserCommand::Create { username, email, display_name } => {
            let form = SignupForm { username, email, display_name };
            match accounts::create_user(&db, &form, now).await {
                Ok(user) => {
                    println!("user_id: {}", user.id);
                    println!("Next: latchkey user enroll-link {}", user.username);
                    Ok(ExitCode::SUCCESS)
                }
                Err(CreateUserError::Invalid(errors)) => {
                    for (field, message) in errors {
                        eprintln!("latchkey: {field}: {message}");
                    }
                    Ok(ExitCode::from(2))
                }
                Err(CreateUserError::Taken(field, message)) => {
                    eprintln!("latchkey: {field}: {message}");
                    Ok(ExitCode::FAILURE)
                }
                Err(CreateUserError::Storage(err)) => Err(anyhow::anyhow!("{err}")),
            }
        }
        UserCommand::EnrollLink { username, ttl } => {
            let Some(user) = latchkey::store::users::find_by_login(&db, &username).await? else {
                eprintln!("latchkey: no account is called {username}");
                return Ok(ExitCode::FAILURE);
            };
            let issuer = config.issuer.as_str().trim_end_matches('/');
            let link = enrollment::issue_link_in(&db, issuer, user.id, ttl.unwrap_or(config.enrollment_ttl), now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", link.url);
            println!("Valid until {} and for one passkey only.", link.expires_at.to_rfc3339());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_tracing(format: LogFormat, to_stderr: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (format, to_stderr) {
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stderr).init(),
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stderr).init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
