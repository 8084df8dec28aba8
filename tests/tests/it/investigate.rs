//! `tprobe investigate` on a record made by the real probe: a small process tree (sh → sh →
//! touch, curl, rm) with a rule that fires on it, written by the file sink with rotation and
//! gzip, then investigated as text, JSON, a timeline and an HTML page opened in headless
//! Chromium. Bad input and the progress bar against the same record. `--pretty` of a real run.
use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;
use tprobe_tests::{tprobe_bin, Probe, WAIT};

const TOUCH_RULE: &str = "5f1c0012-7470-4000-8000-000000000012";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What the recording run saw.
struct Record {
    dir: PathBuf,
    /// The rotated and current files the sink wrote.
    files: Vec<PathBuf>,
    /// The probe's own stdout lines (the same events).
    lines: Vec<Value>,
    outer_pid: u32,
    outer: String,
    inner: String,
    touch: String,
    curl: String,
    /// Entity id of the test process that started the outer shell.
    parent: String,
    port: u16,
    alert_seq: u64,
}

fn entity_of_exec(lines: &[Value], pred: impl Fn(&Value) -> bool) -> String {
    lines
        .iter()
        .find(|v| v["kind"] == "process.exec" && pred(v))
        .and_then(|v| v["process"]["entity_id"].as_str())
        .unwrap_or_else(|| panic!("no such exec"))
        .to_owned()
}

/// An HTTP server on loopback that answers every request with a short page.
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
        }
    });
    port
}

fn record() -> &'static Record {
    static R: OnceLock<Record> = OnceLock::new();
    R.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tprobe-investigate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = http_server();
        let rule = root().join("rules/process/touch_timestomp.yml");
        // Small files: the record spans several rotated, gzipped files.
        let sink = format!(
            "file:{},max_size=64K,keep=200,gzip",
            dir.join("rec.json").display()
        );
        let probe = Probe::start(&[
            "--rules",
            rule.to_str().unwrap(),
            "--sink",
            "stdout",
            "--sink",
            &sink,
        ]);
        let d = dir.display();
        let script = format!(
            "sh -c 'touch -d 2001-01-01 {d}/stomped; curl -s -o {d}/dl.html http://127.0.0.1:{port}/; rm -f {d}/dl.html; true'; true"
        );
        let mut child = Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let outer_pid = child.id();
        assert!(child.wait().unwrap().success());
        let exited = probe.wait_for(WAIT, |v| {
            v["kind"] == "process.exit" && v["process"]["pid"] == outer_pid
        });
        assert!(exited.is_some(), "no exit of the outer shell");
        probe.wait_for(WAIT, |v| {
            v["kind"] == "alert" && v["alert"]["rule"]["id"] == TOUCH_RULE
        });
        // Let the sink write what it holds.
        std::thread::sleep(Duration::from_millis(500));
        let st = probe.stop();
        assert!(st.status.success(), "{}", st.stderr);
        let lines = st.lines;
        let outer = entity_of_exec(&lines, |v| v["process"]["pid"] == outer_pid);
        let inner = entity_of_exec(&lines, |v| {
            v["parent"]["entity_id"] == outer.as_str()
                && v["process"]["args"][0] == "sh"
        });
        let touch = entity_of_exec(&lines, |v| {
            v["parent"]["entity_id"] == inner.as_str() && v["process"]["args"][0] == "touch"
        });
        let curl = entity_of_exec(&lines, |v| {
            v["parent"]["entity_id"] == inner.as_str() && v["process"]["args"][0] == "curl"
        });
        let parent = lines
            .iter()
            .find(|v| v["kind"] == "process.exec" && v["process"]["pid"] == outer_pid)
            .and_then(|v| v["parent"]["entity_id"].as_str())
            .unwrap()
            .to_owned();
        let alert_seq = lines
            .iter()
            .find(|v| v["kind"] == "alert" && v["alert"]["rule"]["id"] == TOUCH_RULE)
            .and_then(|v| v["seq"].as_u64())
            .expect("the touch rule fired");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("rec.json"))
            .collect();
        files.sort();
        Record {
            dir,
            files,
            lines,
            outer_pid,
            outer,
            inner,
            touch,
            curl,
            parent,
            port,
            alert_seq,
        }
    })
}

/// `tprobe investigate ARGS`: (exit code, stdout, stderr).
fn investigate(args: &[&str], files: &[PathBuf]) -> (i32, String, String) {
    let out = Command::new(tprobe_bin())
        .arg("investigate")
        .args(args)
        .args(files)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(args: &[&str], files: &[PathBuf]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let (code, out, err) = investigate(&a, files);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:.2000}"))
}

/// Every node of a storyline's tree, depth first.
fn nodes(n: &Value) -> Vec<&Value> {
    let mut out = vec![n];
    for c in n["children"].as_array().into_iter().flatten() {
        out.extend(nodes(c));
    }
    out
}

#[test]
fn the_record_spans_rotated_gzipped_files() {
    let r = record();
    let gz = r
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .count();
    assert!(gz >= 2, "expected rotation: {:?}", r.files);
    // Read back in rotation order (oldest first), whatever order the names are given in: as
    // many events as the probe printed, none skipped.
    let mut reversed = r.files.clone();
    reversed.reverse();
    let doc = json_of(&["--entity", &r.outer], &reversed);
    assert_eq!(
        doc["input"]["lines"],
        r.lines.len() as u64,
        "{}",
        doc["input"]
    );
    assert_eq!(doc["input"]["skipped"]["not_json"], 0);
    let names: Vec<&str> = doc["input"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(names.last().unwrap().ends_with("rec.json"), "{names:?}");
    assert!(names[0].ends_with(".gz"), "{names:?}");
}

#[test]
fn json_storyline_has_ancestors_target_and_children_with_their_activity() {
    let r = record();
    let doc = json_of(&["--pid", &r.outer_pid.to_string()], &r.files);
    let s = &doc["storylines"][0];
    assert_eq!(s["target"], r.outer.as_str());
    let tree = &s["tree"];
    assert_eq!(tree["entity_id"], r.outer.as_str());
    assert_eq!(tree["target"], true);
    assert_eq!(tree["exit"]["code"], 0);
    // Ancestors: root first, the test process last.
    let anc = s["ancestors"].as_array().unwrap();
    assert_eq!(
        anc.last().unwrap()["entity_id"],
        r.parent.as_str(),
        "{anc:?}"
    );
    let all = nodes(tree);
    let find = |e: &str| {
        *all.iter()
            .find(|n| n["entity_id"] == e)
            .unwrap_or_else(|| panic!("{e} not in {tree}"))
    };
    let inner = find(&r.inner);
    let kids: Vec<&str> = inner["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["entity_id"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&r.touch.as_str()) && kids.contains(&r.curl.as_str()),
        "{kids:?}"
    );
    let touch = find(&r.touch);
    assert_eq!(touch["exe"], "/usr/bin/touch");
    assert_eq!(touch["args"][1], "-d");
    assert_eq!(touch["exit"]["code"], 0);
    assert!(touch["start"].is_string() && touch["end"].is_string());
    assert!(
        touch["cwd"].is_string() && touch["user"] == "root",
        "{touch}"
    );
    // The alert is marked on touch, with its rule's title.
    let alerts = touch["activity"]["alerts"].as_array().unwrap();
    assert!(alerts.iter().any(|a| a["rule_id"] == TOUCH_RULE
        && a["title"] == "File times set by hand with touch"
        && a["seq"] == r.alert_seq));
    let stomped = r.dir.join("stomped").display().to_string();
    let changed = &touch["activity"]["groups"];
    assert!(
        changed.to_string().contains(&stomped),
        "touch's files: {changed}"
    );
    // curl: its connection to the test's server, and the file it wrote.
    let curl = find(&r.curl);
    let conns = curl["activity"]["groups"]["connections"].to_string();
    assert!(conns.contains(&format!("127.0.0.1:{}", r.port)), "{conns}");
    let written = curl["activity"]["groups"]["files_written"].to_string();
    assert!(written.contains("dl.html"), "{written}");
    assert!(
        s["losses"].as_array().unwrap().is_empty(),
        "{}",
        s["losses"]
    );
    assert!(s["covered"]["from"].is_string());
}

#[test]
fn text_tree_shows_the_story() {
    let r = record();
    let (code, out, err) = investigate(&["--entity", &r.outer, "--color", "never"], &r.files);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('\x1b'));
    assert!(out.starts_with("Storyline of"), "{out}");
    let target = out
        .lines()
        .find(|l| {
            l.contains(&format!("▶ dash[{}]", r.outer_pid))
                || l.contains(&format!("▶ sh[{}]", r.outer_pid))
        })
        .unwrap_or_else(|| panic!("no target line:\n{out}"));
    let touch = out
        .lines()
        .position(|l| l.contains("touch[") && l.contains("touch -d 2001-01-01"))
        .unwrap_or_else(|| panic!("{out}"));
    let alert = out
        .lines()
        .position(|l| l.contains("ALERT #") && l.contains("File times set by hand with touch"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(alert > touch, "the alert is under touch:\n{out}");
    // Indentation: touch is deeper than the target.
    let indent = |l: &str| {
        l.chars()
            .take_while(|c| !c.is_alphanumeric() && *c != '▶')
            .count()
    };
    let touch_line = out.lines().nth(touch).unwrap();
    assert!(indent(touch_line) > indent(target), "{out}");
    assert!(out.contains(&format!("127.0.0.1:{}", r.port)), "{out}");
    assert!(out.contains("exit 0"), "{out}");
    assert!(out.contains("losses: none reported"), "{out}");
    // On a terminal (`script` gives one) colours by default, none with NO_COLOR set.
    let files: Vec<String> = r.files.iter().map(|f| f.display().to_string()).collect();
    let cmd = format!(
        "{} investigate --entity {} {}",
        tprobe_bin().display(),
        r.outer,
        files.join(" ")
    );
    let on_tty = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    let tty = on_tty(false);
    assert!(tty.contains("\x1b[1;4m▶"), "{tty:.2000}");
    let plain = on_tty(true);
    assert!(
        plain.contains("Storyline of") && !plain.contains('\x1b'),
        "{plain:.2000}"
    );
    // Colour when asked; NO_COLOR wins over a terminal (auto) but not over --color always.
    let (_, coloured, _) = investigate(&["--entity", &r.outer, "--color", "always"], &r.files);
    assert!(coloured.contains("\x1b["));
}

#[test]
fn timeline_lists_the_selection_in_order() {
    let r = record();
    let (code, out, err) = investigate(
        &["--entity", &r.outer, "--timeline", "--color", "never"],
        &r.files,
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("20")).collect();
    assert!(rows.len() >= 6, "{out}");
    let times: Vec<&str> = rows.iter().map(|l| &l[..23]).collect();
    let sorted = {
        let mut t = times.clone();
        t.sort();
        t
    };
    assert_eq!(times, sorted, "chronological:\n{out}");
    let pos = |pred: &dyn Fn(&str) -> bool| rows.iter().position(|l| pred(l));
    let exec_touch = pos(&|l| l.contains("process.exec") && l.contains(" touch[")).unwrap();
    let alert = pos(&|l| l.contains("alert") && l.contains("File times set by hand")).unwrap();
    let exec_curl = pos(&|l| l.contains("process.exec") && l.contains(" curl[")).unwrap();
    assert!(exec_touch <= alert && exec_touch < exec_curl, "{out}");
    // The JSON carries the same timeline when asked.
    let doc = json_of(&["--entity", &r.outer, "--timeline"], &r.files);
    let tl = doc["storylines"][0]["timeline"].as_array().unwrap();
    assert_eq!(tl.len(), rows.len());
}

#[test]
fn pid_at_alert_and_rule_targets() {
    let r = record();
    let exec = r
        .lines
        .iter()
        .find(|v| v["kind"] == "process.exec" && v["process"]["entity_id"] == r.touch.as_str())
        .unwrap();
    let pid = exec["process"]["pid"].as_u64().unwrap().to_string();
    let ts = exec["ts"].as_str().unwrap();
    let doc = json_of(&["--pid", &pid, "--at", ts], &r.files);
    assert_eq!(doc["storylines"][0]["target"], r.touch.as_str());
    // Long before it started: no such instance.
    let (code, _, err) = investigate(&["--pid", &pid, "--at", "2001-01-01T00:00:00Z"], &r.files);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("no process with pid {pid} alive at")),
        "{err}"
    );
    // --alert: the matched process, with the alert that made it the target.
    let doc = json_of(&["--alert", &r.alert_seq.to_string()], &r.files);
    let s = &doc["storylines"][0];
    assert_eq!(s["target"], r.touch.as_str());
    assert_eq!(s["because"][0]["rule_id"], TOUCH_RULE);
    let anc: Vec<&str> = s["ancestors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["entity_id"].as_str().unwrap())
        .collect();
    assert!(
        anc.ends_with(&[r.parent.as_str(), r.outer.as_str(), r.inner.as_str()]),
        "{anc:?}"
    );
    // --rule: one storyline per matched process.
    let doc = json_of(&["--rule", TOUCH_RULE], &r.files);
    let targets: Vec<&str> = doc["storylines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert!(targets.contains(&r.touch.as_str()), "{targets:?}");
    let (code, _, err) = investigate(&["--rule", "no-such-rule"], &r.files);
    assert_eq!(
        (code, err.trim()),
        (
            1,
            "tprobe investigate: no alert of rule no-such-rule in these files"
        )
    );
}

#[test]
fn bad_input_is_counted_in_one_line_and_the_run_goes_on() {
    let r = record();
    let bad = r.dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let mut files = Vec::new();
    // A copy of the record, its oldest gzip cut in half.
    for f in &r.files {
        let to = bad.join(f.file_name().unwrap());
        std::fs::copy(f, &to).unwrap();
        files.push(to);
    }
    let gz = files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .max_by_key(|p| p.to_string_lossy().len())
        .unwrap()
        .clone();
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    // Lines of other formats and garbage, in a file of their own.
    let other = bad.join("other.json");
    std::fs::write(
        &other,
        concat!(
            "not json at all\n",
            "{\"@timestamp\":\"2026-12-02T06:00:00Z\",\"ecs\":{\"version\":\"8.11.0\"},\"event\":{\"kind\":\"event\"}}\n",
            "{\"class_uid\":1007,\"category_uid\":1,\"time\":1,\"metadata\":{\"product\":{\"name\":\"tprobe\"}}}\n",
            "{\"ts\":\"2026-12-02T06:00:00Z\",\"kind\":\"file.open\",\"process\":{\"entity_id\":\"cut\n",
        ),
    )
    .unwrap();
    files.push(other);
    let (code, out, err) = investigate(&["--entity", &r.outer, "--color", "never"], &files);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Storyline of"), "{out}");
    let report: Vec<&str> = err.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(report.len(), 1, "one line:\n{err}");
    let l = report[0];
    assert!(
        l.contains("skipped 4 lines")
            && l.contains("2 not JSON")
            && l.contains("1 ECS")
            && l.contains("1 OCSF"),
        "{l}"
    );
    assert!(
        l.contains(&format!("{}: data ends early", gz.display())),
        "{l}"
    );
    let doc = json_of(&["--entity", &r.outer], &files);
    assert_eq!(doc["input"]["skipped"]["not_json"], 2);
    assert_eq!(
        doc["input"]["truncated"][0]["file"],
        gz.display().to_string()
    );
    // Unknown target: exit 1 with the sentence the issue asks for.
    let (code, _, err) = investigate(&["--entity", "0123456789abcdef"], &files);
    assert_eq!(code, 1);
    assert!(
        err.contains("no process with entity_id 0123456789abcdef in these files"),
        "{err}"
    );
    // A file that does not exist is reported; the others are read.
    let mut with_missing = files.clone();
    with_missing.push(bad.join("missing.json"));
    let (code, _, err) = investigate(&["--entity", &r.outer], &with_missing);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("cannot read") && err.contains("missing.json"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&bad);
}

/// Stdin (spooled), and the progress bar: on a terminal's stderr once the input takes over a
/// second, never on a pipe.
#[test]
fn stdin_and_the_progress_bar() {
    let r = record();
    let cat = r
        .files
        .iter()
        .map(|f| {
            if f.extension().is_some_and(|x| x == "gz") {
                format!("gzip -dc {}", f.display())
            } else {
                format!("cat {}", f.display())
            }
        })
        .collect::<Vec<_>>();
    // Oldest first: the highest rotation number first, the current file last.
    let mut ordered: Vec<(u64, String)> = r
        .files
        .iter()
        .zip(cat)
        .map(|(f, c)| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let n = name
                .trim_end_matches(".gz")
                .rsplit('.')
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0u64);
            (if n == 0 { 0 } else { u64::MAX - n }, c)
        })
        .collect();
    ordered.sort();
    let feed = ordered
        .into_iter()
        .map(|(_, c)| c)
        .collect::<Vec<_>>()
        .join("; ");
    let bin = tprobe_bin().display().to_string();
    let cmd = format!(
        "{{ {feed}; sleep 1.5; }} | {bin} investigate - --entity {} --format json > {}/stdin.json",
        r.outer,
        r.dir.display()
    );
    // `script` gives the command a terminal; what it showed is its stdout.
    let shown = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let term = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{term}");
    assert!(
        term.contains("reading stdin"),
        "no progress on a terminal: {term:?}"
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("stdin.json")).unwrap()).unwrap();
    assert_eq!(doc["storylines"][0]["target"], r.outer.as_str());
    assert_eq!(doc["input"]["lines"], r.lines.len() as u64);
    // A pipe: the same run prints no progress at all.
    let piped = Command::new("sh")
        .args(["-c", &cmd.replace("stdin.json", "stdin2.json")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
}

/// Runs `chromium` with `args` (headless, no network, a fresh profile) and returns stdout;
/// killed if it takes longer than a minute.
fn chromium(args: &[&str], profile: &Path) -> Vec<u8> {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium (installed by `cargo xtask setup`)");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

#[test]
fn html_storyline_in_a_real_browser() {
    let r = record();
    let (code, html, err) = investigate(&["--entity", &r.outer, "--format", "html"], &r.files);
    assert_eq!(code, 0, "{err}");
    // Self-contained: nothing to fetch.
    for needle in ["http://", "https://", "src=", "<link", "@import", "url("] {
        let hits: Vec<&str> = html
            .lines()
            .filter(|l| l.contains(needle) && !l.contains("<code>") && !l.contains("class=\"cmd\""))
            .collect();
        assert!(hits.is_empty(), "{needle}: {hits:?}");
    }
    let out_dir = root().join("target/investigate");
    std::fs::create_dir_all(&out_dir).unwrap();
    let page = out_dir.join("storyline.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let profile = r.dir.join("chromium-profile");
    let dom = String::from_utf8(chromium(&["--dump-dom", &url], &profile)).unwrap();
    let node = |e: &str| format!("data-entity=\"{e}\"");
    assert!(
        dom.contains(&format!("class=\"proc target\" {}", node(&r.outer))),
        "target node missing from the DOM:\n{dom:.3000}"
    );
    assert!(dom.contains(&format!("class=\"proc ancestor\" {}", node(&r.parent))));
    // Children nest inside the target's element: they come after it in the DOM.
    let at = |e: &str| {
        dom.find(&node(e))
            .unwrap_or_else(|| panic!("{e} not in the DOM"))
    };
    assert!(at(&r.parent) < at(&r.outer));
    assert!(
        at(&r.outer) < at(&r.inner) && at(&r.inner) < at(&r.touch) && at(&r.inner) < at(&r.curl)
    );
    assert!(dom.contains("File times set by hand with touch"));
    assert!(dom.contains("<table class=\"timeline\">"));
    // A picture for a person to look at.
    let shot = out_dir.join("storyline.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1500",
            "--hide-scrollbars",
            &url,
        ],
        &profile,
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let _ = std::fs::remove_dir_all(&profile);
}

/// `--pretty` of a real run: a short probe.start line naming the hooks this kernel skipped,
/// exits without the default fields, an alert with its rule title.
#[test]
fn pretty_lines_for_people() {
    let rule = root().join("rules/process/touch_timestomp.yml");
    let dir = std::env::temp_dir().join(format!("tprobe-pretty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(tprobe_bin())
        .args([
            "run",
            "--pretty",
            "--events",
            "process,alert",
            "--duration",
            "5s",
            "--rules",
        ])
        .arg(&rule)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Cause the alert once the probe is up (its first line is probe.start).
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let f = dir.join("f");
    std::fs::write(&f, "").unwrap();
    assert!(Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(&f)
        .status()
        .unwrap()
        .success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = first + &rest;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = text.lines().next().unwrap();
    assert!(
        start.contains("probe.start") && start.len() < 400,
        "{start}"
    );
    assert!(
        start.contains(" attached") && start.contains("kernel "),
        "{start}"
    );
    // Hooks --events leaves out are only counted; this kernel has no module support: those
    // hooks are skipped, by name.
    assert!(start.contains(" not needed"), "{start}");
    if start.contains("skipped") {
        assert!(start.contains("init_module"), "{start}");
    }
    assert!(!text.contains("core_dumped=false"), "{text:.3000}");
    // A null signal is left out: a normal exit shows its code only.
    assert!(
        !text
            .lines()
            .any(|l| l.contains("exit.code=") && l.contains("exit.signal")),
        "{text:.3000}"
    );
    let alert = text
        .lines()
        .find(|l| l.contains("ALERT low"))
        .unwrap_or_else(|| panic!("no alert line:\n{text:.4000}"));
    assert!(
        alert.contains("File times set by hand with touch"),
        "{alert}"
    );
    let stop = text.lines().last().unwrap();
    assert!(
        stop.contains("probe.stop") && stop.contains("events: ") && stop.contains("lost 0"),
        "{stop}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A process that lives across a probe restart: two runs append to one file, and the
/// storyline says when the probe was not running.
#[test]
fn a_probe_restart_inside_a_storyline_shows_as_a_gap() {
    let dir = std::env::temp_dir().join(format!("tprobe-investigate-gap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("gap.json");
    let sink = format!("file:{}", rec.display());
    let args = ["--events", "process", "--sink", "stdout", "--sink", &sink];
    let first = Probe::start(&args);
    let go = dir.join("go");
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.1; done; touch {}/after",
        go.display(),
        dir.display()
    );
    let mut child = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(first
        .wait_for(WAIT, |v| v["kind"] == "process.exec"
            && v["process"]["pid"] == pid)
        .is_some());
    assert!(first.stop().status.success());
    let second = Probe::start(&args);
    std::fs::write(&go, "").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(second
        .wait_for(WAIT, |v| v["kind"] == "process.exit"
            && v["process"]["pid"] == pid)
        .is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert!(second.stop().status.success());
    let doc = json_of(&["--pid", &pid.to_string()], std::slice::from_ref(&rec));
    let s = &doc["storylines"][0];
    assert_eq!(s["tree"]["exit"]["code"], 0, "{}", s["tree"]);
    let gaps = s["gaps"]
        .as_array()
        .unwrap_or_else(|| panic!("no gaps: {s}"));
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0]["from"].is_string() && gaps[0]["to"].is_string());
    let (code, out, err) = investigate(&["--pid", &pid.to_string(), "--color", "never"], &[rec]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("probe not running"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
