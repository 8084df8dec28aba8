//! Harness for the integration tests: start the real `tprobe` binary (which loads the real eBPF
//! programs), let the test cause activity, and collect the JSON lines it prints.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod containerd;
pub mod dns;
pub mod kernel;
pub mod podman;

/// Makes `cmd`'s process get SIGTERM when the test process dies, so nothing it started
/// outlives a crashed test.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// Stops a helper daemon: SIGTERM, up to `grace` to exit, then SIGKILL; always reaped.
pub fn terminate(child: &mut Child, grace: Duration) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Default wait for an expected event.
pub const WAIT: Duration = Duration::from_secs(15);

/// Path of the tprobe binary under test (`TPROBE_BIN`, set by `cargo xtask test`).
pub fn tprobe_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TPROBE_BIN") {
        return p.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.join("target/debug/tprobe")
}

/// The validator for `tprobe schema`, compiled once per test binary.
pub fn schema_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let out = Command::new(tprobe_bin())
            .arg("schema")
            .output()
            .expect("run `tprobe schema`");
        assert!(out.status.success(), "tprobe schema failed");
        let schema: Value = serde_json::from_slice(&out.stdout).expect("tprobe schema is JSON");
        jsonschema::validator_for(&schema).expect("tprobe schema is a valid JSON Schema")
    })
}

/// Why `line` does not validate against `tprobe schema`, if it does not.
pub fn schema_violations(line: &Value) -> Option<String> {
    let errs: Vec<String> = schema_validator()
        .iter_errors(line)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    (!errs.is_empty()).then(|| format!("{}: {line}", errs.join("; ")))
}

#[derive(Default)]
struct Shared {
    lines: Vec<Value>,
    /// Lines that were not valid JSON (a test failure in itself).
    garbage: Vec<String>,
    /// Lines that do not validate against `tprobe schema` (a test failure in itself).
    invalid: Vec<String>,
    eof: bool,
}

/// A running `tprobe run`.
pub struct Probe {
    child: Child,
    shared: Arc<(Mutex<Shared>, Condvar)>,
    stderr: Arc<Mutex<String>>,
}

/// What a stopped probe left behind.
pub struct Stopped {
    pub status: ExitStatus,
    pub lines: Vec<Value>,
    pub stderr: String,
}

impl Probe {
    /// Starts `tprobe run ARGS` and waits for its `probe.start` line (hooks attached).
    pub fn start(args: &[&str]) -> Probe {
        let mut cmd = Command::new(tprobe_bin());
        cmd.arg("run").args(args);
        Probe::spawn(cmd, |v| v["kind"] == "probe.start", true)
    }

    /// Like [`Probe::start`], for another output format (ECS, OCSF): the first line is
    /// recognised by `ready`, and lines are not checked against the native schema (the sinks
    /// tests check them against the vendored ECS/OCSF definitions).
    pub fn start_ready(args: &[&str], ready: fn(&Value) -> bool) -> Probe {
        let mut cmd = Command::new(tprobe_bin());
        cmd.arg("run").args(args);
        Probe::spawn(cmd, ready, false)
    }

    /// Like [`Probe::start`] for any command that runs tprobe (e.g. `podman run IMAGE ...`).
    pub fn start_command(cmd: Command) -> Probe {
        Probe::spawn(cmd, |v| v["kind"] == "probe.start", true)
    }

    fn spawn(mut cmd: Command, ready: fn(&Value) -> bool, validate: bool) -> Probe {
        if validate {
            // Compiled before the probe runs, so the reader thread never waits on it.
            schema_validator();
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // If the test process dies, the probe goes with it.
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .expect("spawn tprobe (build it with `cargo xtask test`)");
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let s2 = shared.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let (lock, cv) = &*s2;
                let mut g = lock.lock().unwrap();
                match serde_json::from_slice::<Value>(&buf) {
                    Ok(v) => {
                        // Every native line any test sees is checked against the published schema.
                        if let Some(why) = validate.then(|| schema_violations(&v)).flatten() {
                            g.invalid.push(why);
                        }
                        g.lines.push(v)
                    }
                    Err(_) => g.garbage.push(String::from_utf8_lossy(&buf).into_owned()),
                }
                cv.notify_all();
            }
            let (lock, cv) = &*s2;
            lock.lock().unwrap().eof = true;
            cv.notify_all();
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let e2 = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            e2.lock().unwrap().push_str(&s);
        });
        let probe = Probe {
            child,
            shared,
            stderr,
        };
        if probe.wait_for(Duration::from_secs(60), ready).is_none() {
            let mut p = probe;
            let _ = p.child.kill();
            let _ = p.child.wait();
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "tprobe did not start; stderr:\n{}",
                p.stderr.lock().unwrap()
            );
        }
        probe
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// First line matching `pred`, waiting up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.wait_n(timeout, 1, pred).into_iter().next()
    }

    /// Waits until `n` lines match `pred` (or the timeout); returns those seen.
    pub fn wait_n(&self, timeout: Duration, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.shared;
        let mut g = lock.lock().unwrap();
        loop {
            let found: Vec<Value> = g.lines.iter().filter(|v| pred(v)).cloned().collect();
            let now = Instant::now();
            if found.len() >= n || g.eof || now >= deadline {
                return found;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.shared.0.lock().unwrap().lines.clone()
    }

    /// Sends SIGTERM and waits for the exit; panics if it takes longer than 20 s.
    pub fn stop(self) -> Stopped {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.finish(Duration::from_secs(20))
    }

    /// Waits for the probe to exit by itself (e.g. `--count`, `--duration`).
    pub fn finish(mut self, timeout: Duration) -> Stopped {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tprobe did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the reader threads reach EOF.
        let (lock, cv) = &*self.shared;
        let mut g = lock.lock().unwrap();
        while !g.eof {
            g = cv.wait_timeout(g, Duration::from_secs(5)).unwrap().0;
        }
        assert!(
            g.garbage.is_empty(),
            "non-JSON output lines: {:?}",
            g.garbage
        );
        assert!(
            g.invalid.is_empty(),
            "lines that do not validate against `tprobe schema`: {:#?}",
            g.invalid
        );
        let lines = g.lines.clone();
        drop(g);
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr.lock().unwrap().clone();
        Stopped {
            status,
            lines,
            stderr,
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Tests that never call stop()/finish() still get their lines checked.
        if !std::thread::panicking() {
            let g = self.shared.0.lock().unwrap();
            assert!(
                g.invalid.is_empty(),
                "lines that do not validate against `tprobe schema`: {:#?}",
                g.invalid
            );
        }
    }
}

/// Events of `kind` for process `pid`.
pub fn is(v: &Value, kind: &str, pid: u32) -> bool {
    v["kind"] == kind && v["process"]["pid"] == pid
}

/// Decodes a `*_b64` value.
pub fn b64(s: &Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().expect("b64 string"))
        .expect("valid base64")
}

/// Seq numbers of `lines` are strictly increasing from 1 with no gap.
pub fn assert_seq_contiguous(lines: &[Value]) {
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["seq"], (i + 1) as u64, "seq gap at line {i}: {v}");
    }
}
