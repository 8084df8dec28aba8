//! `--format html`: one self-contained page (inline style and a few lines of script, nothing
//! fetched, a Content-Security-Policy that forbids fetching) with the process tree as nested
//! `<details>` (collapsible without script) and the timeline as a table. A responder attaches
//! it to a ticket.
use std::fmt::Write as _;

use super::{
    activity::{Activity, GROUPS},
    story::{Node, Report, Storyline},
    text::{clock, command, facts, short, Paint, CMD_MAX},
    tree::Proc,
};

/// Text made safe for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d232a;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #d5dae0}
.meta{color:#56606b;margin:2px 0} code,.cmd{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:22px;border-left:1px dotted #b8c0c8}
ul.tree{padding-left:0;border-left:none}
li.proc{margin:4px 0} summary{cursor:pointer} summary .who{font-weight:600}
li.ancestor>details>summary{color:#6b7480} li.target>details>summary{background:#fff4c2;border-radius:4px;padding:1px 4px}
.facts{color:#444c55;margin:2px 0 2px 18px} .eid{color:#8a939c;font-size:12px}
.act{margin:2px 0 2px 18px} .act b{color:#0b6b82;font-weight:600}
.alert{display:inline-block;background:#c62828;color:#fff;border-radius:4px;padding:1px 6px;margin:2px 0 2px 18px;font-weight:600}
.alert.low{background:#b26a00} .alert.medium{background:#d84315}
.alert .eid{color:#ffe9c4}
.resp{display:inline-block;background:#6a1b9a;color:#fff;border-radius:4px;padding:1px 6px;margin:2px 0 2px 18px}
.loss{background:#fff3cd;border:1px solid #e0b400;border-radius:4px;padding:4px 8px;margin:6px 0}
.bad{color:#b00020} table{border-collapse:collapse;width:100%} td,th{padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #eef0f2}
td.t{white-space:nowrap;font-family:ui-monospace,monospace;font-size:12px;color:#56606b}
tr.alert-row td{background:#fde7e7} tr.resp-row td{background:#f1e6f7} tr.loss-row td{background:#fff3cd}
button{margin:0 6px 8px 0}
"#;

const SCRIPT: &str = r#"
function setAll(open){document.querySelectorAll('details').forEach(function(d){d.open=open;});}
"#;

fn activity(out: &mut String, a: &Activity) {
    for al in &a.alerts {
        let lvl = al.level.as_deref().unwrap_or("");
        let _ = writeln!(
            out,
            r#"<div class="alert {}" data-alert-seq="{}">ALERT #{} [{}] {} {} <span class="eid">rule {}</span></div>"#,
            esc(lvl),
            al.seq.map(|s| s.to_string()).unwrap_or_default(),
            al.seq.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
            esc(lvl),
            esc(clock(&al.ts)),
            esc(al.title.as_deref().unwrap_or("?")),
            esc(al.rule_id.as_deref().unwrap_or("?"))
        );
    }
    for r in &a.responses {
        let ok = match (r.ok, &r.error, &r.reason) {
            (Some(true), _, _) => "ok".to_owned(),
            (_, e, w) => format!(
                "failed {} {}",
                e.as_deref().unwrap_or(""),
                w.as_deref().unwrap_or("")
            ),
        };
        let _ = writeln!(
            out,
            r#"<div class="resp">RESPONSE {} {}{} {}</div>"#,
            esc(&r.kind),
            esc(clock(&r.ts)),
            if r.dry_run == Some(true) {
                " (dry run)"
            } else {
                ""
            },
            esc(ok.trim())
        );
    }
    for (key, heading) in GROUPS {
        let Some(g) = a.groups.get(key) else { continue };
        let items: Vec<String> = g
            .items
            .iter()
            .map(|i| {
                let mut s = format!("<code>{}</code>", esc(&i.what));
                if i.count > 1 {
                    let _ = write!(s, " ×{}", i.count);
                }
                if i.failed > 0 {
                    let _ = write!(s, r#" <span class="bad">({} failed)</span>"#, i.failed);
                }
                s
            })
            .collect();
        let more = if g.more > 0 {
            format!(", +{} more", g.more)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            r#"<div class="act" data-group="{key}"><b>{} ({})</b>: {}{more}</div>"#,
            esc(heading),
            g.total,
            items.join(", ")
        );
    }
}

fn summary(p: &Proc) -> String {
    let cmd = command(p);
    // The whole command line on hover when the shown one is cut.
    format!(
        r#"<span class="who">{}[{}]</span> <span class="cmd" title="{}">{}</span>"#,
        esc(p.name()),
        p.pid,
        esc(&cmd),
        esc(&short(&cmd, CMD_MAX))
    )
}

fn node(out: &mut String, n: &Node) {
    let class = if n.target { "proc target" } else { "proc" };
    let _ = writeln!(
        out,
        r#"<li class="{class}" data-entity="{}" data-pid="{}"><details open><summary>{}</summary>"#,
        esc(&n.proc.entity_id),
        n.proc.pid,
        summary(&n.proc)
    );
    let _ = writeln!(
        out,
        r#"<div class="facts">{}</div>"#,
        esc(&facts(&n.proc, Paint(false)))
    );
    if let Some(a) = &n.activity {
        activity(out, a);
    }
    let _ = writeln!(
        out,
        r#"<div class="facts eid">entity {}</div>"#,
        esc(&n.proc.entity_id)
    );
    if !n.children.is_empty() {
        out.push_str("<ul>\n");
        for c in &n.children {
            node(out, c);
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</details></li>\n");
}

fn storyline(out: &mut String, s: &Storyline, k: usize) {
    let t = &s.tree.proc;
    let _ = writeln!(
        out,
        r#"<section class="storyline" id="storyline-{k}" data-target="{}">"#,
        esc(&t.entity_id)
    );
    let _ = writeln!(out, "<h1>Storyline of {}[{}]</h1>", esc(t.name()), t.pid);
    for a in &s.because {
        let _ = writeln!(
            out,
            r#"<p class="meta">because of <span class="alert {}">ALERT #{} [{}] {}</span> <code>{}</code></p>"#,
            esc(a.level.as_deref().unwrap_or("")),
            a.seq.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
            esc(a.level.as_deref().unwrap_or("?")),
            esc(a.title.as_deref().unwrap_or("?")),
            esc(a.rule_id.as_deref().unwrap_or("?"))
        );
    }
    let _ = writeln!(
        out,
        r#"<p class="meta">covered {} … {} · {} processes{}</p>"#,
        esc(s.covered.from.as_deref().unwrap_or("?")),
        esc(s.covered.to.as_deref().unwrap_or("?")),
        s.processes,
        if s.processes_more > 0 {
            format!(" (+{} more not shown)", s.processes_more)
        } else {
            String::new()
        }
    );
    for g in &s.gaps {
        let _ = writeln!(
            out,
            r#"<div class="loss"><b>probe not running {} … {}</b>: events in that time are missing.</div>"#,
            esc(&g.from),
            esc(g.to.as_deref().unwrap_or("the end of the record"))
        );
    }
    if s.losses.is_empty() {
        out.push_str("<p class=\"meta\">losses: none reported in this time</p>\n");
    } else {
        let total: u64 = s.losses.iter().map(|l| l.count).sum();
        let _ = writeln!(
            out,
            r#"<div class="loss"><b>{total} events lost in this time</b>: events may be missing.<br>{}</div>"#,
            s.losses
                .iter()
                .map(|l| esc(&format!(
                    "{} … {}: {} lost ({}, {})",
                    l.since.as_deref().unwrap_or("?"),
                    l.ts,
                    l.count,
                    l.source,
                    l.kind
                )))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    out.push_str("<h2>Process tree</h2>\n<button onclick=\"setAll(true)\">expand all</button><button onclick=\"setAll(false)\">collapse all</button>\n");
    out.push_str("<ul class=\"tree\">\n");
    // Ancestors nest root first; the target's tree goes inside the innermost.
    for a in &s.ancestors {
        let _ = writeln!(
            out,
            r#"<li class="proc ancestor" data-entity="{}" data-pid="{}"><details open><summary>{}</summary><div class="facts">{}</div><ul>"#,
            esc(&a.entity_id),
            a.pid,
            summary(a),
            esc(&facts(a, Paint(false)))
        );
    }
    node(out, &s.tree);
    for _ in &s.ancestors {
        out.push_str("</ul></details></li>\n");
    }
    out.push_str("</ul>\n");
    if let Some(tl) = &s.timeline {
        out.push_str("<h2>Timeline</h2>\n<table class=\"timeline\"><tr><th>time</th><th>process</th><th>kind</th><th>what</th></tr>\n");
        for e in tl {
            let row = match e.kind.as_str() {
                "alert" => " class=\"alert-row\"",
                "probe.loss" => " class=\"loss-row\"",
                k if k.starts_with("response.") => " class=\"resp-row\"",
                _ => "",
            };
            let who = match (&e.name, e.pid) {
                (Some(n), Some(p)) => format!("{n}[{p}]"),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                r#"<tr{row}><td class="t">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>"#,
                esc(&e.ts),
                esc(&who),
                esc(&e.kind),
                esc(&e.what)
            );
        }
        out.push_str("</table>\n");
        if s.timeline_more > 0 {
            let _ = writeln!(
                out,
                "<p class=\"meta\">… {} more events not listed (--max-events)</p>",
                s.timeline_more
            );
        }
    }
    out.push_str("</section>\n");
}

pub fn render(r: &Report) -> String {
    let title = r
        .storylines
        .first()
        .map(|s| format!("{}[{}]", s.tree.proc.name(), s.tree.proc.pid))
        .unwrap_or_default();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
         <title>tprobe storyline: {}</title>\n<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n</head><body>\n",
        esc(&title)
    );
    for (k, s) in r.storylines.iter().enumerate() {
        storyline(&mut out, s, k);
    }
    let i = &r.input;
    let _ = writeln!(
        out,
        "<footer><h2>Input</h2><p class=\"meta\">{} lines from {}; {} processes; {} … {}</p>{}</footer>",
        i.lines,
        esc(&i.files.join(", ")),
        i.processes,
        esc(i.from.as_deref().unwrap_or("?")),
        esc(i.to.as_deref().unwrap_or("?")),
        i.problems_line()
            .map(|p| format!("<p class=\"bad\">{}</p>", esc(&p)))
            .unwrap_or_default()
    );
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(
            super::esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
