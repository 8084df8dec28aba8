//! The BENCHMARKS.md writer: the machine the numbers came from and one table per section.
use std::{fmt::Write as _, process::Command};

use anyhow::Result;

use super::common::{Opts, Row};
use crate::util;

fn machine_info() -> String {
    let uname = util::output(Command::new("uname").arg("-r")).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0);
    let date =
        util::output(Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC")).unwrap_or_default();
    format!(
        "- date: {}\n- kernel: {}\n- cpu: {} x {}\n- memory: {} GiB\n",
        date.trim(),
        uname.trim(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu,
        mem / 1024 / 1024
    )
}

/// Prints the results as markdown and, on a full run (no `--only`), writes them to
/// BENCHMARKS.md.
pub(super) fn write(rows: &[Row], opts: &Opts) -> Result<()> {
    let mut md = String::from("# tprobe benchmarks\n\nProduced by `cargo xtask bench` (release build). Each comparison alternates no probe / tprobe / bpftrace within one run; values are medians of ");
    let _ = writeln!(
        md,
        "{} rounds.\n\n## Machine\n{}",
        opts.rounds,
        machine_info()
    );
    for r in rows {
        let _ = writeln!(md, "## {}\n\n| measure | value |\n|---|---|", r.name);
        for (k, v) in &r.values {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        md.push('\n');
    }
    print!("{md}");
    if opts.only.is_empty() {
        std::fs::write(util::root().join("BENCHMARKS.md"), &md)?;
    }
    Ok(())
}
