//! `--timeline`: the same selection as a chronological listing, one event a line.
use std::fmt::Write as _;

use super::{
    scan::Entry,
    story::Report,
    text::{clock, header, Paint},
};

fn mark(e: &Entry, paint: Paint) -> String {
    let kind = format!("{:<16}", e.kind);
    match e.kind.as_str() {
        "alert" => paint.on("1;31", &kind),
        k if k.starts_with("response.") => paint.on("1;35", &kind),
        "probe.loss" => paint.on("1;33", &kind),
        k if k.starts_with("process.") => paint.on("32", &kind),
        k if k.starts_with("file.") => paint.on("36", &kind),
        k if k.starts_with("net.") => paint.on("35", &kind),
        _ => paint.on("33", &kind),
    }
}

pub fn render(r: &Report, paint: Paint) -> String {
    let mut out = String::new();
    for (k, s) in r.storylines.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        out.push_str(&header(s, paint));
        out.push('\n');
        for e in s.timeline.iter().flatten() {
            let who = match (&e.name, e.pid) {
                (Some(n), Some(p)) => format!("{n}[{p}]"),
                _ => "-".into(),
            };
            let day = e.ts.get(..10).unwrap_or("");
            let _ = writeln!(
                out,
                "{} {} {:<20} {} {}",
                paint.dim(day),
                clock(&e.ts),
                who,
                mark(e, paint),
                e.what
            );
        }
        if s.timeline_more > 0 {
            let _ = writeln!(
                out,
                "… {} more events not listed (--max-events)",
                s.timeline_more
            );
        }
    }
    out
}
