//! Relative links in README.md and docs/ point to files and anchors that exist.
//!
//! The repository is cloned alone, so a link that leaves it (`../shared/...`) is as broken as one
//! to a file that was moved. Markdown is read with pulldown-cmark (the CommonMark parser GitHub's
//! rules are closest to), never by hand; anchors follow GitHub's heading slugs. Every failure
//! names the file, the line and the link.
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// The docs pages, in the order of the index (docs/README.md).
const PAGES: &[&str] = &[
    "events.md",
    "process.md",
    "files.md",
    "network.md",
    "security.md",
    "flows.md",
    "containers.md",
    "detection.md",
    "formats.md",
    "config.md",
    "deploy.md",
    "kernels.md",
    "benchmarks.md",
    "architecture.md",
    "baselines.md",
    "response.md",
    "investigate.md",
];

const README_MAX_LINES: usize = 250;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// README.md and every docs/*.md, as (path relative to the root, text), sorted.
fn documents(root: &Path) -> BTreeMap<String, String> {
    let mut docs = BTreeMap::new();
    let mut paths = vec![root.join("README.md")];
    let dir = root.join("docs");
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "md") {
            paths.push(path);
        }
    }
    for path in paths {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        docs.insert(rel, text);
    }
    docs
}

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The source of a link, on one line, for a failure message.
fn snippet(text: &str, range: &Range<usize>) -> String {
    let s = text[range.clone()]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if s.chars().count() > 120 {
        format!("{}...", s.chars().take(117).collect::<String>())
    } else {
        s
    }
}

/// GitHub's anchor for a heading text: lowercase; letters, digits, `-` and `_` kept, spaces become
/// `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a document's headings, in order; a repeated slug gets `-1`, `-2`, ...
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(text, options()) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let mut anchor = base.clone();
                if let Some(n) = seen.get(&base).copied() {
                    let mut n = n;
                    loop {
                        n += 1;
                        anchor = format!("{base}-{n}");
                        if !seen.contains_key(&anchor) {
                            break;
                        }
                    }
                    seen.insert(base, n);
                }
                seen.insert(anchor.clone(), 0);
                out.push(anchor);
            }
            _ => {}
        }
    }
    out
}

/// `%20` and friends, as a browser reads a link.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%' && hex.is_some() {
            if let Ok(b) = u8::from_str_radix(hex.unwrap_or(""), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A link destination of `from` (a path relative to the root) as a path relative to the root, or
/// why it cannot be one.
fn resolve(from: &str, path: &str) -> Result<PathBuf, String> {
    let mut parts: Vec<String> = Vec::new();
    let start: PathBuf = if let Some(abs) = path.strip_prefix('/') {
        PathBuf::from(abs)
    } else {
        Path::new(from).parent().unwrap_or(Path::new("")).join(path)
    };
    for c in start.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err("points outside the repository, which is cloned alone: \
                                mention it in plain text instead"
                        .into());
                }
            }
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(parts.iter().collect())
}

struct Checker<'a> {
    root: &'a Path,
    docs: &'a BTreeMap<String, String>,
    anchors: HashMap<String, Vec<String>>,
}

impl<'a> Checker<'a> {
    fn new(root: &'a Path, docs: &'a BTreeMap<String, String>) -> Self {
        Checker {
            root,
            docs,
            anchors: HashMap::new(),
        }
    }

    /// The anchors of a Markdown file: one of the documents, else read from disk.
    fn anchors_of(&mut self, rel: &str) -> Result<&[String], String> {
        if !self.anchors.contains_key(rel) {
            let text = match self.docs.get(rel) {
                Some(t) => t.clone(),
                None => {
                    fs::read_to_string(self.root.join(rel)).map_err(|e| format!("{rel}: {e}"))?
                }
            };
            self.anchors.insert(rel.to_string(), anchors(&text));
        }
        Ok(&self.anchors[rel])
    }

    fn exists(&self, rel: &Path) -> Option<bool> {
        let key = rel.to_string_lossy();
        if self.docs.contains_key(key.as_ref()) {
            return Some(false);
        }
        fs::metadata(self.root.join(rel)).ok().map(|m| m.is_dir())
    }

    /// Why the link `dest` in document `from` is broken, if it is.
    fn check(&mut self, from: &str, dest: &str) -> Option<String> {
        let lower = dest.to_ascii_lowercase();
        if ["http://", "https://", "mailto:"]
            .iter()
            .any(|s| lower.starts_with(s))
        {
            return None;
        }
        if dest.is_empty() {
            return Some("empty link target".into());
        }
        let scheme = dest.find(':').is_some_and(|i| {
            dest[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && dest[..i].starts_with(|c: char| c.is_ascii_alphabetic())
        });
        if scheme || dest.starts_with("//") {
            return Some(
                "not a relative link, and only http, https and mailto links are external".into(),
            );
        }
        let (path, anchor) = match dest.split_once('#') {
            Some((p, a)) => (p, Some(percent_decode(a))),
            None => (dest, None),
        };
        let path = percent_decode(path.split('?').next().unwrap_or(""));
        let target = if path.is_empty() {
            PathBuf::from(from)
        } else {
            match resolve(from, &path) {
                Ok(t) => t,
                Err(e) => return Some(e),
            }
        };
        let shown = target.display().to_string();
        let is_dir = match self.exists(&target) {
            None => return Some(format!("no such file: {shown}")),
            Some(d) => d,
        };
        let anchor = anchor.filter(|a| !a.is_empty())?;
        if is_dir {
            return Some(format!(
                "{shown} is a directory: it has no anchor #{anchor}"
            ));
        }
        if !shown.to_ascii_lowercase().ends_with(".md") {
            // GitHub's line anchors of a source file: #L10 or #L10-L20.
            let line = |s: &str| {
                s.strip_prefix('L')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            };
            let ok = match anchor.split_once('-') {
                Some((a, b)) => line(a) && line(b),
                None => line(&anchor),
            };
            return (!ok)
                .then(|| format!("#{anchor} is not a line anchor (#L10, #L10-L20) of {shown}"));
        }
        match self.anchors_of(&shown) {
            Err(e) => Some(e),
            Ok(list) if list.contains(&anchor) => None,
            Ok(list) => Some(format!(
                "{shown} has no heading with anchor #{anchor} (its anchors: {})",
                list.iter()
                    .map(|a| format!("#{a}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        }
    }
}

/// Every broken relative link of the documents, as `file:line: link: why`.
fn broken_links(root: &Path, docs: &BTreeMap<String, String>) -> Vec<String> {
    let mut checker = Checker::new(root, docs);
    let mut problems = Vec::new();
    for (file, text) in docs {
        let mut found: Vec<(Range<usize>, String)> = Vec::new();
        let parser = Parser::new_ext(text, options()).into_offset_iter();
        // Reference definitions (`[x]: path`) are checked where they are defined, once, even
        // when no link uses them; the links that use them are not checked again.
        for (_, def) in parser.reference_definitions().iter() {
            found.push((def.span.clone(), def.dest.to_string()));
        }
        for (event, range) in parser {
            if let Event::Start(
                Tag::Link {
                    link_type,
                    dest_url,
                    ..
                }
                | Tag::Image {
                    link_type,
                    dest_url,
                    ..
                },
            ) = event
            {
                let by_reference = matches!(
                    link_type,
                    LinkType::Reference | LinkType::Collapsed | LinkType::Shortcut
                );
                if !by_reference {
                    found.push((range, dest_url.to_string()));
                }
            }
        }
        found.sort_by_key(|(r, _)| r.start);
        for (range, dest) in found {
            if let Some(why) = checker.check(file, &dest) {
                problems.push(format!(
                    "{file}:{}: {}: {why}",
                    line_of(text, range.start),
                    snippet(text, &range)
                ));
            }
        }
    }
    problems
}

/// Fenced code blocks that are never closed, or that swallow the opening fence of the next block
/// (a missing closing fence the parser pairs with a later one), as `file:line: why`.
fn unclosed_fences(file: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (event, range) in Parser::new_ext(text, options()).into_offset_iter() {
        let Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) = event else {
            continue;
        };
        let block = text[range.clone()].trim_end_matches(['\n', '\r']);
        let mut lines = block.lines();
        let open = lines.next().unwrap_or("").trim_start();
        let fence_char = open.chars().next().unwrap_or('`');
        let run = |l: &str| {
            l.trim_start()
                .chars()
                .take_while(|c| *c == fence_char)
                .count()
        };
        let open_len = run(open);
        let body: Vec<&str> = lines.collect();
        let line = line_of(text, range.start);
        let closed = body.last().is_some_and(|l| {
            let l = l.trim();
            run(l) >= open_len && l.chars().all(|c| c == fence_char)
        });
        if !closed {
            problems.push(format!(
                "{file}:{line}: the code fence {open} is never closed: it runs to the end of the file"
            ));
            continue;
        }
        for (i, l) in body[..body.len() - 1].iter().enumerate() {
            if run(l) >= open_len {
                problems.push(format!(
                    "{file}:{}: {} opens a code block inside the one opened at line {line} \
                     ({open}): that block lacks its closing fence",
                    line + 1 + i,
                    l.trim()
                ));
            }
        }
    }
    problems
}

fn fail_on(problems: Vec<String>, what: &str) {
    assert!(
        problems.is_empty(),
        "{} {what}:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn relative_links_resolve() {
    let root = root();
    fail_on(
        broken_links(&root, &documents(&root)),
        "broken links in README.md and docs/",
    );
}

#[test]
fn code_fences_are_closed() {
    let problems = documents(&root())
        .iter()
        .flat_map(|(file, text)| unclosed_fences(file, text))
        .collect();
    fail_on(problems, "unclosed code fences");
}

#[test]
fn readme_is_at_most_250_lines() {
    let text = fs::read_to_string(root().join("README.md")).unwrap();
    let n = text.lines().count();
    assert!(
        n <= README_MAX_LINES,
        "README.md:{}: README.md has {n} lines, at most {README_MAX_LINES}: \
         move the details to a page in docs/",
        README_MAX_LINES + 1
    );
}

#[test]
fn docs_pages_have_a_title_and_a_link_to_the_index() {
    let mut problems = Vec::new();
    for (file, text) in documents(&root()) {
        let Some(dir_page) = file.strip_prefix("docs/") else {
            continue;
        };
        let first = text.lines().next().unwrap_or("");
        if !first.starts_with("# ") || first.len() < 3 {
            problems.push(format!(
                "{file}:1: the page must start with a one-line `# Title`, not `{first}`"
            ));
        }
        let back = if dir_page == "README.md" {
            "](../README.md)"
        } else {
            "](README.md)"
        };
        if !text.lines().take(5).any(|l| l.contains(back)) {
            problems.push(format!(
                "{file}:2: no link back `[...{back}` in the first lines"
            ));
        }
    }
    fail_on(problems, "docs pages without their header");
}

#[test]
fn docs_index_lists_every_page_in_order() {
    let root = root();
    let docs = documents(&root);
    let index = &docs["docs/README.md"];
    let mut listed = Vec::new();
    for event in Parser::new_ext(index, options()) {
        if let Event::Start(Tag::Link { dest_url, .. }) = event {
            if !dest_url.contains('/')
                && dest_url.ends_with(".md")
                && !listed.contains(&dest_url.to_string())
            {
                listed.push(dest_url.to_string());
            }
        }
    }
    assert_eq!(
        listed, PAGES,
        "docs/README.md: the index must link every page, in this order"
    );
    let mut on_disk: Vec<&str> = docs
        .keys()
        .filter_map(|k| k.strip_prefix("docs/"))
        .filter(|k| *k != "README.md")
        .collect();
    on_disk.sort_unstable();
    let mut expected = PAGES.to_vec();
    expected.sort_unstable();
    assert_eq!(
        on_disk, expected,
        "docs/: pages on disk differ from the index (PAGES in xtask/src/doclinks.rs)"
    );
}

/// The front door names every page too, so a family or stage added to docs/ is findable from it.
#[test]
fn readme_links_every_docs_page() {
    let root = root();
    let docs = documents(&root);
    let mut linked = std::collections::BTreeSet::new();
    for event in Parser::new_ext(&docs["README.md"], options()) {
        if let Event::Start(Tag::Link { dest_url, .. }) = event {
            if let Some(page) = dest_url.strip_prefix("docs/") {
                linked.insert(page.split('#').next().unwrap_or(page).to_owned());
            }
        }
    }
    let missing: Vec<&str> = PAGES
        .iter()
        .copied()
        .filter(|p| !linked.contains(*p))
        .collect();
    assert!(missing.is_empty(), "README.md links no docs/{missing:?}");
}

#[test]
fn slugs_follow_github_rules() {
    assert_eq!(
        slug("Kernel matrix: the same binary on other kernels"),
        "kernel-matrix-the-same-binary-on-other-kernels"
    );
    assert_eq!(slug("`tprobe run` flags"), "tprobe-run-flags");
    assert_eq!(slug("/metrics and /healthz"), "metrics-and-healthz");
    assert_eq!(slug("snake_case & dashes-ok"), "snake_case--dashes-ok");
    assert_eq!(slug("Ünïcode Ok"), "ünïcode-ok");
    let text = "# A\n## Tests\ntext\n## Tests\n## Tests\n## `Code` *em*\n";
    assert_eq!(
        anchors(text),
        ["a", "tests", "tests-1", "tests-2", "code-em"]
    );
}

#[test]
fn the_checkers_catch_what_they_are_for() {
    let root = root();
    let page = "# Page\n\n## Here it is\n\n\
                [ok](#here-it-is) [ok](other.md#other-title) [ok](other.md) [ext](https://example.org/x)\n\
                [bad anchor](#nowhere)\n\
                [bad file](no-such-file-tprobe.md)\n\
                [bad other anchor](other.md#missing)\n\
                [outside](../../shared/schema.md)\n\
                [ref][r] and [ok ref][o]\n\n\
                [r]: missing-ref.md\n\
                [o]: other.md\n";
    let docs: BTreeMap<String, String> = [
        ("docs/page.md".to_string(), page.to_string()),
        ("docs/other.md".to_string(), "# Other title\n".to_string()),
    ]
    .into();
    let problems = broken_links(&root, &docs);
    let lines: Vec<&str> = problems
        .iter()
        .map(|p| p.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "docs/page.md:6",
            "docs/page.md:7",
            "docs/page.md:8",
            "docs/page.md:9",
            "docs/page.md:12"
        ],
        "{problems:#?}"
    );
    assert!(
        problems[0]
            .starts_with("docs/page.md:6: [bad anchor](#nowhere): docs/page.md has no heading"),
        "{problems:#?}"
    );
    assert!(
        problems[3].contains("outside the repository"),
        "{problems:#?}"
    );

    // A fence left open swallows the next block's opening fence; one at the end runs to the end.
    let text = "# T\n\n```console\n$ x\n## Heading\n\n```json\n{}\n```\n\ntext\n\n```sh\nopen\n";
    let problems = unclosed_fences("t.md", text);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "t.md:7: ```json opens a code block inside the one opened at line 3 (```console)"
        ),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("t.md:13: the code fence ```sh is never closed"),
        "{problems:#?}"
    );
    assert!(unclosed_fences("t.md", "````md\n```sh\nx\n```\n````\n").is_empty());
}
