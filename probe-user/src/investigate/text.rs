//! `--format text`: the storyline as an indented tree, coloured on a terminal (NO_COLOR and
//! pipes get plain text). The timeline listing lives in timeline.rs.
use std::fmt::Write as _;

use super::{
    activity::{Activity, AlertMark, ResponseMark, GROUPS},
    story::{Node, Report, Storyline},
    tree::{Exit, Proc, Seen},
};
use crate::encode::json::command_line;

/// ANSI styling, or none.
#[derive(Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    pub fn on(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    pub fn dim(self, s: &str) -> String {
        self.on("2", s)
    }
    pub fn bold(self, s: &str) -> String {
        self.on("1", s)
    }
    /// The colour of an alert level.
    pub fn level(self, level: Option<&str>, s: &str) -> String {
        let code = match level {
            Some("critical" | "high") => "1;41;97",
            Some("medium") => "1;31",
            _ => "1;33",
        };
        self.on(code, s)
    }
}

/// hh:mm:ss.mmm of an RFC 3339 time.
pub fn clock(ts: &str) -> &str {
    ts.get(11..23).unwrap_or(ts)
}

pub fn signal_name(n: i64) -> Option<String> {
    let s = nix::sys::signal::Signal::try_from(i32::try_from(n).ok()?).ok()?;
    Some(s.as_str().to_owned())
}

/// "exit 0", "killed by SIGKILL", with "core dumped" when it was.
pub fn exit_text(e: &Exit) -> String {
    let mut s = match (e.code, e.signal) {
        (_, Some(sig)) => format!(
            "killed by {}",
            signal_name(sig).unwrap_or_else(|| format!("signal {sig}"))
        ),
        (Some(c), None) => format!("exit {c}"),
        (None, None) => "exited".into(),
    };
    if e.core_dumped {
        s.push_str(", core dumped");
    }
    s
}

/// The command line shown for a process (argv, else exe, else comm).
pub fn command(p: &Proc) -> String {
    let args = serde_json::Value::from(p.args.clone());
    command_line(&args)
        .or_else(|| p.exe.clone())
        .or_else(|| p.comm.clone())
        .unwrap_or_else(|| "?".into())
}

/// The facts line of a process: user, cwd, times, exit status, container.
pub fn facts(p: &Proc, paint: Paint) -> String {
    let mut f = Vec::new();
    if let Some(u) = &p.user {
        f.push(format!("user {u}"));
    } else if let Some(uid) = p.uid {
        f.push(format!("uid {uid}"));
    }
    if let Some(c) = &p.cwd {
        f.push(format!("cwd {c}"));
    }
    let start = p.start.as_deref().map(clock).unwrap_or("?");
    match (&p.end, &p.exit) {
        (Some(end), Some(e)) => {
            let ex = exit_text(e);
            let ex = if e.code == Some(0) && e.signal.is_none() {
                ex
            } else {
                paint.on("31", &ex)
            };
            f.push(format!("{start} → {} {ex}", clock(end)));
        }
        (Some(end), None) => f.push(format!("{start} → {}", clock(end))),
        _ if p.seen == Seen::Events || p.seen == Seen::Forked => {
            f.push(format!("{start} → (no exit in these files)"))
        }
        _ => f.push(format!("started {start}")),
    }
    if let Some(c) = &p.container {
        // By chars: a damaged record may hold any id.
        let short: String = c.id.chars().take(12).collect();
        let name = c.name.as_deref().unwrap_or(&short);
        let mut s = format!("container {name}");
        if let Some(i) = &c.image {
            let _ = write!(s, " ({i})");
        }
        if let Some(pod) = &c.pod {
            let _ = write!(s, " pod {pod}");
        }
        f.push(s);
    }
    f.join(" · ")
}

fn alert_line(a: &AlertMark, paint: Paint) -> String {
    let head = format!(
        "ALERT #{} [{}]",
        a.seq.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
        a.level.as_deref().unwrap_or("?")
    );
    format!(
        "{} {} {} {}",
        paint.level(a.level.as_deref(), &head),
        clock(&a.ts),
        paint.bold(a.title.as_deref().unwrap_or("?")),
        paint.dim(&format!(
            "rule {} on {}",
            a.rule_id.as_deref().unwrap_or("?"),
            a.matched.as_deref().unwrap_or("?")
        )),
    )
}

fn response_line(r: &ResponseMark, paint: Paint) -> String {
    let mut s = format!(
        "RESPONSE {} {}",
        r.kind,
        if r.dry_run == Some(true) {
            "(dry run)"
        } else {
            ""
        }
    );
    let outcome = match (r.ok, &r.error, &r.reason) {
        (Some(true), _, _) => "ok".to_owned(),
        (_, Some(e), Some(why)) => format!("failed {e}: {why}"),
        (_, Some(e), None) => format!("failed {e}"),
        (_, None, Some(why)) => format!("refused: {why}"),
        _ => "outcome unknown".into(),
    };
    let trigger = match (r.alert_seq, &r.rule_id) {
        (Some(seq), _) => format!(" for alert #{seq}"),
        (None, Some(rule)) => format!(" for rule {rule}"),
        _ => String::new(),
    };
    s = format!(
        "{} {} {outcome}{trigger}",
        paint.on("1;35", s.trim_end()),
        clock(&r.ts)
    );
    s
}

/// The activity lines of a process.
pub fn activity_lines(a: &Activity, paint: Paint) -> Vec<String> {
    let mut out = Vec::new();
    for al in &a.alerts {
        out.push(alert_line(al, paint));
    }
    for r in &a.responses {
        out.push(response_line(r, paint));
    }
    for (key, heading) in GROUPS {
        let Some(g) = a.groups.get(key) else { continue };
        let items: Vec<String> = g
            .items
            .iter()
            .map(|i| {
                let mut s = i.what.clone();
                if i.count > 1 {
                    let _ = write!(s, " ×{}", i.count);
                }
                if i.failed > 0 {
                    s.push_str(&paint.on("31", &format!(" ({} failed)", i.failed)));
                }
                s
            })
            .collect();
        let more = if g.more > 0 {
            format!(", +{} more", g.more)
        } else {
            String::new()
        };
        out.push(format!(
            "{} {}",
            paint.on("36", &format!("{heading} ({}):", g.total)),
            items.join(", ") + &more
        ));
    }
    out
}

fn proc_line(p: &Proc, target: bool, paint: Paint) -> String {
    let who = format!("{}[{}]", p.name(), p.pid);
    let who = if target {
        paint.on("1;4", &format!("▶ {who}"))
    } else {
        paint.bold(&who)
    };
    format!("{who}  {}", short(&command(p), CMD_MAX))
}

/// `s` cut to `max` characters (with an ellipsis): command lines can be kilobytes long.
pub fn short(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Longest command line shown in a tree line.
pub const CMD_MAX: usize = 200;

fn images(p: &Proc, paint: Paint) -> Option<String> {
    let was: Vec<String> = p
        .images
        .iter()
        .filter(|i| !i.inherited)
        .map(|i| {
            let a = serde_json::Value::from(i.args.clone());
            command_line(&a)
                .or_else(|| i.exe.clone())
                .unwrap_or_else(|| "?".into())
        })
        .map(|c| short(&c, CMD_MAX))
        .collect();
    if was.is_empty() {
        return None;
    }
    Some(paint.dim(&format!("before exec: {}", was.join(" → "))))
}

fn node(out: &mut String, n: &Node, prefix: &str, last: bool, root: bool, paint: Paint) {
    let (branch, cont) = if root {
        ("", "")
    } else if last {
        ("└─ ", "   ")
    } else {
        ("├─ ", "│  ")
    };
    let _ = writeln!(
        out,
        "{prefix}{branch}{}",
        proc_line(&n.proc, n.target, paint)
    );
    let inner = format!("{prefix}{cont}");
    let bar = if n.children.is_empty() {
        "   "
    } else {
        "│  "
    };
    let mut detail = vec![facts(&n.proc, paint)];
    detail.extend(images(&n.proc, paint));
    if let Some(a) = &n.activity {
        detail.extend(activity_lines(a, paint));
    }
    detail.push(paint.dim(&format!("entity {}", n.proc.entity_id)));
    for d in detail {
        let _ = writeln!(out, "{inner}{bar}  {d}");
    }
    for (i, c) in n.children.iter().enumerate() {
        node(out, c, &inner, i + 1 == n.children.len(), false, paint);
    }
}

/// The storyline header: target, why, covered time, losses.
pub fn header(s: &Storyline, paint: Paint) -> String {
    let mut out = String::new();
    let t = &s.tree.proc;
    let _ = writeln!(
        out,
        "{} {}[{}] {}",
        paint.bold("Storyline of"),
        t.name(),
        t.pid,
        paint.dim(&format!("entity {}", t.entity_id))
    );
    for a in &s.because {
        let _ = writeln!(out, "  because of {}", alert_line(a, paint));
    }
    let _ = writeln!(
        out,
        "  covered {} … {} · {} process{}{}",
        s.covered.from.as_deref().unwrap_or("?"),
        s.covered.to.as_deref().unwrap_or("?"),
        s.processes,
        if s.processes == 1 { "" } else { "es" },
        if s.processes_more > 0 {
            format!(" (+{} more not shown, --max-processes)", s.processes_more)
        } else {
            String::new()
        }
    );
    for g in &s.gaps {
        let _ = writeln!(
            out,
            "  {}",
            paint.on(
                "1;33",
                &format!(
                    "probe not running {} … {}: events in that time are missing",
                    g.from,
                    g.to.as_deref().unwrap_or("the end of the record")
                )
            )
        );
    }
    if s.losses.is_empty() {
        let _ = writeln!(out, "  losses: none reported in this time");
    } else {
        let total: u64 = s.losses.iter().map(|l| l.count).sum();
        let _ = writeln!(
            out,
            "  {}",
            paint.on(
                "1;33",
                &format!(
                    "losses: {total} events lost in this time ({} reports): events may be missing",
                    s.losses.len()
                )
            )
        );
        for l in &s.losses {
            let _ = writeln!(
                out,
                "    {} … {} {} lost ({}, {})",
                l.since.as_deref().map(clock).unwrap_or("?"),
                clock(&l.ts),
                l.count,
                l.source,
                l.kind
            );
        }
    }
    out
}

/// The whole report as a tree per storyline.
pub fn render(r: &Report, paint: Paint) -> String {
    let mut out = String::new();
    for (k, s) in r.storylines.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        out.push_str(&header(s, paint));
        out.push('\n');
        // The ancestors as a chain, root first, each one level in.
        for (d, a) in s.ancestors.iter().enumerate() {
            let lead = if d == 0 {
                String::new()
            } else {
                format!("{}└─ ", "   ".repeat(d - 1))
            };
            let who = format!("{}[{}]", a.name(), a.pid);
            let cmd = short(&command(a), CMD_MAX / 2);
            let _ = writeln!(out, "{lead}{}  {}", paint.dim(&who), paint.dim(&cmd));
        }
        let depth = s.ancestors.len();
        let mut tree = String::new();
        let prefix = "   ".repeat(depth.saturating_sub(1));
        node(&mut tree, &s.tree, &prefix, true, depth == 0, paint);
        out.push_str(&tree);
    }
    out
}
