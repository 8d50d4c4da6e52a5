//! `loadgen`: drives the seat-reservation API like an on-sale, and measures it. See `--help`.
//!
//! Exit status: 0 when all went well, 1 on an error (the service unreachable, a bad option),
//! 2 when an invariant failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use loadgen::api::Auth;
use loadgen::bench::{self, BacklogReport};
use loadgen::onsale::{self, OnSale, Waiting};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "An on-sale load generator and benchmark for the seat-reservation API"
)]
struct Cli {
    /// The API's base URL.
    #[arg(
        long,
        global = true,
        env = "LOADGEN_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    url: String,
    /// Also write the report as JSON to this file ("-": standard output, the text report then
    /// goes to standard error).
    #[arg(long, global = true, value_name = "PATH")]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Threads of the generator's runtime (it shares the machine with what it measures).
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    /// The service's HS256 secret, for a service in jwt mode (AUTH_MODE=jwt): each simulated
    /// user then sends a bearer token of its own, and events are created with an admin token.
    #[arg(long, global = true, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// The `iss` the service requires (jwt mode).
    #[arg(long, global = true, env = "AUTH_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// The `aud` the service requires (jwt mode).
    #[arg(long, global = true, env = "AUTH_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The on-sale: users hold up to K seats, wait for the results, reserve part of what they
    /// got; then the invariant check (exit status 2 when one fails).
    Run(RunArgs),
    /// Send holds flat out, one per seat by a new user each, without waiting for results (run it
    /// with the workers stopped): the 202 rate. `--out` saves the jobs for `drain`.
    Backlog(BacklogArgs),
    /// Wait until every job of a saved backlog is applied: the worker pool's drain rate.
    Drain(DrainArgs),
    /// Hold a seat, wait for the result, release it, again and again, on one new event: the
    /// cost of a hold on an event of that size.
    Cycle(CycleArgs),
    /// Create an event of S seats and list its seats, N times, one request at a time.
    Timings(TimingsArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Events to create.
    #[arg(long, short = 'e', default_value_t = 4)]
    events: u32,
    /// Seats in each event (10 to 10000).
    #[arg(long, short = 's', default_value_t = 1000)]
    seats: u32,
    /// Use these events (comma-separated ids) instead of creating new ones.
    #[arg(long, value_delimiter = ',')]
    event_ids: Vec<String>,
    /// Distinct users.
    #[arg(long, short = 'u', default_value_t = 10_000)]
    users: u32,
    /// Each go, a user tries to hold 1 to K seats at once.
    #[arg(long, short = 'k', default_value_t = 8)]
    holds: u32,
    /// Contention: users only try the first N seats of each event.
    #[arg(long, value_name = "N")]
    hot: Option<u32>,
    /// The part of the seats they got that users reserve (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    reserve: f64,
    /// Target POSTs (holds and reserves) a second; flat out without it.
    #[arg(long, short = 'r')]
    rate: Option<f64>,
    /// Users going at once. Each has an HTTP client of its own with up to K connections,
    /// opened before the clock starts.
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// How long to send for (e.g. 10s, 1m); without it and without --requests, every user has
    /// exactly one go.
    #[arg(long, short = 'd', value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// How many POSTs to send.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Poll job status every this often (e.g. 20ms) instead of `?wait=`.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "INTERVAL")]
    poll: Option<Duration>,
    /// MAX_HELD_SEATS of the service.
    #[arg(long, default_value_t = 6)]
    cap: u32,
    /// HOLD_TTL of the service (e.g. 60s); without it the check takes it from the first hold.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "TTL")]
    hold_ttl: Option<Duration>,
    /// Skip reading the seats back through the API at the end.
    #[arg(long)]
    no_read_back: bool,
    /// Seed for the random choices.
    #[arg(long)]
    seed: Option<u64>,
    /// Write every POST's timings to this CSV file after the run (one row per POST: when it
    /// went out, its answer, its job's result, and the job's createdAt/completedAt).
    #[arg(long, value_name = "PATH")]
    trace: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BacklogArgs {
    #[arg(long, short = 'e', default_value_t = 10)]
    events: u32,
    #[arg(long, short = 's', default_value_t = 10_000)]
    seats: u32,
    /// Use these events (comma-separated ids) instead of creating new ones.
    #[arg(long, value_delimiter = ',')]
    event_ids: Vec<String>,
    /// Holds to send (default: one per seat); beyond that they go round the seats again.
    #[arg(long, short = 'n')]
    holds: Option<u64>,
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Save the backlog (events and their first and last job ids) here, for `drain`.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DrainArgs {
    /// The file `backlog --out` wrote.
    #[arg(long)]
    backlog: PathBuf,
    /// When the workers were started, in ms since the epoch (`date +%s%3N`); the rate counts from
    /// then. Without it, from the first job applied.
    #[arg(long)]
    since_ms: Option<i64>,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    timeout: Duration,
}

#[derive(Debug, Args)]
struct CycleArgs {
    #[arg(long, short = 's', default_value_t = 10)]
    seats: u32,
    #[arg(long, short = 'c', default_value_t = 8)]
    connections: usize,
    #[arg(long, short = 'd', value_parser = humantime::parse_duration, default_value = "5s")]
    duration: Duration,
}

#[derive(Debug, Args)]
struct TimingsArgs {
    #[arg(long, short = 's', default_value_t = 10_000)]
    seats: u32,
    #[arg(long, short = 'n', default_value_t = 20)]
    repeat: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs the command; `Ok(false)` when an invariant failed.
async fn run(cli: Cli) -> Result<bool> {
    let progress = !cli.quiet;
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let auth = match nonempty(&cli.jwt_secret) {
        None => Auth::None,
        Some(secret) => Auth::jwt(
            &secret,
            nonempty(&cli.jwt_issuer),
            nonempty(&cli.jwt_audience),
        )?,
    };
    match cli.command {
        Command::Run(a) => {
            let cfg = OnSale {
                url: cli.url.clone(),
                auth,
                events: a.events,
                seats: a.seats,
                existing_events: a.event_ids,
                users: a.users,
                holds_per_user: a.holds,
                hot_seats: a.hot,
                reserve_ratio: a.reserve,
                rate: a.rate,
                connections: a.connections,
                duration: a.duration,
                requests: a.requests,
                waiting: a.poll.map_or(Waiting::Wait, Waiting::Poll),
                cap: a.cap,
                hold_ttl: a.hold_ttl,
                read_back: !a.no_read_back,
                progress,
                seed: a.seed,
                trace: a.trace,
                ..OnSale::default()
            };
            let report = onsale::run(&cfg).await?;
            emit(&cli.json, &report.text(), &report)?;
            Ok(report.passed())
        }
        Command::Backlog(a) => {
            let report = bench::backlog(
                &cli.url,
                a.events,
                a.seats,
                &a.event_ids,
                a.holds,
                a.connections,
                progress,
            )
            .await?;
            if let Some(out) = &a.out {
                std::fs::write(out, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            emit(&cli.json, &report.text(), &report)?;
            Ok(true)
        }
        Command::Drain(a) => {
            let text = std::fs::read(&a.backlog)
                .with_context(|| format!("reading {}", a.backlog.display()))?;
            let backlog: BacklogReport = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a saved backlog", a.backlog.display()))?;
            let report = bench::drain(&cli.url, &backlog, a.since_ms, a.timeout).await?;
            emit(&cli.json, &report.text(), &report)?;
            Ok(true)
        }
        Command::Cycle(a) => {
            let report =
                bench::cycle(&cli.url, a.seats, a.connections, a.duration, progress).await?;
            emit(&cli.json, &report.text(), &report)?;
            Ok(true)
        }
        Command::Timings(a) => {
            let report = bench::timings(&cli.url, a.seats, a.repeat).await?;
            emit(&cli.json, &report.text(), &report)?;
            Ok(true)
        }
    }
}

/// Prints the text report, and writes the JSON one where asked.
fn emit(json: &Option<PathBuf>, text: &str, report: &impl Serialize) -> Result<()> {
    match json {
        Some(path) if path.as_os_str() == "-" => {
            eprint!("{text}");
            println!("{}", serde_json::to_string_pretty(report)?);
        }
        Some(path) => {
            print!("{text}");
            std::fs::write(path, serde_json::to_vec_pretty(report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => print!("{text}"),
    }
    Ok(())
}
