//! `centimane process`: run an operator chain on JSON-lines entries (DESIGN §6). Used by the
//! conformance suite and by users debugging their `operators:`.

use anyhow::{Context, Result};
use centimane_core::OperatorChain;
use centimane_core::transport::{entry_from_json, entry_to_json};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

/// Entries processed per call into the chain.
const CHUNK: usize = 1024;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorsFile {
    operators: serde_json::Value,
}

pub fn run(config: &Path, input: Option<&Path>, raw_lines: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("can't read {}", config.display()))?;
    let file: OperatorsFile =
        serde_saphyr::from_str_with_options(&text, crate::config::yaml_options()).map_err(|e| {
            anyhow::anyhow!(
                "{}: {}",
                config.display(),
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
    let mut chain = centimane_operators::build_chain(&file.operators)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let reader: Box<dyn BufRead> = match input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("can't open {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut pending = Vec::with_capacity(CHUNK);
    let mut results = Vec::new();
    let mut bad_lines = 0usize;
    for (n, line) in reader.lines().enumerate() {
        let line = line.context("can't read input")?;
        if line.trim().is_empty() {
            continue;
        }
        if raw_lines {
            pending.push(centimane_core::Entry::new(centimane_core::Value::Str(
                line.into(),
            )));
        } else {
            match entry_from_json(&line) {
                Ok(e) => pending.push(e),
                Err(e) => {
                    bad_lines += 1;
                    eprintln!("input line {}: {e}", n + 1);
                }
            }
        }
        if pending.len() >= CHUNK {
            chain.process(std::mem::take(&mut pending), &mut results);
            write_all(&mut out, &mut results)?;
        }
    }
    chain.process(pending, &mut results);
    chain.flush(&mut results);
    write_all(&mut out, &mut results)?;
    out.flush()?;
    Ok(if bad_lines > 0 {
        eprintln!("{bad_lines} input line(s) were not valid entries and were skipped");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn write_all(out: &mut impl Write, entries: &mut Vec<centimane_core::Entry>) -> Result<()> {
    for e in entries.drain(..) {
        out.write_all(entry_to_json(&e).as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
