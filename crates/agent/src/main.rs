//! `centimane`: a log agent that tails files, structures lines with Stanza operators and
//! exports them over OTLP. See README.md for the commands.

mod config;
mod process;
mod service;
mod supervisor;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The config used when `--config` is not given.
const DEFAULT_CONFIG: &str = include_str!("../../../config/default.yaml");

#[derive(Parser)]
#[command(
    name = "centimane",
    version,
    about = "A log agent: tail files, parse with Stanza operators, export OTLP"
)]
struct Cli {
    /// Config file (same as `run --config`).
    #[arg(long, global = false)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent. SIGTERM/SIGINT drain and stop; SIGHUP reloads the config file.
    Run {
        /// Config file; the built-in default config when absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long a shutdown may wait for in-flight data to be delivered.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        shutdown_timeout: Duration,
    },
    /// Check a config file; print every error found.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run an operator chain (a YAML file with an `operators:` list) on JSON-lines entries.
    Process {
        #[arg(long)]
        config: PathBuf,
        /// Entries to read; standard input when absent.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// List the component types this build has.
    Components,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    centimane_core::config::parse_go_duration(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run {
            config,
            shutdown_timeout,
        }) => run(config.or(cli.config), shutdown_timeout),
        None => run(cli.config, Duration::from_secs(10)),
        Some(Command::Validate { config }) => validate(&config),
        Some(Command::Process { config, input }) => process::run(&config, input.as_deref()),
        Some(Command::Components) => {
            components();
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&Path>) -> Result<(String, config::AgentConfig)> {
    let (label, text) = match path {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p)
                .with_context(|| format!("can't read config {}", p.display()))?,
        ),
        None => (
            "the built-in default config".to_owned(),
            DEFAULT_CONFIG.to_owned(),
        ),
    };
    let env = |name: &str| std::env::var(name).ok();
    let parsed = config::parse(&text, &env)
        .map_err(|errors| anyhow::anyhow!("{label} is not valid:\n{errors}"))?;
    Ok((label, parsed))
}

fn validate(path: &Path) -> Result<ExitCode> {
    load(Some(path))?;
    println!("{} is valid", path.display());
    Ok(ExitCode::SUCCESS)
}

fn components() {
    println!(
        "receivers: {}",
        centimane_receivers::RECEIVER_TYPES.join(", ")
    );
    println!(
        "processors: {}",
        centimane_processors::PROCESSOR_TYPES.join(", ")
    );
    println!(
        "exporters: {}",
        centimane_exporters::EXPORTER_TYPES.join(", ")
    );
    println!("extensions: {}", config::EXTENSION_TYPES.join(", "));
    println!(
        "operators: {}",
        centimane_operators::OPERATOR_TYPES.join(", ")
    );
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::new(f),
        _ => EnvFilter::new(level.unwrap_or("info").to_ascii_lowercase()),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(path: Option<PathBuf>, drain_timeout: Duration) -> Result<ExitCode> {
    let (label, cfg) = load(path.as_deref())?;
    init_logging(cfg.log_level.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("can't start the async runtime")?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("can't handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("can't handle SIGINT")?;
        let mut hup = signal(SignalKind::hangup()).context("can't handle SIGHUP")?;
        let mut supervisor = supervisor::Supervisor::start(cfg, drain_timeout)?;
        tracing::info!(config = %label, pipelines = supervisor.running().pipelines.len(), "centimane started");
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    // Reload: a bad new config is reported and the running one stays.
                    match load(path.as_deref()) {
                        Err(e) => tracing::error!("reload refused, keeping the running config: {e:#}"),
                        Ok((_, new_cfg)) => match supervisor.swap(new_cfg).await {
                            Ok(()) => tracing::info!("config reloaded"),
                            Err(e) => tracing::error!("reloaded config failed to start, running the previous one: {e}"),
                        },
                    }
                }
            }
        }
        tracing::info!("stopping: draining pipelines");
        supervisor.shutdown().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
