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

/// Prints the results as markdown and, on a full run (no `--only`, not `--quick`), writes
/// them to BENCHMARKS.md: the figures the quick run's guard compares with.
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
    if opts.only.is_empty() && !opts.quick {
        std::fs::write(util::root().join("BENCHMARKS.md"), &md)?;
    }
    Ok(())
}

/// `(section, measure, value)` of every table line of a BENCHMARKS.md.
fn md_values(md: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for l in md.lines() {
        if let Some(h) = l.strip_prefix("## ") {
            section = h.trim().to_owned();
        } else if let Some(cells) = l.strip_prefix('|').and_then(|l| l.strip_suffix('|')) {
            if let Some((k, v)) = cells.split_once('|') {
                out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    out
}

/// The slowdown in a value like `0.594 s (1.80x)`.
fn slowdown(v: &str) -> Option<f64> {
    v.split_once('(')?.1.split_once("x)")?.0.trim().parse().ok()
}

/// The leading number of a value like `373441 events/s (target >= 500000)`.
fn leading(v: &str) -> Option<f64> {
    v.split_whitespace().next()?.parse().ok()
}

/// How the guard reads a figure from its value cell.
type Reader = fn(&str) -> Option<f64>;

/// Which figure the guard watches: a section prefix, a measure, how to read it, and whether
/// bigger is worse.
const GUARDED: [(&str, &str, Reader, bool); 3] = [
    ("W2", "tprobe", slowdown, true),
    (
        "W5",
        "max zero-loss rate, JSON to /dev/null",
        leading,
        false,
    ),
    (
        "W5",
        "max zero-loss rate, JSON to a tmpfs file",
        leading,
        false,
    ),
];

/// Warnings for the figures of this run more than 15% worse than the same ones in
/// `previous` (the BENCHMARKS.md of the last full run). Warnings, not failures: the machine
/// is noisy, and a quick run is smaller.
pub(super) fn regressions(rows: &[Row], previous: &str) -> Vec<String> {
    let old = md_values(previous);
    let mut warnings = Vec::new();
    for (section, measure, read, bigger_is_worse) in GUARDED {
        let now = rows
            .iter()
            .filter(|r| r.name.starts_with(section))
            .flat_map(|r| &r.values)
            .find(|(k, _)| k == measure)
            .and_then(|(_, v)| read(v));
        let was = old
            .iter()
            .find(|(s, k, _)| s.starts_with(section) && k == measure)
            .and_then(|(_, _, v)| read(v));
        let (Some(now), Some(was)) = (now, was) else {
            continue;
        };
        let worse = if bigger_is_worse {
            now > was * 1.15
        } else {
            now < was / 1.15
        };
        if worse {
            warnings.push(format!(
                "{section} {measure}: {now} against {was} in BENCHMARKS.md (more than 15% worse)"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREVIOUS: &str = "# tprobe benchmarks\n\n## W2 file storm (open+close)\n\n| measure | value |\n|---|---|\n| tprobe | 0.594 s (1.80x) |\n\n## W5 highest zero-loss rate\n\n| measure | value |\n|---|---|\n| max zero-loss rate, JSON to a tmpfs file | 373441 events/s (target >= 500000) |\n";

    fn rows(w2: &str, w5: &str) -> Vec<Row> {
        vec![
            Row {
                name: "W2 file storm (open+close)".into(),
                values: vec![("tprobe".into(), w2.into())],
            },
            Row {
                name: "W5 highest zero-loss rate".into(),
                values: vec![("max zero-loss rate, JSON to a tmpfs file".into(), w5.into())],
            },
        ]
    }

    #[test]
    fn a_run_within_15_percent_warns_of_nothing() {
        let r = rows("0.6 s (1.95x)", "330000 events/s");
        assert!(regressions(&r, PREVIOUS).is_empty());
    }

    #[test]
    fn a_slower_w2_or_a_lower_w5_rate_is_named() {
        let w = regressions(&rows("0.7 s (2.10x)", "300000 events/s"), PREVIOUS);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("W2 tprobe: 2.1 against 1.8"), "{w:?}");
        assert!(w[1].starts_with("W5 max zero-loss rate"), "{w:?}");
    }
}
