//! W10: `tprobe investigate` over a generated record of a busy node (1 GB; 100 MB with
//! `--quick`): lines per second per core of CPU time (target >= 300,000), wall time, peak RSS.
//! The record has the native encoder's layout and a realistic mix: long-lived shells with
//! ancestors, workers forked and exec'd under them doing file, network and DNS work, exits.
use std::{
    fmt::Write as _,
    io::{BufWriter, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

use super::common::{median, Opts, Row};

/// A tiny deterministic generator (xorshift): the same record every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct P {
    pid: u32,
    ppid: u32,
    eid: String,
    start: String,
    exe: String,
    args: String,
    left: u32,
}

fn ts(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    format!(
        "2026-12-02T{:02}:{:02}:{:02}.{:09}Z",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ns % 1_000_000_000
    )
}

/// The ancestors every worker carries (the encoder's `--ancestors 5` default).
fn ancestors(shell: &P) -> String {
    format!(
        r#"[{{"pid":{},"exe":"{}","args":{},"entity_id":"{}","start_time":"{}"}},{{"pid":900,"exe":"/usr/bin/containerd-shim-runc-v2","args":["/usr/bin/containerd-shim-runc-v2","-namespace","k8s.io","-id","4f6c2d0e8b1a9c3d5e7f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d","-address","/run/containerd/containerd.sock"],"entity_id":"00000000000003a1","start_time":"2026-12-02T00:00:01.000000000Z"}},{{"pid":1,"exe":"/usr/lib/systemd/systemd","args":["/sbin/init","splash"],"entity_id":"0000000000000001","start_time":"2026-12-02T00:00:00.000000000Z"}}]"#,
        shell.pid, shell.exe, shell.args, shell.eid, shell.start
    )
}

fn process_json(p: &P, parent: &str, anc: &str) -> String {
    format!(
        r#""process":{{"pid":{0},"tid":{0},"ppid":{1},"uid":1000,"gid":1000,"user":"app","comm":"worker","exe":"{2}","args":{3},"args_truncated":false,"cwd":"/srv/app","start_time":"{4}","entity_id":"{5}","cgroup_id":51234,"euid":1000,"egid":1000,"caps":{{"effective":[],"permitted":[]}},"ns":{{"pid":4026531836,"mnt":4026531841,"net":4026531840,"user":4026531837,"uts":4026531838,"ipc":4026531839,"cgroup":4026531835}},"ancestors":{6}}},"parent":{{"pid":{1},"comm":"sh","exe":"/bin/sh","args":["sh","-c","run-worker"],"entity_id":"{7}"}},"container":{{"id":"4f6c2d0e8b1a9c3d5e7f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d","runtime":"containerd","name":"api","image":"registry.local/api:1.4.2","pod":{{"name":"api-7d9f8","namespace":"prod"}}}}"#,
        p.pid, p.ppid, p.exe, p.args, p.start, p.eid, anc, parent
    )
}

/// Writes about `bytes` of record to `path`; returns (lines, the entity id of a worker in the
/// middle of it).
fn generate(path: &Path, bytes: u64) -> Result<(u64, String)> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let shells: Vec<P> = (0..8)
        .map(|i| P {
            pid: 1000 + i,
            ppid: 900,
            eid: format!("{:016x}", 0x5000 + i),
            start: ts(1_000_000_000),
            exe: "/bin/bash".into(),
            args: r#"["bash","/srv/app/entrypoint.sh","--serve"]"#.into(),
            left: u32::MAX,
        })
        .collect();
    let mut active: Vec<(P, usize)> = Vec::new();
    let (mut written, mut lines, mut seq, mut now) = (0u64, 0u64, 0u64, 3_600_000_000_000u64);
    let mut next_pid = 20_000u32;
    let mut target = None;
    let mut line = String::with_capacity(8192);
    let head = |line: &mut String, now: u64, kind: &str, seq: u64| {
        line.clear();
        let _ = write!(
            line,
            r#"{{"ts":"{}","kind":"{kind}","seq":{seq},"host":{{"name":"node-17"}},"schema":"tprobe/1","#,
            ts(now)
        );
    };
    while written < bytes {
        now += 20_000 + rng.below(40_000);
        seq += 1;
        if active.len() < 64 {
            // A shell forks a worker, which execs.
            let s = rng.below(shells.len() as u64) as usize;
            let sh = &shells[s];
            next_pid = if next_pid > 4_000_000 {
                20_000
            } else {
                next_pid + 1
            };
            let w = P {
                pid: next_pid,
                ppid: sh.pid,
                eid: format!("{:016x}", rng.next()),
                start: ts(now),
                exe: "/usr/local/bin/worker".into(),
                args: format!(r#"["worker","--job","{}","--queue","default"]"#, seq),
                left: 5 + rng.below(200) as u32,
            };
            let anc = ancestors(sh);
            head(&mut line, now, "process.fork", seq);
            let forker = P {
                pid: sh.pid,
                ppid: sh.ppid,
                eid: sh.eid.clone(),
                start: sh.start.clone(),
                exe: sh.exe.clone(),
                args: sh.args.clone(),
                left: 0,
            };
            let _ = write!(
                line,
                r#"{},"child":{{"pid":{},"tid":{},"entity_id":"{}","thread":false}}}}"#,
                process_json(&forker, "00000000000003a1", "[]"),
                w.pid,
                w.pid,
                w.eid
            );
            line.push('\n');
            out.write_all(line.as_bytes())?;
            written += line.len() as u64;
            seq += 1;
            head(&mut line, now + 500_000, "process.exec", seq);
            let _ = write!(line, r#"{}}}"#, process_json(&w, &sh.eid, &anc));
            line.push('\n');
            out.write_all(line.as_bytes())?;
            written += line.len() as u64;
            lines += 2;
            if target.is_none() && written > bytes / 2 {
                target = Some(w.eid.clone());
            }
            active.push((w, s));
            continue;
        }
        let k = rng.below(active.len() as u64) as usize;
        let shell = &shells[active[k].1];
        let anc = ancestors(shell);
        let parent = shell.eid.clone();
        let p = &mut active[k].0;
        p.left = p.left.saturating_sub(1);
        if p.left == 0 {
            head(&mut line, now, "process.exit", seq);
            let _ = write!(
                line,
                r#"{},"exit":{{"code":0,"signal":null,"core_dumped":false,"cpu":{{"user_ms":12,"system_ms":3}}}}}}"#,
                process_json(p, &parent, &anc)
            );
            active.swap_remove(k);
        } else {
            let r = rng.below(100);
            let (kind, body) = match r {
                0..=59 => (
                    "file.open",
                    format!(
                        r#""file":{{"path":"/srv/app/data/shard-{}/part-{}.parquet","path_truncated":false,"path_resolved":true,"syscall":"openat","flags":["O_RDONLY","O_CLOEXEC"]}},"result":{{"ok":true,"fd":7}}"#,
                        rng.below(64),
                        rng.below(10_000)
                    ),
                ),
                60..=74 => (
                    "file.create",
                    format!(
                        r#""file":{{"path":"/srv/app/tmp/out-{}.json","path_truncated":false,"path_resolved":true,"syscall":"openat","flags":["O_WRONLY","O_CREAT","O_TRUNC"],"mode":"0644"}},"result":{{"ok":true,"fd":8}}"#,
                        rng.below(1_000_000)
                    ),
                ),
                75..=89 => (
                    "net.connect",
                    format!(
                        r#""net":{{"transport":"tcp","family":"ipv4","socket_type":"stream","src":{{"ip":"10.0.3.17","port":{}}},"dst":{{"ip":"10.96.0.{}","port":5432,"domain":"db.prod.svc.cluster.local"}},"direction":"outbound","fd":9}},"result":{{"ok":true}}"#,
                        30_000 + rng.below(30_000),
                        rng.below(250)
                    ),
                ),
                90..=94 => (
                    "net.dns",
                    r#""net":{"transport":"udp","family":"ipv4","dst":{"ip":"10.96.0.10","port":53},"direction":"outbound"},"dns":{"query":"db.prod.svc.cluster.local","qtype":"A","server":"10.96.0.10","answers":[{"name":"db.prod.svc.cluster.local","type":"A","data":"10.96.0.42","ttl":30}]}"#.to_owned(),
                ),
                _ => (
                    "file.unlink",
                    format!(
                        r#""file":{{"path":"/srv/app/tmp/out-{}.json","path_truncated":false,"path_resolved":true,"syscall":"unlinkat"}},"result":{{"ok":true}}"#,
                        rng.below(1_000_000)
                    ),
                ),
            };
            head(&mut line, now, kind, seq);
            let _ = write!(line, "{},{body}}}", process_json(p, &parent, &anc));
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        lines += 1;
    }
    out.flush()?;
    Ok((lines, target.context("record too small for a target")?))
}

/// user + system CPU seconds, wall seconds and peak RSS (MiB) of a finished child.
fn run_measured(cmd: &mut Command) -> Result<(f64, f64, f64)> {
    let t0 = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn tprobe investigate")?;
    let pid = child.id() as libc::pid_t;
    // The child's own peak, read while it runs: wait4's ru_maxrss also counts the mm it was
    // spawned from (posix_spawn shares this process's), which made W10 report the bench's size.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0f64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(super::common::proc_hwm_mib(pid as u32));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; status and ru are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t0.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = poll.join().unwrap_or(0.0);
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("tprobe investigate failed (status {status})");
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((secs(ru.ru_utime) + secs(ru.ru_stime), wall, peak))
}

pub(super) fn w10(tprobe: &Path, dir: &Path, opts: &Opts, rows: &mut Vec<Row>) -> Result<()> {
    let bytes: u64 = if opts.quick { 100 << 20 } else { 1 << 30 };
    let path = dir.join("w10-record.json");
    eprintln!("bench: W10 generating a {} MiB record", bytes >> 20);
    let (lines, target) = generate(&path, bytes)?;
    let size = std::fs::metadata(&path)?.len();
    let (mut cpu, mut wall, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..opts.rounds {
        eprintln!("bench: W10 investigate round {}/{}", round + 1, opts.rounds);
        let (c, w, m) = run_measured(
            Command::new(tprobe)
                .args(["investigate", "--entity", &target, "--format", "json"])
                .arg(&path),
        )?;
        cpu.push(c);
        wall.push(w);
        rss.push(m);
    }
    let (c, w, m) = (median(&mut cpu), median(&mut wall), median(&mut rss));
    let _ = std::fs::remove_file(&path);
    rows.push(Row {
        name: "W10 investigate a recorded node (two passes over the record)".into(),
        values: vec![
            (
                "record".into(),
                format!(
                    "{} MiB, {lines} lines ({} bytes a line), generated",
                    size >> 20,
                    size / lines.max(1)
                ),
            ),
            (
                "lines/s per core (CPU time)".into(),
                format!("{:.0} (target >= 300000)", lines as f64 / c),
            ),
            ("CPU".into(), format!("{c:.2} s")),
            (
                "wall".into(),
                format!("{w:.2} s ({:.0} MB/s)", size as f64 / w / 1e6),
            ),
            ("peak RSS".into(), format!("{m:.1} MiB")),
        ],
    });
    Ok(())
}
