//! What every bench section shares: the options, result rows and the median and /proc
//! readings they are measured with. A leaf, so the sections can use it and `mod.rs` them.
pub struct Opts {
    pub rounds: usize,
    pub idle_secs: u64,
    /// Scale workload sizes down (for a smoke run).
    pub quick: bool,
    /// Sections to run; empty: all of them, and BENCHMARKS.md is written.
    pub only: Vec<String>,
}

impl Opts {
    pub(super) fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s.eq_ignore_ascii_case(section))
    }
}

pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// One section of the results: a heading and its measure/value lines.
pub(super) struct Row {
    pub(super) name: String,
    pub(super) values: Vec<(String, String)>,
}

/// What a stopped tracer reports.
#[derive(Default, Debug, Clone)]
pub(super) struct Report {
    /// Events delivered (lines of the traced kinds).
    pub(super) events: u64,
    pub(super) lost: u64,
    /// utime + stime of the tracer, seconds.
    pub(super) cpu_s: f64,
    /// Peak RSS in MiB.
    pub(super) rss_mib: f64,
    /// Bytes of the output lines of the traced kinds (newline included), for the size per event.
    pub(super) event_bytes: u64,
    /// Those lines.
    pub(super) event_lines: u64,
    /// CPU time of the tracer's threads alive at its stop, from their scheduler statistics
    /// (nanosecond resolution, where `cpu_s` counts 10 ms ticks).
    pub(super) threads_cpu_s: f64,
}

/// CPU time of `pid`'s live threads in seconds (`/proc/<pid>/task/*/schedstat`, whose first
/// field is nanoseconds on the CPU). Threads that have exited are not in it: tprobe's stage
/// threads live as long as the run.
pub(super) fn threads_cpu_s(pid: u32) -> f64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = dir
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// Runs probe-user's ignored measurement `test` (release build) once per round and reads the
/// JSON of its `MARKER {json}` line from each run; `env` is set for it.
pub(super) fn in_process(
    what: &str,
    test: &str,
    marker: &str,
    env: &[(&str, String)],
    rounds: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    use anyhow::Context as _;
    let mut runs = Vec::new();
    for round in 0..rounds.max(1) {
        eprintln!("bench: {what} round {}/{}", round + 1, rounds);
        let mut cmd = crate::util::cargo(&[
            "test",
            "--release",
            "-q",
            "-p",
            "probe-user",
            "--lib",
            test,
            "--",
            "--ignored",
            "--nocapture",
            "--exact",
        ]);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let out = cmd
            .output()
            .with_context(|| format!("running the {test} measurement"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("{marker} ");
        let Some(line) = text.lines().find_map(|l| l.strip_prefix(prefix.as_str())) else {
            anyhow::bail!("no {marker} line: {}", String::from_utf8_lossy(&out.stderr));
        };
        runs.push(serde_json::from_str(line)?);
    }
    Ok(runs)
}

pub(super) fn proc_cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

pub(super) fn proc_hwm_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Pins the calling thread to `cpu`; `false` when the kernel refuses (no such CPU).
pub(super) fn pin_to(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it for cpu < 1024.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Makes `cmd`'s process start on `cpu`, when given.
pub(super) fn pin_command(cmd: &mut std::process::Command, cpu: Option<usize>) {
    use std::os::unix::process::CommandExt as _;
    if let Some(cpu) = cpu {
        // SAFETY: only sched_setaffinity between fork and exec, async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                pin_to(cpu);
                Ok(())
            });
        }
    }
}

/// Sends `sig` to `child` and waits at most 30 s for it to exit (killed past that): a tracer
/// stuck in the kernel must not hang the whole benchmark. `what` names it in the error.
pub(super) fn stop_child(
    child: &mut std::process::Child,
    sig: libc::c_int,
    what: &str,
) -> anyhow::Result<()> {
    use std::time::{Duration, Instant};
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("{what} did not exit within 30 s of its stop signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
