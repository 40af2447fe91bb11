//! `opamp-test-server`: the crate's OpAMP test server as a program, to try an agent by
//! hand. Serves WebSocket and plain HTTP on one address, logs every agent message to
//! stderr, and offers the YAML file given with `--config` to every agent that accepts
//! remote config.
//!
//!     opamp-test-server [--listen 127.0.0.1:4320] [--config remote.yaml]
//!
//! Prints `{"ws": "...", "http": "..."}` on stdout once listening; stops on Ctrl-C.

use centimane_opamp_ext::test_server::{TestServer, yaml_config};
use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: opamp-test-server [--listen ADDR] [--config FILE]";

struct Args {
    listen: SocketAddr,
    config: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 4320)),
        config: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => {
                let value = it.next().ok_or("--listen needs an address")?;
                args.listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value:?}: {e}"))?;
            }
            "--config" => {
                let path = it.next().ok_or("--config needs a file")?;
                let text =
                    std::fs::read_to_string(&path).map_err(|e| format!("--config {path}: {e}"))?;
                args.config = Some(text);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let server = match TestServer::start(args.listen).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Some(yaml) = args.config {
        server.set_default_config(Some(yaml_config(&yaml)));
    }
    println!(
        "{}",
        serde_json::json!({"ws": server.ws_url(), "http": server.http_url()})
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("cannot wait for Ctrl-C: {e}");
    }
    server.stop().await;
    ExitCode::SUCCESS
}
