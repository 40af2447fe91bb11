//! `centimane`: a log agent that tails files, structures lines with Stanza operators and
//! exports them over OTLP. See README.md for the commands.

mod allocator;
mod config;
mod control;
mod process;
mod remote;
mod service;
mod supervisor;
mod taps;
mod telemetry;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The config used when `--config` is not given.
const DEFAULT_CONFIG: &str = include_str!("../../../config/default.yaml");

#[derive(Parser)]
#[command(
    name = "centimane",
    disable_version_flag = true,
    about = "A log agent: tail files, parse with Stanza operators, export OTLP"
)]
struct Cli {
    /// Config file (same as `run --config`).
    #[arg(long, global = false)]
    config: Option<PathBuf>,
    /// Print the version and the components of this build.
    #[arg(long, short = 'V')]
    version: bool,
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
        /// Read raw log lines (each becomes an entry with that body, as filelog reads
        /// them) instead of JSON entries.
        #[arg(long)]
        lines: bool,
    },
    /// List the component types this build has.
    Components,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    centimane_core::config::parse_go_duration(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Running the agent is worth starting the process again for its allocator settings;
    // one-off commands are not.
    let runs = !cli.version && matches!(cli.command, None | Some(Command::Run { .. }));
    allocator::configure(runs);
    if cli.version {
        println!("centimane {}", env!("CARGO_PKG_VERSION"));
        components();
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Some(Command::Run {
            config,
            shutdown_timeout,
        }) => run(config.or(cli.config), shutdown_timeout),
        None => run(cli.config, Duration::from_secs(10)),
        Some(Command::Validate { config }) => validate(&config),
        Some(Command::Process {
            config,
            input,
            lines,
        }) => process::run(&config, input.as_deref(), lines),
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

/// A config as loaded: where from, its text, and the parsed form.
struct Loaded {
    label: String,
    text: String,
    config: config::AgentConfig,
}

fn load(path: Option<&Path>) -> Result<Loaded> {
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
    let config = config::parse(&text, &env)
        .map_err(|errors| anyhow::anyhow!("{label} is not valid:\n{errors}"))?;
    Ok(Loaded {
        label,
        text,
        config,
    })
}

fn validate(path: &Path) -> Result<ExitCode> {
    load(Some(path))?;
    println!("{} is valid", path.display());
    Ok(ExitCode::SUCCESS)
}

fn components() {
    let kinds: [(&str, &[&str]); 5] = [
        ("receivers", centimane_receivers::RECEIVER_TYPES),
        ("processors", centimane_processors::PROCESSOR_TYPES),
        ("exporters", centimane_exporters::EXPORTER_TYPES),
        ("extensions", config::EXTENSION_TYPES),
        ("operators", centimane_operators::OPERATOR_TYPES),
    ];
    for (kind, types) in kinds {
        println!("{kind}:");
        for t in types {
            println!("  {t:<24} {}", stability(kind, t));
        }
    }
}

/// How settled a component is: `beta` components are complete and covered by black-box
/// tests; `alpha` ones implement a documented subset or are new.
fn stability(kind: &str, component: &str) -> &'static str {
    match (kind, component) {
        ("processors", "filter" | "probabilistic_sampler") => "alpha",
        ("extensions", "opamp") => "alpha",
        _ => "beta",
    }
}

fn init_logging(logs: &config::TelemetryLogs) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::new(f),
        _ => EnvFilter::new(logs.level.as_deref().unwrap_or("info").to_ascii_lowercase()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match logs.encoding {
        config::LogEncoding::Json => builder.json().init(),
        // Colours only on a terminal: log files and journald get plain text.
        config::LogEncoding::Console => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn run(path: Option<PathBuf>, drain_timeout: Duration) -> Result<ExitCode> {
    let local = load(path.as_deref())?;
    init_logging(&local.config.telemetry.logs);
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
        let opamp = local.config.opamp.clone();
        let (config, text) = match &opamp {
            Some((_, state_dir)) => with_last_remote_config(&local, state_dir)?,
            None => (local.config.clone(), local.text.clone()),
        };
        let taps = opamp
            .as_ref()
            .filter(|(c, _)| c.capabilities.snapshot)
            .map(|_| Arc::new(taps::Taps::new(centimane_opamp_ext::SNAPSHOT_MAX_RECORDS)));
        let pipelines: Vec<String> = config.pipelines.keys().cloned().collect();
        let supervisor: control::SharedSupervisor = Arc::new(tokio::sync::Mutex::new(Some(
            supervisor::Supervisor::start(config, drain_timeout, taps.clone()).await?,
        )));
        let control = Arc::new(control::Control::new(
            supervisor.clone(),
            local.text.clone(),
            &text,
            &pipelines,
            taps,
        ));
        let opamp_handle = match opamp {
            Some((c, state_dir)) => {
                let handle = centimane_opamp_ext::start(
                    c,
                    state_dir,
                    Arc::new(control::SharedControl(control.clone())),
                )
                .map_err(|e| anyhow::anyhow!("extension opamp: {e}"))?;
                control.set_notifier(handle.notifier());
                Some(handle)
            }
            None => None,
        };
        let metrics = &local.config.telemetry.metrics;
        if metrics.level != "none" {
            // The endpoint is on by default, like the Collector's: a taken port must not
            // keep the agent from collecting logs, so it is reported and skipped.
            if let Err(e) = telemetry::serve_metrics(&metrics.address, supervisor.clone(), control.clone()).await {
                tracing::error!(address = %metrics.address, error = %e, "can't serve metrics; continuing without them");
            }
        }
        if let Some(h) = &local.config.health_check {
            telemetry::serve_health(h, supervisor.clone())
                .await
                .with_context(|| format!("extension health_check: can't listen on {}", h.endpoint))?;
        }
        tracing::info!(config = %local.label, pipelines = pipelines.len(), "centimane started");
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload(path.as_deref(), &supervisor, &control).await,
            }
        }
        tracing::info!("stopping: draining pipelines");
        if let Some(h) = opamp_handle {
            h.shutdown().await;
        }
        if let Some(s) = supervisor.lock().await.take() {
            s.shutdown().await;
        }
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// With OpAMP, the agent comes back on the last good remote config (merged into the local
/// file as DESIGN §5 says); a persisted config that no longer loads is logged and skipped.
fn with_last_remote_config(
    local: &Loaded,
    state_dir: &Path,
) -> Result<(config::AgentConfig, String)> {
    std::fs::create_dir_all(state_dir).with_context(|| {
        format!(
            "can't create the OpAMP state directory {}",
            state_dir.display()
        )
    })?;
    let Some(remote_text) = centimane_opamp_ext::last_remote_config(state_dir) else {
        return Ok((local.config.clone(), local.text.clone()));
    };
    let env = |name: &str| std::env::var(name).ok();
    let merged = remote::merge(&local.text, &remote_text).and_then(|m| {
        config::parse(&m, &env)
            .map(|c| (c, m))
            .map_err(|e| e.to_string())
    });
    match merged {
        Ok(pair) => {
            tracing::info!("starting on the last good remote config");
            Ok(pair)
        }
        Err(e) => {
            tracing::error!(
                "the persisted remote config no longer loads ({e}); starting on the local config"
            );
            Ok((local.config.clone(), local.text.clone()))
        }
    }
}

/// SIGHUP: reload the local file. A bad file is refused and the running config stays.
/// With OpAMP, an applied remote config keeps replacing the file's pipelines.
async fn reload(
    path: Option<&Path>,
    supervisor: &control::SharedSupervisor,
    control: &control::Control,
) {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("reload refused, keeping the running config: {e:#}");
            return;
        }
    };
    let (config, text) = match &loaded.config.opamp {
        Some((_, state_dir)) => match with_last_remote_config(&loaded, state_dir) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!("reload refused: {e:#}");
                return;
            }
        },
        None => (loaded.config.clone(), loaded.text.clone()),
    };
    let pipelines: Vec<String> = config.pipelines.keys().cloned().collect();
    let mut guard = supervisor.lock().await;
    let Some(s) = guard.as_mut() else { return };
    match s.swap(config).await {
        Ok(()) => {
            drop(guard);
            control.set_local(loaded.text);
            control.set_running(&text, &pipelines, "");
            tracing::info!("config reloaded");
        }
        Err(e) => tracing::error!("reloaded config failed to start, running the previous one: {e}"),
    }
}
