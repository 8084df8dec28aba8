//! The `tprobe investigate` command: flags, the two passes, the chosen renderer.
use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
};

use super::{
    progress::Progress,
    read::{open_all, InputProblems},
    scan::{collect, index, Limits},
    select::{resolve, subtree, Target},
    story::{Builder, InputSummary, Report, Truncated},
    text::Paint,
    InvestigateError,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// An indented tree (coloured on a terminal; NO_COLOR respected).
    #[default]
    Text,
    /// One JSON document.
    Json,
    /// One self-contained HTML page (collapsible tree and timeline).
    Html,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["entity", "pid", "alert", "rule"])))]
pub struct InvestigateArgs {
    /// Recorded native JSON lines: files, the file sink's rotated files (`out.json*`, read
    /// oldest first, gzip or not), `-` for stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The process with this `entity_id`.
    #[arg(long, value_name = "ID")]
    pub entity: Option<String>,
    /// The process with this pid (with --at: the instance alive then; else the last started).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// With --pid: a time the process was alive (RFC 3339, e.g. 2026-12-02T06:00:00Z).
    #[arg(long, value_name = "TIME", requires = "pid")]
    pub at: Option<String>,
    /// The process an alert matched (its `seq`).
    #[arg(long, value_name = "SEQ")]
    pub alert: Option<u64>,
    /// Every alert of this rule id: one storyline per matched process.
    #[arg(long, value_name = "ID")]
    pub rule: Option<String>,
    /// Output: text (tree), json (one document), html (one self-contained page).
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutFormat,
    /// A chronological listing of the same selection (text), or the timeline in the JSON.
    #[arg(long)]
    pub timeline: bool,
    /// Items listed per activity group (files written, connections, ...); the rest are counted.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: usize,
    /// Events kept for the timeline (the rest are counted).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_events: usize,
    /// Processes per storyline (the target and its descendants, breadth first).
    #[arg(long, default_value_t = 5_000, value_name = "N")]
    pub max_processes: usize,
    /// Colours in text output.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

impl InvestigateArgs {
    fn target(&self) -> Target {
        if let Some(e) = &self.entity {
            Target::Entity(e.clone())
        } else if let Some(pid) = self.pid {
            Target::Pid {
                pid,
                at: self.at.clone(),
            }
        } else if let Some(seq) = self.alert {
            Target::Alert(seq)
        } else {
            Target::Rule(self.rule.clone().unwrap_or_default())
        }
    }
}

/// Runs an investigation; stderr gets the notes and the one line of input problems.
pub fn investigate(
    args: &InvestigateArgs,
    progress: &Progress,
) -> Result<Report, InvestigateError> {
    let target = args.target();
    if let Target::Pid { at: Some(at), .. } = &target {
        // A bad time is a usage error before any reading.
        super::select::parse_at(at)?;
    }
    let mut problems = InputProblems::default();
    let mut inputs = open_all(&args.files, &mut problems, progress)?;
    if inputs.is_empty() {
        report_problems(&summary(
            &problems,
            &[],
            0,
            Default::default(),
            0,
            None,
            None,
        ));
        return Err(InvestigateError::NoInput);
    }
    let mut ix = index(&mut inputs, progress);
    // Files that could not be opened first, then those that failed while being read.
    let mut unreadable = std::mem::take(&mut problems.unreadable);
    unreadable.append(&mut ix.problems.unreadable);
    ix.problems.unreadable = unreadable;
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut input = summary(
        &ix.problems,
        &names,
        ix.lines,
        ix.bad.clone(),
        ix.tree.nodes.len(),
        ix.from.clone(),
        ix.to.clone(),
    );
    let chosen = match resolve(&target, &ix) {
        Ok(c) => c,
        Err(e) => {
            progress.finish();
            report_problems(&input);
            return Err(e);
        }
    };
    let children = ix.tree.children();
    let subtrees: Vec<(Vec<usize>, u64)> = chosen
        .iter()
        .map(|c| subtree(c.node, &children, args.max_processes.max(1)))
        .collect();
    let mut all: Vec<usize> = subtrees
        .iter()
        .flat_map(|(m, _)| m.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    let want_timeline = args.timeline || args.format == OutFormat::Html;
    let limits = Limits {
        items: args.limit,
        events: if want_timeline { args.max_events } else { 0 },
    };
    let mut collected = collect(&mut inputs, &ix.tree, &all, &limits, progress);
    progress.finish();
    input.damaged = collected.damaged;
    for c in &chosen {
        if let Some(n) = &c.note {
            eprintln!("tprobe investigate: {n}");
        }
    }
    report_problems(&input);
    let mut b = Builder {
        ix: &ix,
        children: &children,
        collected: &mut collected,
        timeline: want_timeline,
    };
    let storylines = chosen
        .iter()
        .zip(&subtrees)
        .map(|(c, (m, more))| b.storyline(c, m, *more))
        .collect();
    Ok(Report {
        format: "tprobe-investigate/1",
        input,
        storylines,
    })
}

fn summary(
    p: &InputProblems,
    files: &[String],
    lines: u64,
    skipped: super::line::BadCounts,
    processes: usize,
    from: Option<String>,
    to: Option<String>,
) -> InputSummary {
    InputSummary {
        files: files.to_vec(),
        lines,
        skipped,
        unreadable: p.unreadable.clone(),
        truncated: p
            .truncated_gzip
            .iter()
            .map(|(f, n)| Truncated {
                file: f.clone(),
                lines: *n,
            })
            .collect(),
        processes,
        damaged: 0,
        from,
        to,
    }
}

fn report_problems(i: &InputSummary) {
    if let Some(line) = i.problems_line() {
        eprintln!("tprobe investigate: {line}");
    }
}

/// Whether text output gets colours.
fn colored(c: Color) -> bool {
    match c {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    }
}

/// The rendered output of a report.
pub fn render(args: &InvestigateArgs, r: &Report) -> String {
    let paint = Paint(colored(args.color));
    match args.format {
        OutFormat::Json => {
            let mut s = serde_json::to_string_pretty(r).unwrap_or_default();
            s.push('\n');
            s
        }
        OutFormat::Html => super::html::render(r),
        OutFormat::Text if args.timeline => super::timeline::render(r, paint),
        OutFormat::Text => super::text::render(r, paint),
    }
}

/// `tprobe investigate`: 0 with a storyline, 1 when there is none (unknown target, no input).
pub fn run(args: &InvestigateArgs) -> u8 {
    let progress = Progress::stderr();
    match investigate(args, &progress) {
        Ok(r) => {
            let out = render(args, &r);
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => 0,
                // A closed pipe (`| head`) is the reader's choice, not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
                Err(e) => {
                    eprintln!("tprobe investigate: cannot write the output: {e}");
                    crate::exit_code::RUNTIME
                }
            }
        }
        Err(e) => {
            eprintln!("tprobe investigate: {e}");
            match e {
                InvestigateError::BadTime(_) => crate::exit_code::USAGE,
                _ => crate::exit_code::RUNTIME,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: InvestigateArgs,
    }

    fn line(ts: &str, kind: &str, seq: u64, rest: &str) -> String {
        format!(
            r#"{{"ts":"{ts}","kind":"{kind}","seq":{seq},"host":{{"name":"h"}},"schema":"tprobe/1",{rest}}}"#
        )
    }

    /// Damaged records whose parents form a loop (a's parent is b, b's is a) give a storyline
    /// that ends, each process placed once; of three losses only the one that overlaps the
    /// covered time is kept.
    #[test]
    fn a_parent_loop_ends_and_only_overlapping_losses_are_kept() {
        let loss = |ts: &str, since: &str, n: u64, seq: u64| {
            line(
                ts,
                "probe.loss",
                seq,
                &format!(
                    r#""loss":{{"source":"ringbuf","kind":"file.open","count":{n},"since":"{since}"}}"#
                ),
            )
        };
        let exec = |ts: &str, seq: u64, pid: u32, me: &str, parent: (u32, &str)| {
            line(
                ts,
                "process.exec",
                seq,
                &format!(
                    r#""process":{{"pid":{pid},"tid":{pid},"args":["sh"],"start_time":"{ts}","entity_id":"{me}"}},"parent":{{"pid":{},"entity_id":"{}"}}"#,
                    parent.0, parent.1
                ),
            )
        };
        let lines = [
            loss("2026-01-01T00:00:05Z", "2026-01-01T00:00:01Z", 9, 1),
            exec("2026-01-01T00:00:10Z", 2, 10, "aaaa", (11, "bbbb")),
            exec("2026-01-01T00:00:11Z", 3, 11, "bbbb", (10, "aaaa")),
            line(
                "2026-01-01T00:00:12Z",
                "file.open",
                4,
                r#""process":{"pid":11,"tid":11,"entity_id":"bbbb"},"file":{"path":"/etc/x","flags":["O_WRONLY"]}"#,
            ),
            loss("2026-01-01T00:00:12.5Z", "2026-01-01T00:00:11.5Z", 3, 5),
            loss("2026-01-01T00:01:00Z", "2026-01-01T00:00:50Z", 4, 6),
        ];
        let d = std::env::temp_dir().join(format!("tprobe-inv-loop-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("rec.json");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let cli = Cli::try_parse_from([
            "investigate",
            p.to_str().unwrap(),
            "--entity",
            "aaaa",
            "--format",
            "json",
        ])
        .unwrap();
        let r = investigate(&cli.args, &Progress::hidden()).unwrap();
        let s = &r.storylines[0];
        assert_eq!(s.tree.proc.entity_id, "aaaa");
        assert_eq!(s.tree.children.len(), 1);
        assert_eq!(s.tree.children[0].proc.entity_id, "bbbb");
        assert!(s.tree.children[0].children.is_empty());
        let counts: Vec<u64> = s.losses.iter().map(|l| l.count).collect();
        assert_eq!(counts, [3]);
        // Every renderer gets through it too.
        for f in [OutFormat::Text, OutFormat::Html] {
            let mut a = cli.args.clone();
            a.format = f;
            assert!(render(&a, &r).contains("aaaa"));
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
