//! W8: the analyze stage's cost. W2 (file storm) and W3 (exec storm) with the rule pack plus 200
//! synthetic rules loaded and baselines on (a fresh profile folder each round: the workload
//! learns throughout), against the same runs without either, round by round.
use std::{path::Path, time::Duration};

use anyhow::Result;

use super::{
    common::{median, Opts, Row},
    tracer::{Tracer, TracerKind},
    work::Work,
};
use crate::util;

/// 200 rules that look like real ones and match nothing the workloads do: process_creation,
/// file and network categories, and tprobe's own `file.open` (which W2's events feed).
fn synthetic_rules(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut text = String::new();
    for i in 0..200 {
        let (logsource, detection) = match i % 5 {
            0 => (
                "product: linux\n  category: process_creation",
                format!("selection:\n    CommandLine|contains: 'tprobe-bench-nomatch-{i}'\n    Image|endswith: '/x{i}'"),
            ),
            1 => (
                "product: linux\n  category: process_creation",
                format!("selection:\n    ParentImage|startswith: '/opt/nomatch{i}/'\n  filter:\n    User: 'nobody{i}'\n  condition_dummy: []"),
            ),
            2 => (
                "product: linux\n  category: file_change",
                format!("selection:\n    TargetFilename|startswith: '/srv/nomatch{i}/'"),
            ),
            3 => (
                "product: tprobe\n  category: file.open",
                format!("selection:\n    file.path|endswith: '.nomatch{i}'\n    process.comm: 'x{i}'"),
            ),
            _ => (
                "product: linux\n  category: network_connection",
                format!("selection:\n    DestinationPort: {}\n    Image|contains: 'nomatch{i}'", 10000 + i),
            ),
        };
        let detection = detection.replace("\n  condition_dummy: []", "");
        let cond = if i % 5 == 1 {
            "selection and not filter"
        } else {
            "selection"
        };
        text.push_str(&format!(
            "title: bench rule {i}\nid: bbbbbbbb-0000-4000-8000-{i:012}\nlogsource:\n  {logsource}\ndetection:\n  {detection}\n  condition: {cond}\nlevel: low\n---\n"
        ));
    }
    std::fs::write(dir.join("synthetic.yml"), text.trim_end_matches("---\n"))?;
    Ok(())
}

#[derive(Default)]
struct Side {
    secs: Vec<f64>,
    cpu_per_event_us: Vec<f64>,
    lines_per_s: Vec<f64>,
}

pub(super) fn w8(
    tprobe: &Path,
    dir: &Path,
    opts: &Opts,
    scale: u64,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let rules_dir = dir.join("w8-rules");
    synthetic_rules(&rules_dir)?;
    let pack = util::root().join("rules");
    for (title, work, n, events, prefix, file_dir) in [
        (
            "W8 analyze stage on W2 (file storm)",
            Work::OpenClose,
            200_000 / scale,
            "file.open",
            "file.open",
            true,
        ),
        (
            "W8 analyze stage on W3 (exec storm)",
            Work::Exec,
            2_000 / scale,
            "process.exec",
            "process.exec",
            false,
        ),
    ] {
        let mut base = vec!["--events".to_owned(), events.to_owned()];
        if file_dir {
            base.extend([
                "--file-reads".to_owned(),
                "--file-include".to_owned(),
                dir.display().to_string(),
            ]);
        }
        let mut with = base.clone();
        with.extend([
            "--rules".to_owned(),
            pack.display().to_string(),
            "--rules".to_owned(),
            rules_dir.display().to_string(),
        ]);
        let (mut off, mut on) = (Side::default(), Side::default());
        for round in 0..opts.rounds {
            eprintln!("bench: {title} round {}/{}", round + 1, opts.rounds);
            let profiles = dir.join(format!("w8-profiles-{round}"));
            let _ = std::fs::remove_dir_all(&profiles);
            let mut with = with.clone();
            with.extend(["--baseline".to_owned(), profiles.display().to_string()]);
            for (args, side) in [(&base, &mut off), (&with, &mut on)] {
                let t = Tracer::start(TracerKind::Tprobe, tprobe, args, "")?;
                let cpu0 = super::common::threads_cpu_s(t.pid());
                let took = work.run(n, dir).as_secs_f64();
                std::thread::sleep(Duration::from_millis(300));
                let r = t.stop(prefix)?;
                side.secs.push(took);
                let events = r.events.max(1) as f64;
                side.cpu_per_event_us
                    .push((r.threads_cpu_s - cpu0) * 1e6 / events);
                side.lines_per_s.push(events / took);
            }
        }
        let (c0, c1) = (
            median(&mut off.cpu_per_event_us),
            median(&mut on.cpu_per_event_us),
        );
        // Each round's two runs are next to each other in time: the ratio of a pair leaves
        // out the VM's slower and faster minutes, which move both sides of a round alike.
        let mut ratios: Vec<f64> = on
            .lines_per_s
            .iter()
            .zip(&off.lines_per_s)
            .map(|(a, b)| a / b)
            .collect();
        let ratio = median(&mut ratios);
        let (l0, l1) = (median(&mut off.lines_per_s), median(&mut on.lines_per_s));
        rows.push(Row {
            name: title.to_owned(),
            values: vec![
                ("ops".into(), n.to_string()),
                (
                    "analysis".into(),
                    "the pack + 200 synthetic rules, baselines learning".into(),
                ),
                (
                    "workload, no analysis".into(),
                    format!("{:.3} s", median(&mut off.secs)),
                ),
                (
                    "workload, with analysis".into(),
                    format!("{:.3} s", median(&mut on.secs)),
                ),
                (
                    "probe CPU per event, no analysis".into(),
                    format!("{c0:.2} µs"),
                ),
                (
                    "probe CPU per event, with analysis".into(),
                    format!("{c1:.2} µs"),
                ),
                (
                    "added CPU per event, whole probe".into(),
                    format!(
                        "{:.2} µs (the in-process row below is the measure; here the kernel's \
                         write of the lines moves it by µs)",
                        c1 - c0
                    ),
                ),
                (
                    "lines/s, no analysis / with analysis".into(),
                    format!(
                        "{l0:.0} / {l1:.0} ({:+.1}% by round, median of the rounds' ratios; \
                         target within 10%)",
                        (ratio - 1.0) * 100.0
                    ),
                ),
            ],
        });
    }
    in_process(&[pack, rules_dir], opts, rows)
}

/// The stage's own cost, from the `rules_cost` measurement in probe-user (release build):
/// the CPU an `analyze` call with these rules adds to a file open, an exec and a connect.
fn in_process(rules: &[std::path::PathBuf], opts: &Opts, rows: &mut Vec<Row>) -> Result<()> {
    let dirs: Vec<String> = rules.iter().map(|d| d.display().to_string()).collect();
    let runs = super::common::in_process(
        "W8 in process",
        "analyze::bench::rules_cost",
        "RULES_BENCH",
        &[("TPROBE_BENCH_RULES", dirs.join(":"))],
        opts.rounds,
    )?;
    let get = |k: &str| {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[k].as_f64()).collect();
        median(&mut v) / 1e3
    };
    rows.push(Row {
        name: "W8 analyze stage in process (the pack + 200 synthetic rules)".into(),
        values: vec![
            (
                "rules loaded".into(),
                runs[0]["rules"].as_u64().unwrap_or(0).to_string(),
            ),
            (
                "added CPU per file open (W2's event)".into(),
                format!("{:.3} µs (target <= 0.3)", get("file_open_ns")),
            ),
            (
                "added CPU per connect".into(),
                format!("{:.3} µs (target <= 0.3)", get("connect_ns")),
            ),
            (
                "added CPU per exec".into(),
                format!("{:.3} µs (target <= 2)", get("exec_ns")),
            ),
        ],
    });
    Ok(())
}
