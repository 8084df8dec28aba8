//! `cargo xtask bench`: workloads run side by side (alternating A/B, median of N rounds) with
//! no probe, with tprobe and with bpftrace; results printed and written to BENCHMARKS.md.
use std::{
    ffi::CString,
    fmt::Write as _,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::util;

pub struct Opts {
    pub rounds: usize,
    pub idle_secs: u64,
    /// Scale workload sizes down (for a smoke run).
    pub quick: bool,
    /// Sections to run; empty: all of them, and BENCHMARKS.md is written.
    pub only: Vec<String>,
}

impl Opts {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s.eq_ignore_ascii_case(section))
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// A workload: runs `n` operations and returns how long they took.
#[derive(Clone, Copy)]
enum Work {
    Getppid,
    OpenClose,
    Exec,
    Connect,
    UdpSend,
}

impl Work {
    fn run(self, n: u64, dir: &Path) -> Duration {
        match self {
            Work::Getppid => {
                let t = Instant::now();
                for _ in 0..n {
                    // SAFETY: getppid has no preconditions.
                    unsafe { libc::getppid() };
                }
                t.elapsed()
            }
            Work::OpenClose => {
                let path = CString::new(dir.join("bench-file").to_string_lossy().as_bytes())
                    .expect("no NUL in path");
                std::fs::write(dir.join("bench-file"), b"x").expect("create bench file");
                let t = Instant::now();
                for _ in 0..n {
                    // SAFETY: valid C string; the fd is closed right away.
                    unsafe {
                        let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    }
                }
                t.elapsed()
            }
            Work::Exec => {
                let t = Instant::now();
                for _ in 0..n {
                    let _ = Command::new("/bin/true").status();
                }
                t.elapsed()
            }
            Work::UdpSend => {
                // A connected UDP client sending small datagrams to a loopback sink.
                let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
                sock.connect(sink.local_addr().unwrap()).expect("connect");
                let _ = sink.set_nonblocking(true);
                let t = Instant::now();
                let mut drain = [0u8; 64];
                for i in 0..n {
                    let _ = sock.send(b"x");
                    if i % 64 == 0 {
                        while sink.recv(&mut drain).is_ok() {}
                    }
                }
                t.elapsed()
            }
            Work::Connect => {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
                let addr = l.local_addr().unwrap();
                // One request and reply per connection: the client waits for the server, so
                // the accept queue never overflows into one-second SYN retransmits (which
                // made the run's time depend on who was slower, not on the probe). Accepts
                // until a connection says `q`.
                let acceptor = std::thread::spawn(move || {
                    while let Ok((mut s, _)) = l.accept() {
                        let mut b = [0u8; 1];
                        if s.read(&mut b).is_ok_and(|n| n == 1) {
                            let _ = s.write_all(&b);
                            if b[0] == b'q' {
                                break;
                            }
                        }
                    }
                });
                let t = Instant::now();
                for _ in 0..n {
                    if let Ok(mut s) = TcpStream::connect(addr) {
                        let mut b = [0u8; 1];
                        if s.write_all(b"x").is_ok() {
                            let _ = s.read(&mut b);
                        }
                        abort_on_close(&s);
                    }
                }
                let el = t.elapsed();
                if let Ok(mut s) = TcpStream::connect(addr) {
                    let _ = s.write_all(b"q");
                    let _ = s.read(&mut [0u8; 1]);
                }
                let _ = acceptor.join();
                el
            }
        }
    }
}

/// Makes closing `s` send a reset instead of a FIN: no TIME_WAIT socket is left behind, so a
/// run of thousands of connects does not fill the port range and time the kernel's cleanup
/// rather than the probe.
fn abort_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// W5 load: `threads` threads together attempt `rate` opens per second of paths that do not
/// exist (cheap for the workload, one `file.open` event each) for `secs`. Returns the opens
/// actually made and the time taken.
fn paced_opens(dir: &Path, rate: u64, threads: u64, secs: f64) -> (u64, f64) {
    let start = Instant::now();
    let per_thread = rate / threads;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let path = CString::new(
                dir.join(format!("missing-{t}"))
                    .to_string_lossy()
                    .as_bytes(),
            )
            .expect("no NUL in path");
            std::thread::spawn(move || {
                let mut done: u64 = 0;
                loop {
                    let el = start.elapsed().as_secs_f64();
                    if el >= secs {
                        break;
                    }
                    // Catch up to the schedule in small batches.
                    let due = (el * per_thread as f64) as u64;
                    if done >= due {
                        std::hint::spin_loop();
                        continue;
                    }
                    for _ in 0..(due - done).min(256) {
                        // SAFETY: a valid C string; the open fails (no such file).
                        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
                        if fd >= 0 {
                            // SAFETY: our own fd.
                            unsafe { libc::close(fd) };
                        }
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let ops = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (ops, start.elapsed().as_secs_f64())
}

/// W5: offered rates stepped up until tprobe loses an event or the machine cannot offer more.
fn max_rate(tprobe: &Path, dir: &Path, opts: &Opts) -> Result<Row> {
    let args: Vec<String> = [
        "--events",
        "file.open",
        "--file-reads",
        "--file-include",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let secs = if opts.quick { 1.0 } else { 3.0 };
    let mut values = Vec::new();
    let mut best: Option<f64> = None;
    for rate in [
        100_000u64, 200_000, 300_000, 400_000, 500_000, 600_000, 800_000, 1_000_000,
    ] {
        eprintln!("bench: W5 offered {rate} events/s");
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &args, "")?;
        let c0 = proc_cpu_s(t.child.id());
        let (ops, took) = paced_opens(dir, rate, 2, secs);
        std::thread::sleep(Duration::from_millis(500));
        let cpu = proc_cpu_s(t.child.id()) - c0;
        let r = t.stop("file.open")?;
        let achieved = ops as f64 / took;
        let delivered = r.events as f64 / took;
        // The probe's own CPU (userspace: drain, enrich, encode, write) per event delivered.
        let per_event_us = cpu * 1e6 / r.events.max(1) as f64;
        values.push((
            format!("offered {rate}/s"),
            format!(
                "made {achieved:.0}/s, delivered {delivered:.0}/s, lost {}, probe CPU {per_event_us:.2} µs/event (one core: {:.0} events/s)",
                r.lost,
                1e6 / per_event_us
            ),
        ));
        if r.lost > 0 || r.events < ops {
            break;
        }
        best = Some(best.map_or(delivered, |b: f64| b.max(delivered)));
        if achieved < 0.9 * rate as f64 {
            // The workload itself cannot go faster here (two CPUs shared with the probe).
            values.push((
                "note".into(),
                "the load generator saturated the machine before tprobe lost anything".into(),
            ));
            break;
        }
    }
    values.insert(
        0,
        (
            "max zero-loss rate".into(),
            best.map_or("none".into(), |b| {
                format!("{b:.0} events/s (target >= 500000)")
            }),
        ),
    );
    Ok(Row {
        name: "W5 highest zero-loss rate (two threads of failing opens, paced)".into(),
        values,
    })
}

/// A tracer running beside the workload.
struct Tracer {
    child: Child,
    out: PathBuf,
    kind: TracerKind,
}

#[derive(Clone, Copy, PartialEq)]
enum TracerKind {
    Tprobe,
    Bpftrace,
}

impl Drop for Tracer {
    /// A tracer that could not be stopped cleanly leaves neither its output nor a running
    /// process. Not waited for: a bpftrace stuck in the kernel would hold the whole run.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = std::fs::remove_file(&self.out);
    }
}

/// What a stopped tracer reports.
#[derive(Default, Debug, Clone)]
struct Report {
    /// Events delivered (lines of the traced kinds).
    events: u64,
    lost: u64,
    /// utime + stime of the tracer, seconds.
    cpu_s: f64,
    /// Peak RSS in MiB.
    rss_mib: f64,
}

fn proc_cpu_s(pid: u32) -> f64 {
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

fn proc_hwm_mib(pid: u32) -> f64 {
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

impl Tracer {
    /// `args` follow `tprobe run` (e.g. `--events file.open`).
    fn start(kind: TracerKind, tprobe: &Path, args: &[String], bt_script: &str) -> Result<Tracer> {
        let out = PathBuf::from(format!("/dev/shm/tprobe-bench-{}.out", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let child = match kind {
            TracerKind::Tprobe => Command::new(tprobe)
                .arg("run")
                .args(args)
                .args(["--no-metrics", "-o"])
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
            TracerKind::Bpftrace => Command::new("bpftrace")
                .args(["-B", "full", "-o"])
                .arg(&out)
                .args(["-e", bt_script])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        };
        let t = Tracer { child, out, kind };
        let ready = match kind {
            TracerKind::Tprobe => "probe.start",
            TracerKind::Bpftrace => "Attaching",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::fs::read_to_string(&t.out).is_ok_and(|s| s.contains(ready)) {
                // Let the first wakeup/drain settle.
                std::thread::sleep(Duration::from_millis(300));
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start",
                    if kind == TracerKind::Tprobe {
                        "tprobe"
                    } else {
                        "bpftrace"
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self, prefix: &str) -> Result<Report> {
        let pid = self.child.id();
        let cpu_s = proc_cpu_s(pid);
        let rss_mib = proc_hwm_mib(pid);
        let sig = if self.kind == TracerKind::Tprobe {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, sig) };
        // Bounded: a tracer stuck in the kernel must not hang the whole benchmark.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!(
                    "{} did not exit within 30 s of its stop signal",
                    if self.kind == TracerKind::Tprobe {
                        "tprobe"
                    } else {
                        "bpftrace"
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read(&self.out).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        let text = String::from_utf8_lossy(&text);
        let mut r = Report {
            cpu_s,
            rss_mib,
            ..Default::default()
        };
        match self.kind {
            TracerKind::Tprobe => {
                let stop: Value = text
                    .lines()
                    .rev()
                    .find_map(|l| {
                        serde_json::from_str::<Value>(l)
                            .ok()
                            .filter(|v| v["kind"] == "probe.stop")
                    })
                    .context("no probe.stop line")?;
                if let Some(ev) = stop["probe"]["events"].as_object() {
                    r.events = ev
                        .iter()
                        .filter(|(k, _)| k.starts_with(prefix))
                        .map(|(_, v)| v.as_u64().unwrap_or(0))
                        .sum();
                }
                r.lost = stop["probe"]["losses"]
                    .as_object()
                    .map(|o| o.values().filter_map(Value::as_u64).sum())
                    .unwrap_or(0);
            }
            TracerKind::Bpftrace => {
                for l in text.lines() {
                    if let Some(n) = l
                        .strip_prefix("Lost ")
                        .and_then(|s| s.split_whitespace().next())
                    {
                        r.lost += n.parse::<u64>().unwrap_or(0);
                    } else if l.starts_with("EV ") {
                        r.events += 1;
                    }
                }
            }
        }
        Ok(r)
    }
}

/// `--events all`: process, file and network hooks attached (no XDP interface).
fn all_events() -> Vec<String> {
    vec!["--events".to_owned(), "all".to_owned()]
}

struct Row {
    name: String,
    values: Vec<(String, String)>,
}

fn machine_info() -> String {
    let uname = util::output(Command::new("uname").arg("-r")).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0);
    let date =
        util::output(Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC")).unwrap_or_default();
    format!(
        "- date: {}\n- kernel: {}\n- cpu: {} x {}\n- memory: {} GiB\n",
        date.trim(),
        uname.trim(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu,
        mem / 1024 / 1024
    )
}

/// A storm workload and how each tracer observes it.
struct Storm {
    title: &'static str,
    work: Work,
    n: u64,
    /// tprobe `--events`.
    events: &'static str,
    /// Kind prefix counted as delivered events.
    prefix: &'static str,
    /// The equivalent bpftrace program (one `EV` line per event).
    bt: &'static str,
    /// File events: read-only opens included, only under the workload's directory.
    file_dir: bool,
    /// Tracepoints tprobe uses for this workload: run once more with empty programs there, the
    /// floor any probe on those hooks starts from.
    hooks: &'static [&'static str],
}

/// One storm workload compared across no tracer, tprobe and bpftrace.
fn storm(tprobe: &Path, dir: &Path, opts: &Opts, s: &Storm, rows: &mut Vec<Row>) -> Result<Report> {
    let Storm {
        title,
        work,
        n,
        events,
        prefix,
        bt,
        file_dir,
        hooks,
    } = *s;
    let mut args = vec!["--events".to_owned(), events.to_owned()];
    if file_dir {
        args.extend([
            "--file-reads".to_owned(),
            "--file-include".to_owned(),
            dir.display().to_string(),
        ]);
    }
    let mut base = Vec::new();
    let mut floor = Vec::new();
    let mut tp = Vec::new();
    let mut bt_t = Vec::new();
    let mut tp_rep: Vec<Report> = Vec::new();
    let mut bt_hung = 0;
    let mut bt_rep: Vec<Report> = Vec::new();
    let have_bt = util::ok(Command::new("bpftrace").arg("--version"));
    for round in 0..opts.rounds {
        eprintln!("bench: {title} round {}/{}", round + 1, opts.rounds);
        base.push(work.run(n, dir).as_secs_f64());
        if !hooks.is_empty() {
            let _e = EmptyTracepoints::attach(hooks)?;
            floor.push(work.run(n, dir).as_secs_f64());
        }
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &args, bt)?;
        tp.push(work.run(n, dir).as_secs_f64());
        std::thread::sleep(Duration::from_millis(300));
        tp_rep.push(t.stop(prefix)?);
        if have_bt {
            match Tracer::start(TracerKind::Bpftrace, tprobe, &args, bt) {
                Ok(t) => {
                    let took = work.run(n, dir).as_secs_f64();
                    std::thread::sleep(Duration::from_millis(300));
                    match t.stop(prefix) {
                        Ok(r) => {
                            bt_t.push(took);
                            bt_rep.push(r);
                        }
                        // Seen here: bpftrace 0.17 stuck in the kernel (D state) for minutes
                        // at exit. Its round is dropped and said so, not waited for.
                        Err(e) => {
                            eprintln!("bench: bpftrace round dropped: {e}");
                            bt_hung += 1;
                        }
                    }
                }
                Err(e) => eprintln!("bench: bpftrace unavailable: {e}"),
            }
        }
    }
    let b = median(&mut base);
    let t = median(&mut tp);
    let mut tp_ev: Vec<f64> = tp_rep
        .iter()
        .zip(&tp)
        .map(|(r, s)| r.events as f64 / s)
        .collect();
    let tp_lost: u64 = tp_rep.iter().map(|r| r.lost).max().unwrap_or(0);
    let mut vals = vec![
        ("ops".to_owned(), n.to_string()),
        ("no probe".to_owned(), format!("{:.3} s", b)),
    ];
    if !floor.is_empty() {
        let f = median(&mut floor);
        vals.push((
            format!("empty programs on {}", hooks.join(", ")),
            format!("{f:.3} s ({:.2}x: the hooks' own cost)", f / b),
        ));
    }
    vals.extend([
        ("tprobe".to_owned(), format!("{:.3} s ({:.2}x)", t, t / b)),
        (
            "tprobe events/s".to_owned(),
            format!("{:.0}", median(&mut tp_ev)),
        ),
        ("tprobe lost".to_owned(), tp_lost.to_string()),
    ]);
    if !bt_t.is_empty() {
        let bt_med = median(&mut bt_t.clone());
        let mut bt_ev: Vec<f64> = bt_rep
            .iter()
            .zip(&bt_t)
            .map(|(r, s)| r.events as f64 / s)
            .collect();
        vals.push((
            "bpftrace".to_owned(),
            format!("{:.3} s ({:.2}x)", bt_med, bt_med / b),
        ));
        vals.push((
            "bpftrace events/s".to_owned(),
            format!("{:.0}", median(&mut bt_ev)),
        ));
        vals.push((
            "bpftrace lost".to_owned(),
            bt_rep.iter().map(|r| r.lost).max().unwrap_or(0).to_string(),
        ));
    } else {
        vals.push(("bpftrace".to_owned(), "not run".to_owned()));
    }
    if bt_hung > 0 {
        vals.push((
            "bpftrace rounds dropped".to_owned(),
            format!("{bt_hung} (bpftrace did not exit within 30 s of SIGINT)"),
        ));
    }
    rows.push(Row {
        name: title.to_owned(),
        values: vals,
    });
    let mut best = tp_rep
        .into_iter()
        .max_by_key(|r| r.events)
        .unwrap_or_default();
    best.lost = tp_lost;
    Ok(best)
}

pub fn bench(tprobe: &Path, opts: &Opts) -> Result<()> {
    let dir = PathBuf::from(format!("/dev/shm/tprobe-bench-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let scale = if opts.quick { 10 } else { 1 };
    let mut rows = Vec::new();

    if opts.wants("w1") {
        // W1: tax on a syscall no hook traces.
        let n1 = 2_000_000 / scale;
        let mut base = Vec::new();
        let mut with = Vec::new();
        for round in 0..opts.rounds {
            eprintln!("bench: W1 round {}/{}", round + 1, opts.rounds);
            base.push(Work::Getppid.run(n1, &dir).as_secs_f64() * 1e9 / n1 as f64);
            let t = Tracer::start(TracerKind::Tprobe, tprobe, &all_events(), "")?;
            with.push(Work::Getppid.run(n1, &dir).as_secs_f64() * 1e9 / n1 as f64);
            t.stop("")?;
        }
        let (b, w) = (median(&mut base), median(&mut with));
        rows.push(Row {
            name: "W1 untraced-syscall tax (getppid, all events on)".into(),
            values: vec![
                ("no probe".into(), format!("{b:.0} ns/op")),
                ("tprobe".into(), format!("{w:.0} ns/op")),
                ("tax".into(), format!("{:.0} ns (target <= 130)", w - b)),
            ],
        });
    }

    let scaled = |n: u64| n / scale;
    let w2 = opts.wants("w2").then(|| storm(
        tprobe,
        &dir,
        opts,
        &Storm {
            title: "W2 file storm (open+close)",
            work: Work::OpenClose,
            n: scaled(200_000),
            events: "file.open",
            prefix: "file.open",
            file_dir: true,
            hooks: &["syscalls/sys_enter_openat", "syscalls/sys_exit_openat"],
            bt: r#"tracepoint:syscalls:sys_exit_openat { printf("EV %d %s %d\n", pid, comm, args->ret); }"#,
        },
        &mut rows,
    ));
    if opts.wants("w3") {
        storm(
            tprobe,
            &dir,
            opts,
            &Storm {
                title: "W3 exec storm (fork+exec /bin/true)",
                work: Work::Exec,
                n: scaled(2_000),
                events: "process.exec",
                prefix: "process.exec",
                file_dir: false,
                hooks: &[],
                bt: r#"tracepoint:sched:sched_process_exec { printf("EV %d %s\n", pid, str(args->filename)); }"#,
            },
            &mut rows,
        )?;
    }
    let w4 = opts.wants("w4").then(|| storm(
        tprobe,
        &dir,
        opts,
        &Storm {
            title: "W4 connect storm (loopback)",
            work: Work::Connect,
            n: scaled(20_000),
            events: "net.connect",
            prefix: "net.connect",
            file_dir: false,
            hooks: &["syscalls/sys_enter_connect", "syscalls/sys_exit_connect"],
            bt: r#"tracepoint:syscalls:sys_exit_connect { printf("EV %d %s %d\n", pid, comm, args->ret); }"#,
        },
        &mut rows,
    ));

    match &w2 {
        None => {}
        Some(Ok(r)) => rows.push(Row {
            name: "Footprint during W2".into(),
            values: vec![
                ("probe CPU".into(), format!("{:.2} s", r.cpu_s)),
                (
                    "peak RSS".into(),
                    format!("{:.1} MiB (target < 50)", r.rss_mib),
                ),
                ("events lost during W2".into(), r.lost.to_string()),
            ],
        }),
        Some(Err(e)) => rows.push(Row {
            name: "W2 file storm".into(),
            values: vec![("error".into(), e.to_string())],
        }),
    }
    if let Some(Err(e)) = &w4 {
        rows.push(Row {
            name: "W4 connect storm".into(),
            values: vec![("error".into(), e.to_string())],
        });
    }

    if opts.wants("w6") {
        if let Err(e) = storm(
            tprobe,
            &dir,
            opts,
            &Storm {
                title: "W6 UDP send storm (connected socket, one peer)",
                work: Work::UdpSend,
                n: scaled(200_000),
                events: "net.send",
                prefix: "net.send",
                file_dir: false,
                hooks: &["syscalls/sys_enter_sendto"],
                bt: r#"tracepoint:syscalls:sys_enter_sendto { printf("EV %d %s\n", pid, comm); }"#,
            },
            &mut rows,
        ) {
            rows.push(Row {
                name: "W6 UDP send storm".into(),
                values: vec![("error".into(), e.to_string())],
            });
        }
    }

    if opts.wants("w5") {
        match max_rate(tprobe, &dir, opts) {
            Ok(row) => rows.push(row),
            Err(e) => rows.push(Row {
                name: "W5 highest zero-loss rate".into(),
                values: vec![("error".into(), format!("{e:#}"))],
            }),
        }
    }

    if opts.wants("xdp") {
        match xdp_flood(tprobe, opts) {
            Ok(row) => rows.push(row),
            Err(e) => rows.push(Row {
                name: "XDP UDP flood".into(),
                values: vec![("error".into(), format!("{e:#}"))],
            }),
        }
    }

    if opts.wants("idle") {
        // Idle CPU with every hook attached and no workload.
        eprintln!("bench: idle CPU over {} s", opts.idle_secs);
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &all_events(), "")?;
        let c0 = proc_cpu_s(t.child.id());
        std::thread::sleep(Duration::from_secs(opts.idle_secs));
        let c1 = proc_cpu_s(t.child.id());
        let idle = t.stop("")?;
        rows.push(Row {
            name: "Idle".into(),
            values: vec![
                (
                    "CPU".into(),
                    format!(
                        "{:.2} % over {} s (target < 1 %)",
                        (c1 - c0) * 100.0 / opts.idle_secs as f64,
                        opts.idle_secs
                    ),
                ),
                ("RSS".into(), format!("{:.1} MiB", idle.rss_mib)),
            ],
        });
    }

    let mut md = String::from("# tprobe benchmarks\n\nProduced by `cargo xtask bench` (release build). Each comparison alternates no probe / tprobe / bpftrace within one run; values are medians of ");
    let _ = writeln!(
        md,
        "{} rounds.\n\n## Machine\n{}",
        opts.rounds,
        machine_info()
    );
    for r in &rows {
        let _ = writeln!(md, "## {}\n\n| measure | value |\n|---|---|", r.name);
        for (k, v) in &r.values {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        md.push('\n');
    }
    print!("{md}");
    if opts.only.is_empty() {
        std::fs::write(util::root().join("BENCHMARKS.md"), &md)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A veth pair into a network namespace of the bench's own; removed on drop.
struct Veth {
    ns: String,
    host_if: String,
}

impl Veth {
    fn create() -> Result<Veth> {
        let id = std::process::id() % 10_000;
        let v = Veth {
            ns: format!("tpb{id}"),
            host_if: format!("tpb{id}h"),
        };
        let peer = format!("tpb{id}p");
        let ip = |args: &[&str]| util::status(Command::new("ip").args(args));
        ip(&["netns", "add", &v.ns])?;
        ip(&[
            "link", "add", &v.host_if, "type", "veth", "peer", "name", &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &v.ns])?;
        ip(&["addr", "add", "10.213.0.1/30", "dev", &v.host_if])?;
        ip(&["link", "set", &v.host_if, "up"])?;
        ip(&["-n", &v.ns, "addr", "add", "10.213.0.2/30", "dev", &peer])?;
        ip(&["-n", &v.ns, "link", "set", &peer, "up"])?;
        Ok(v)
    }

    fn rx_packets(&self) -> u64 {
        std::fs::read_to_string(format!(
            "/sys/class/net/{}/statistics/rx_packets",
            self.host_if
        ))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
    }

    /// Sends small UDP datagrams from inside the namespace to the host end for `secs`.
    fn flood(&self, secs: u64) -> Result<()> {
        let ns = format!("/run/netns/{}", self.ns);
        std::thread::scope(|sc| {
            sc.spawn(|| -> Result<()> {
                let f = std::fs::File::open(&ns)?;
                // SAFETY: moves only this thread into the namespace.
                if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) }
                    != 0
                {
                    anyhow::bail!("setns: {}", std::io::Error::last_os_error());
                }
                let sock = std::net::UdpSocket::bind("10.213.0.2:0")?;
                sock.connect("10.213.0.1:9")?;
                let end = Instant::now() + Duration::from_secs(secs);
                let buf = [0u8; 18];
                let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
                while Instant::now() < end {
                    for _ in 0..256 {
                        // write(2), not send(2): this measures the XDP program on the
                        // receiving side; what the send hooks cost is W6's business.
                        // SAFETY: a valid socket fd and buffer.
                        let _ = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
                    }
                }
                Ok(())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("flood thread panicked"))?
        })
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn put32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Loads `r0 = ret; exit` as a program of `prog_type` with raw `bpf(2)` calls, so the floors
/// below share nothing with tprobe.
fn load_empty(prog_type: u32, expected_attach_type: u32, ret: u8) -> Result<std::os::fd::OwnedFd> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    let insns: [u8; 16] = [0xb7, 0, 0, 0, ret, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = c"GPL";
    // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, ...,
    // expected_attach_type at 68.
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, prog_type);
    put32(&mut attr, 4, 2);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    put32(&mut attr, 68, expected_attach_type);
    bpf(BPF_PROG_LOAD, &attr).context("loading an empty program")
}

/// `bpf(cmd, attr)` for a command that returns a new fd.
fn bpf(cmd: libc::c_long, attr: &[u8]) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: `attr` is a correctly laid out `union bpf_attr` prefix of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len() as u32) };
    if fd < 0 {
        bail!("bpf({cmd}): {}", std::io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Empty programs on tracepoints: the cost of the hook itself, the floor under any probe that
/// uses it. Dropping the value detaches them.
struct EmptyTracepoints {
    _fds: Vec<std::os::fd::OwnedFd>,
}

impl EmptyTracepoints {
    /// `names` are `category/event` under tracefs `events/`.
    fn attach(names: &[&str]) -> Result<EmptyTracepoints> {
        use std::os::fd::{AsRawFd, FromRawFd};
        const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
        const PERF_TYPE_TRACEPOINT: u32 = 2;
        const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
        const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
        const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
        let mut fds = Vec::new();
        let prog = load_empty(BPF_PROG_TYPE_TRACEPOINT, 0, 0)?;
        for name in names {
            let id: u64 = std::fs::read_to_string(format!("/sys/kernel/tracing/events/{name}/id"))
                .with_context(|| format!("tracepoint {name}"))?
                .trim()
                .parse()?;
            // struct perf_event_attr: type, size, config, sample_period, ..., wakeup_events at 48.
            let mut attr = [0u8; 128];
            put32(&mut attr, 0, PERF_TYPE_TRACEPOINT);
            put32(&mut attr, 4, 128);
            put64(&mut attr, 8, id);
            put64(&mut attr, 16, 1);
            put32(&mut attr, 48, 1);
            // SAFETY: a correctly laid out attr; every CPU's events run the attached program.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    attr.as_ptr(),
                    -1,
                    0,
                    -1,
                    PERF_FLAG_FD_CLOEXEC,
                )
            };
            if fd < 0 {
                bail!(
                    "perf_event_open {name}: {}",
                    std::io::Error::last_os_error()
                );
            }
            // SAFETY: a new fd we own.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
            // SAFETY: ioctls on our own perf event fd.
            unsafe {
                if libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) != 0
                    || libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) != 0
                {
                    bail!("attaching to {name}: {}", std::io::Error::last_os_error());
                }
            }
            fds.push(fd);
        }
        fds.push(prog);
        Ok(EmptyTracepoints { _fds: fds })
    }
}

/// A do-nothing XDP program (`r0 = XDP_PASS; exit`) attached in generic mode through a BPF
/// link: what generic XDP itself costs on this path, before any program does work. Dropping
/// it detaches.
struct EmptyXdp {
    _prog: std::os::fd::OwnedFd,
    _link: std::os::fd::OwnedFd,
}

impl EmptyXdp {
    fn attach(ifname: &str) -> Result<EmptyXdp> {
        const BPF_LINK_CREATE: libc::c_long = 28;
        const BPF_PROG_TYPE_XDP: u32 = 6;
        const BPF_XDP: u32 = 37;
        const XDP_FLAGS_SKB_MODE: u32 = 2;
        const XDP_PASS: u8 = 2;
        let prog = load_empty(BPF_PROG_TYPE_XDP, BPF_XDP, XDP_PASS)?;
        let ifname_c = CString::new(ifname)?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(ifname_c.as_ptr()) };
        if ifindex == 0 {
            bail!("{ifname}: no such interface");
        }
        // BPF_LINK_CREATE: prog_fd, target_ifindex, attach_type, flags.
        let mut attr = [0u8; 64];
        put32(&mut attr, 0, std::os::fd::AsRawFd::as_raw_fd(&prog) as u32);
        put32(&mut attr, 4, ifindex);
        put32(&mut attr, 8, BPF_XDP);
        put32(&mut attr, 12, XDP_FLAGS_SKB_MODE);
        let link = bpf(BPF_LINK_CREATE, &attr).context("attaching an empty XDP program")?;
        Ok(EmptyXdp {
            _prog: prog,
            _link: link,
        })
    }
}

/// Packets/s through a veth pair with no XDP program, with an empty one and with tprobe's
/// (generic mode).
fn xdp_flood(tprobe: &Path, opts: &Opts) -> Result<Row> {
    let veth = Veth::create()?;
    let secs = if opts.quick { 1 } else { 3 };
    let mut without = Vec::new();
    let mut empty = Vec::new();
    let mut with = Vec::new();
    let mut lost = 0;
    let args: Vec<String> = [
        "--events",
        "flow",
        "--xdp-mode",
        "skb",
        "--xdp-iface",
        &veth.host_if,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for round in 0..opts.rounds {
        eprintln!("bench: XDP flood round {}/{}", round + 1, opts.rounds);
        let r0 = veth.rx_packets();
        veth.flood(secs)?;
        without.push((veth.rx_packets() - r0) as f64 / secs as f64);
        {
            let _e = EmptyXdp::attach(&veth.host_if)?;
            let r0 = veth.rx_packets();
            veth.flood(secs)?;
            empty.push((veth.rx_packets() - r0) as f64 / secs as f64);
        }
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &args, "")?;
        let r0 = veth.rx_packets();
        veth.flood(secs)?;
        with.push((veth.rx_packets() - r0) as f64 / secs as f64);
        lost = lost.max(t.stop("flow.")?.lost);
    }
    let (a, e, b) = (median(&mut without), median(&mut empty), median(&mut with));
    Ok(Row {
        name: "XDP UDP flood through a veth pair (generic mode)".into(),
        values: vec![
            ("without XDP".into(), format!("{a:.0} packets/s")),
            (
                "empty XDP program".into(),
                format!(
                    "{e:.0} packets/s ({:.1} % lost to generic XDP itself)",
                    (1.0 - e / a) * 100.0
                ),
            ),
            ("with tprobe XDP".into(), format!("{b:.0} packets/s")),
            (
                "throughput lost".into(),
                format!("{:.1} % (target < 5 %)", (1.0 - b / a) * 100.0),
            ),
            (
                "lost to tprobe's program".into(),
                format!("{:.1} % (versus the empty program)", (1.0 - b / e) * 100.0),
            ),
            ("probe losses".into(), lost.to_string()),
        ],
    })
}
