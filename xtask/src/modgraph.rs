//! The module graph of a crate, from its own `use` lines and paths, and a check that it has no cycle.
//!
//! A small reader of our own rather than `cargo-modules`: that tool builds rust-analyzer (minutes on
//! a fresh machine) and cannot see the eBPF crate, whose target it does not know. Ours reads the
//! sources: `crate::`, `super::` and `self::` paths, and bare paths that start with a child module.
//! An inline `#[cfg(test)] mod tests` is left out: tests may reach anywhere.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

/// Module path (`""` for the crate root, `"enrich::process"`) → the modules it uses.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// Reads every `.rs` file under `src` and builds the graph between its file modules.
pub fn graph(src: &Path) -> Result<Graph> {
    let mut files = Vec::new();
    walk(src, &mut files)?;
    let mut sources = BTreeMap::new();
    let has_lib = src.join("lib.rs").exists();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap_or(f);
        // A binary beside a library is its own crate, which reaches the library by name; a
        // `tests.rs` is a test module, which may reach anywhere.
        if has_lib && rel == Path::new("main.rs")
            || rel.file_name().is_some_and(|n| n == "tests.rs")
        {
            continue;
        }
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        sources.insert(module_of(rel), text);
    }
    Ok(graph_of(&sources))
}

/// The graph of modules given as (module path, source text).
pub fn graph_of(sources: &BTreeMap<String, String>) -> Graph {
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let mut g = Graph::new();
    for (m, text) in sources {
        let mut code = strip_tests(&strip_comments(text));
        if m.is_empty() {
            code = strip_pub_use(&code);
        }
        let mut deps = BTreeSet::new();
        for path in paths(&code) {
            let Some(abs) = absolute(m, &path, &modules) else {
                continue;
            };
            if let Some(target) = deepest_module(&abs, &modules) {
                // Edges go both ways between a parent and its children (a parent that uses a
                // child which uses the parent is a cycle), the crate root's too: its `mod` lines
                // and re-exports (the crate's face) make none, the code it holds does.
                if target != *m {
                    deps.insert(target);
                }
            }
        }
        g.insert(m.clone(), deps);
    }
    g
}

/// `code` without its `pub use ...;` items (a crate root's re-exports).
fn strip_pub_use(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("pub use ") {
        let starts_item = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c == '\n' || c == ';' || c == '}' || c.is_whitespace());
        out.push_str(&rest[..at]);
        let end = if starts_item {
            rest[at..].find(';').map_or(rest.len(), |e| at + e + 1)
        } else {
            out.push_str("pub use ");
            at + "pub use ".len()
        };
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Every cycle (strongly connected component of more than one module), each sorted.
pub fn cycles(g: &Graph) -> Vec<Vec<String>> {
    // Tarjan's algorithm, iterative enough for crate-sized graphs through recursion.
    struct St<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        on: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        if let Some(deps) = s.g.get(v) {
            for w in deps {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = St {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// The longest chain of imports (in modules) in an acyclic graph.
pub fn depth(g: &Graph) -> usize {
    fn d<'a>(g: &'a Graph, v: &'a str, memo: &mut BTreeMap<&'a str, usize>) -> usize {
        if let Some(&x) = memo.get(v) {
            return x;
        }
        memo.insert(v, 0);
        let x = 1 + g
            .get(v)
            .map(|ds| ds.iter().map(|w| d(g, w, memo)).max().unwrap_or(0))
            .unwrap_or(0);
        memo.insert(v, x);
        x
    }
    let mut memo = BTreeMap::new();
    g.keys().map(|v| d(g, v, &mut memo)).max().unwrap_or(0)
}

/// Fails with every cycle named when the crate at `src` has one.
pub fn check(crate_name: &str, src: &Path) -> Result<()> {
    let g = graph(src)?;
    let cs = cycles(&g);
    if cs.is_empty() {
        eprintln!(
            "xtask: {crate_name}: {} modules, no import cycle, longest import chain {}",
            g.len(),
            depth(&g)
        );
        return Ok(());
    }
    let mut msg = format!(
        "{crate_name}: {} import cycle(s) between modules:\n",
        cs.len()
    );
    for c in &cs {
        msg.push_str("  ");
        msg.push_str(&c.join(", "));
        msg.push('\n');
        for m in c {
            let inside: Vec<&str> = g[m]
                .iter()
                .filter(|d| c.contains(d))
                .map(String::as_str)
                .collect();
            msg.push_str(&format!("    {m} -> {}\n", inside.join(", ")));
        }
    }
    bail!("{msg}")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// `a/b.rs` → `a::b`, `a/mod.rs` → `a`, `lib.rs` / `main.rs` → `""`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") || !parts.is_empty() && stem != "mod" {
            parts.push(stem.to_owned());
        }
    }
    parts.join("::")
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            // Skip string literals: paths inside them are not imports.
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Cuts an inline test module: `#[cfg(test)]` followed by `mod name {`, to its closing brace.
fn strip_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        // Any visibility: `pub(crate) mod tests` shares its helpers with sibling tests.
        let unvis = match trimmed.strip_prefix("pub") {
            Some(r) if r.starts_with('(') => r.find(')').map_or(r, |c| &r[c + 1..]),
            Some(r) => r,
            None => trimmed,
        };
        let is_mod = unvis.trim_start().starts_with("mod ");
        let open = trimmed.find(['{', ';']);
        if !is_mod || open.is_none_or(|o| trimmed.as_bytes()[o] == b';') {
            out.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..at]);
        let start = rest.len() - trimmed.len() + open.expect("checked");
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = start + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Every path the code names, with `use` groups expanded: `["crate", "a", "b"]`, `["super", "x"]`,
/// `["name", "Item"]` (bare, may start with a child module).
fn paths(code: &str) -> Vec<Vec<String>> {
    let toks = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        // Only start a path at an identifier that is not itself after `::`.
        let starts = is_ident(&toks[i]) && (i == 0 || toks[i - 1] != "::");
        if starts && toks.get(i + 1).is_some_and(|t| t == "::") {
            let (ps, next) = path_tree(&toks, i, Vec::new());
            out.extend(ps);
            i = next.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Reads `a::b::{c, d::e}` starting at `toks[i]`; returns the expanded paths and the next index.
fn path_tree(toks: &[String], mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut cur = prefix;
    loop {
        match toks.get(i) {
            Some(t) if is_ident(t) => {
                cur.push(t.clone());
                i += 1;
            }
            Some(t) if t == "{" => {
                let mut all = Vec::new();
                i += 1;
                loop {
                    match toks.get(i).map(String::as_str) {
                        Some("}") => return (all, i + 1),
                        Some(",") => i += 1,
                        None => return (all, i),
                        _ => {
                            let (ps, next) = path_tree(toks, i, cur.clone());
                            all.extend(ps);
                            if next == i {
                                i += 1;
                            } else {
                                i = next;
                            }
                        }
                    }
                }
            }
            _ => return (vec![cur], i),
        }
        if toks.get(i).is_some_and(|t| t == "::") {
            i += 1;
        } else {
            // `as name` and the like end the path.
            return (vec![cur], i);
        }
    }
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cs: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_alphanumeric() || c == '_' {
            let s = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(cs[s..i].iter().collect());
        } else if c == ':' && cs.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// Resolves a path named in module `m` to an absolute one (without `crate`), or `None` when it
/// names something outside the crate.
fn absolute(m: &str, path: &[String], modules: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut base: Vec<String> = if m.is_empty() {
        Vec::new()
    } else {
        m.split("::").map(str::to_owned).collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        Some(first) => {
            // A bare path counts when it starts with a child module of `m` (or, at the crate
            // root, a top-level module).
            let mut child = base.clone();
            child.push(first.to_owned());
            if !modules.contains(&child.join("::")) {
                return None;
            }
        }
        None => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The longest prefix of `abs` that is a module.
fn deepest_module(abs: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (0..=abs.len())
        .rev()
        .map(|n| abs[..n].join("::"))
        .find(|p| modules.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(files: &[(&str, &str)]) -> Graph {
        graph_of(
            &files
                .iter()
                .map(|(m, t)| (m.to_string(), t.to_string()))
                .collect(),
        )
    }

    #[test]
    fn finds_a_cycle_through_use_groups_and_super() {
        let graph = g(&[
            ("", "pub mod a; pub mod b; pub mod c;"),
            ("a", "use crate::{b::{X, Y as Z}, other};"),
            ("b", "fn f() { super::c::go(); }"),
            ("c", "use crate::a;"),
        ]);
        // `crate::other` is an item of the crate root.
        assert_eq!(
            graph["a"],
            BTreeSet::from(["".to_string(), "b".to_string()])
        );
        assert_eq!(graph["b"], BTreeSet::from(["c".to_string()]));
        assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
    }

    #[test]
    fn tests_comments_and_strings_are_not_edges() {
        let graph = g(&[
            ("", "pub mod a; pub mod b;"),
            ("a", "pub mod inner; // crate::b\nconst S: &str = \"crate::b\";\n#[cfg(test)]\nmod tests { use crate::b; }"),
            ("a::inner", "use super::Y;"),
            ("b", "use crate::a::inner::X;\n#[cfg(test)]\npub(crate) mod tests { use crate::a; }"),
        ]);
        assert!(graph["a"].is_empty(), "{:?}", graph["a"]);
        assert_eq!(graph["b"], BTreeSet::from(["a::inner".to_string()]));
        assert_eq!(graph["a::inner"], BTreeSet::from(["a".to_string()]));
        assert!(cycles(&graph).is_empty());
        assert_eq!(depth(&graph), 3);
    }

    #[test]
    fn a_parent_and_a_child_that_use_each_other_are_a_cycle() {
        let graph = g(&[
            ("", "pub mod a;"),
            ("a", "pub mod inner; pub use inner::X;"),
            ("a::inner", "use super::Y;"),
        ]);
        assert_eq!(cycles(&graph), vec![vec!["a", "a::inner"]]);
    }

    /// The root's code makes edges (a child that calls back into it closes a cycle); its
    /// re-exports do not.
    #[test]
    fn the_crate_roots_code_counts_its_re_exports_do_not() {
        let graph = g(&[
            (
                "",
                "pub mod a; pub mod b; pub use a::*;\npub use b::{X,\n Y};\nfn f() { a::go(); }",
            ),
            ("a", "use crate::b;"),
            ("b", "use crate::Z;"),
        ]);
        assert_eq!(graph[""], BTreeSet::from(["a".to_string()]));
        assert_eq!(cycles(&graph), vec![vec!["", "a", "b"]]);
    }

    #[test]
    fn module_paths_from_files() {
        assert_eq!(module_of(Path::new("lib.rs")), "");
        assert_eq!(module_of(Path::new("main.rs")), "");
        assert_eq!(module_of(Path::new("enrich/mod.rs")), "enrich");
        assert_eq!(module_of(Path::new("enrich/process.rs")), "enrich::process");
        assert_eq!(module_of(Path::new("kernel/main.rs")), "kernel::main");
    }
}
