//! The `latchkey-bench` command: parses options, runs [`latchkey_bench::run`] and prints the
//! report as a table (stderr) and one JSON line (stdout). Exits 1 when any flow failed, 2 when
//! the run could not start.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use latchkey_bench::{Alg, DEFAULT_CLIENT_SECRET, DEFAULT_REDIRECT_URI, LoginMode, Options, Scenario};

/// Load generator for Latchkey: real passkey sign-ins and OIDC flows against a running server.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The Latchkey under test: its issuer URL (LATCHKEY_ISSUER).
    #[arg(long, default_value = "http://localhost:8080")]
    target: String,
    /// Measured time (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured time before it.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Virtual users: flows in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Accounts to sign up before the run (at least --concurrency; default max(100, concurrency)).
    #[arg(long)]
    users: Option<usize>,
    #[arg(long, value_enum, default_value = "login")]
    scenario: Scenario,
    /// The client's ID token signing algorithm (selects the bench client).
    #[arg(long, value_enum, default_value = "ES256", ignore_case = true)]
    alg: Alg,
    /// Fixed arrival rate in flows per second (open loop) instead of as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// How the login scenario reaches the passkey.
    #[arg(long, value_enum, default_value = "username")]
    login_mode: LoginMode,
    /// Client id (default: bench-es256, bench-rs256 or bench-eddsa, by --alg).
    #[arg(long, env = "LATCHKEY_BENCH_CLIENT_ID")]
    client_id: Option<String>,
    #[arg(long, env = "LATCHKEY_BENCH_CLIENT_SECRET", default_value = DEFAULT_CLIENT_SECRET, hide_default_value = true)]
    client_secret: String,
    #[arg(long, default_value = DEFAULT_REDIRECT_URI)]
    redirect_uri: String,
    /// Also report the CPU time per flow of the local processes of this name, e.g. postgres or
    /// redis-server when they run on the server's machine (repeatable; Linux).
    #[arg(long = "watch-process", value_name = "NAME")]
    watch_processes: Vec<String>,
    /// Tokio worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// Print a LATCHKEY_CLIENTS_FILE with the bench clients and exit.
    #[arg(long)]
    print_clients_file: bool,
    /// Poll /readyz until it answers 200 (at most this long), print the milliseconds, and exit.
    #[arg(long, value_parser = humantime::parse_duration)]
    wait_ready: Option<Duration>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_clients_file {
        print!("{}", latchkey_bench::clients_file(&cli.client_secret, &cli.redirect_uri));
        return ExitCode::SUCCESS;
    }
    let threads = cli.threads.or_else(|| std::thread::available_parallelism().ok().map(|n| n.get())).unwrap_or(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("latchkey-bench: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> ExitCode {
    if let Some(timeout) = cli.wait_ready {
        return match latchkey_bench::wait_ready(&cli.target, timeout).await {
            Ok(took) => {
                println!("{:.1}", took.as_secs_f64() * 1000.0);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("latchkey-bench: {err:#}");
                ExitCode::from(2)
            }
        };
    }
    let options = Options {
        target: cli.target,
        duration: cli.duration,
        warmup: cli.warmup,
        concurrency: cli.concurrency,
        users: cli.users,
        scenario: cli.scenario,
        alg: cli.alg,
        rate: cli.rate,
        login_mode: cli.login_mode,
        client_id: cli.client_id,
        client_secret: cli.client_secret,
        redirect_uri: cli.redirect_uri,
        watch_processes: cli.watch_processes,
    };
    match latchkey_bench::run(&options).await {
        Ok(report) => {
            eprint!("{}", report.table());
            println!("{}", report.json_line());
            if report.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(err) => {
            eprintln!("latchkey-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}
