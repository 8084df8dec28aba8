//! `tprobe run`: load and attach, then drain -> decode -> pipeline until a stop condition, and
//! shut down in order (detach, final drain, loss summary, `probe.stop`, flush).
use std::{
    collections::HashMap,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use anyhow::Context as _;
use probe_common::EventKind;
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, watch},
};

use std::io::IsTerminal as _;

use crate::{
    clock::BootClock,
    config::RunConfig,
    decode::{decode, DecodeError},
    drain::Drain,
    encode::native::Native,
    enrich::process::ProcessTable,
    event::{Body, Event},
    filter::Filter,
    loader::{self, LoadOptions, Probe},
    metrics::Stats,
    pipeline::Reload,
    pipeline::{Pipeline, Stop},
    reload::{self, Reloader},
    sink::{file::FileSink, stdout::Stdout, Sink, SinkError},
};

/// Turns growth of the kernel loss counters into `probe.loss` events.
struct LossTracker {
    last: HashMap<u32, u64>,
    last_decode: u64,
    since_ns: u64,
    last_follow: u64,
}

impl LossTracker {
    fn poll(&mut self, probe: &Probe, stats: &Stats) -> Vec<Event> {
        let now = BootClock::now_boot_ns();
        let mut out = Vec::new();
        for (kind, total) in probe.losses() {
            let prev = self.last.insert(kind, total).unwrap_or(0);
            if total > prev {
                stats.ringbuf_lost.fetch_add(total - prev, Relaxed);
                let name = probe_common::EventKind::try_from(kind)
                    .map(|k| k.name().to_owned())
                    .unwrap_or_else(|_| format!("kind-{kind}"));
                out.push(Event::probe(
                    now,
                    Body::Loss {
                        source: "ringbuf",
                        kind: name,
                        count: total - prev,
                        since_ns: self.since_ns,
                    },
                ));
            }
        }
        let follow = probe.follow_losses();
        if follow > self.last_follow {
            stats
                .follow_lost
                .fetch_add(follow - self.last_follow, Relaxed);
            out.push(Event::probe(
                now,
                Body::Loss {
                    source: "follow",
                    kind: "process".into(),
                    count: follow - self.last_follow,
                    since_ns: self.since_ns,
                },
            ));
            self.last_follow = follow;
        }
        let dec = stats.decode_errors.load(Relaxed);
        if dec > self.last_decode {
            out.push(Event::probe(
                now,
                Body::Loss {
                    source: "decode",
                    kind: "malformed".into(),
                    count: dec - self.last_decode,
                    since_ns: self.since_ns,
                },
            ));
            self.last_decode = dec;
        }
        self.since_ns = now;
        out
    }
}

fn drain_batch(drain: &mut Drain, stats: &Stats) -> Vec<Event> {
    let mut batch = Vec::new();
    let n = drain.drain(|bytes| match decode(bytes) {
        Ok(ev) => batch.push(ev),
        Err(e) => {
            if matches!(e, DecodeError::UnknownKind(_)) {
                stats.unknown_kinds.fetch_add(1, Relaxed);
            }
            stats.decode_errors.fetch_add(1, Relaxed);
            log::debug!("dropped malformed record: {e}");
        }
    });
    stats.drained.fetch_add(n as u64, Relaxed);
    batch
}

fn start_info(cfg: &RunConfig, probe: &Probe) -> serde_json::Value {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "kernel": kernel,
        "pid": std::process::id(),
        "hooks": probe.hooks,
        "config": {
            "events": cfg.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "threads": cfg.threads,
            "ringbuf_bytes": cfg.ringbuf_bytes,
            "flush_interval_ms": cfg.flush_interval.as_millis() as u64,
            "count": cfg.count,
            "duration_s": cfg.duration.map(|d| d.as_secs_f64()),
            "output": cfg.output.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "stdout".into()),
            "filters": cfg.filters,
            "config_file": cfg.config_path.as_ref().map(|p| p.display().to_string()),
        },
    })
}

/// Hands a batch to the pipeline and counts it; false when the pipeline is gone.
async fn send(tx: &mpsc::Sender<Vec<Event>>, sent: &mut u64, batch: Vec<Event>) -> bool {
    *sent += 1;
    tx.send(batch).await.is_ok()
}

/// The sink set the config asks for. The one place sinks are built, at start and on SIGHUP
/// (a reopened output file also lets logrotate move the old one away).
pub fn build_sink(cfg: &RunConfig) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match &cfg.output {
        Some(p) => Box::new(FileSink::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => Box::new(Stdout),
    })
}

/// The end-of-run summary for a person at a terminal.
pub fn summary(stats: &Stats, elapsed_ns: u64) -> String {
    let kinds: Vec<String> = stats
        .emitted_by_kind()
        .into_iter()
        .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let total: u64 = EventKind::ALL
        .iter()
        .map(|k| stats.emitted[*k as usize].load(Relaxed))
        .sum();
    format!(
        "tprobe: {:.1} s, {total} events{}; lost: {} in the kernel, {} malformed; {} filtered out\n",
        elapsed_ns as f64 / 1e9,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        stats.ringbuf_lost.load(Relaxed) + stats.follow_lost.load(Relaxed),
        stats.decode_errors.load(Relaxed),
        stats.filtered.load(Relaxed),
    )
}

/// Runs the probe until Ctrl-C, SIGTERM, `--duration`, `--count` or a closed output.
pub async fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let clock = BootClock::measure();
    let stats = Arc::new(Stats::default());
    // Before touching the kernel: one clear line when privileges are missing.
    crate::check::require_privileges()?;
    // Process lifecycle events always flow: they keep the process table (exe, args, cwd of
    // every event's process) right whatever the user chose to see.
    let mut probe = loader::load(&LoadOptions {
        kinds: reload::kernel_kinds(&cfg.kinds),
        filters: cfg.filters.kernel(),
        threads: cfg.threads,
        ringbuf_bytes: cfg.ringbuf_bytes,
        wakeup_bytes: (cfg.ringbuf_bytes / 8) as u64,
        btf_path: cfg.btf_path.clone(),
    })?;
    for pid in &cfg.filters.pids {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("tprobe: --pid {pid}: no such process now; its events appear only if the pid is reused");
        }
    }
    for h in probe.hooks.iter().filter(|h| !h.attached) {
        if let Some(r) = h.reason.as_deref().filter(|r| !r.starts_with("no enabled")) {
            log::warn!("hook {} not attached: {r}", h.hook);
        }
    }
    let sink = build_sink(&cfg)?;
    let start_ns = BootClock::now_boot_ns();
    let mut table = ProcessTable::new(cfg.host_name.clone(), "/proc".into());
    // After attaching: a process is either in the snapshot or seen by the hooks.
    table.snapshot();
    let (ctl_tx, ctl_rx) = std::sync::mpsc::channel::<Reload>();
    let mut pipeline = Pipeline::new(
        table,
        Box::new(Native::new(cfg.host_name.clone(), clock)),
        sink,
        stats.clone(),
        cfg.count,
        cfg.kinds.clone(),
    )
    .with_control(ctl_rx);
    pipeline.filter = Filter::new(&cfg.filters).map_err(|e| anyhow::anyhow!(e))?;
    let mut reloader = Reloader::new(cfg.clone());
    // Batches handed to the pipeline, so a reload lands between the right two.
    let mut sent: u64 = 0;
    let (tx, rx) = mpsc::channel::<Vec<Event>>(1024);
    let (stop_tx, mut stop_rx) = watch::channel(Stop::Running);
    let worker = std::thread::Builder::new()
        .name("tprobe-pipeline".into())
        .spawn(move || pipeline.run(rx, stop_tx))?;

    let info = start_info(&cfg, &probe);
    let _ = send(
        &tx,
        &mut sent,
        vec![Event::probe(start_ns, Body::Probe { stop: false, info })],
    )
    .await;

    let ring = probe.ring.take().context("ring buffer already taken")?;
    let mut drain = Drain::new(ring, cfg.flush_interval)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let deadline = tokio::time::sleep(cfg.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut loss_tick = tokio::time::interval(Duration::from_secs(1));
    let mut losses = LossTracker {
        last: HashMap::new(),
        last_decode: 0,
        since_ns: start_ns,
        last_follow: 0,
    };

    loop {
        tokio::select! {
            r = drain.wait() => r.context("waiting on the ring buffer")?,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = &mut deadline, if cfg.duration.is_some() => break,
            _ = stop_rx.changed() => break,
            _ = loss_tick.tick() => {
                let ev = losses.poll(&probe, &stats);
                if !ev.is_empty() && !send(&tx, &mut sent, ev).await {
                    break;
                }
            }
            _ = sighup.recv() => {
                match reloader.reload(&mut probe, build_sink) {
                    Ok(mut r) => {
                        // The kernel has switched: what it queued before goes out under the
                        // old userspace filters, then the pipeline switches.
                        let batch = drain_batch(&mut drain, &stats);
                        if !send(&tx, &mut sent, batch).await {
                            break;
                        }
                        r.after_batches = sent;
                        let _ = ctl_tx.send(r);
                        // Wakes the pipeline so the switch (and `probe.reload`) happens now.
                        if !send(&tx, &mut sent, Vec::new()).await {
                            break;
                        }
                    }
                    Err(e) => eprintln!("tprobe: reload failed, the running config stays: {e:#}"),
                }
            }
        }
        let batch = drain_batch(&mut drain, &stats);
        if !batch.is_empty() && !send(&tx, &mut sent, batch).await {
            break;
        }
    }

    // Stop producing, then take what the kernel already queued.
    probe.detach();
    let mut tail = drain_batch(&mut drain, &stats);
    tail.extend(losses.poll(&probe, &stats));
    let info = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "reason": match *stop_rx.borrow() {
            Stop::Running => "signal or duration",
            Stop::CountReached => "count reached",
            Stop::ReaderGone => "output closed",
            Stop::SinkFailed => "output failed",
        },
        "duration_s": (BootClock::now_boot_ns() - start_ns) as f64 / 1e9,
    });
    tail.push(Event::probe(
        BootClock::now_boot_ns(),
        Body::Probe { stop: true, info },
    ));
    let _ = send(&tx, &mut sent, tail).await;
    drop(tx);
    let result = tokio::task::spawn_blocking(move || worker.join())
        .await
        .context("joining the pipeline")?;
    if std::io::stderr().is_terminal() {
        eprint!("{}", summary(&stats, BootClock::now_boot_ns() - start_ns));
    }
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(SinkError::Closed)) => Ok(()),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("writing events")),
        Err(_) => anyhow::bail!("the pipeline thread panicked"),
    }
}
