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

use crate::{
    clock::BootClock,
    config::RunConfig,
    decode::{decode, DecodeError},
    drain::Drain,
    encode::native::Native,
    enrich::process::ProcessTable,
    event::{Body, Event},
    loader::{self, LoadOptions, Probe},
    metrics::Stats,
    pipeline::{Pipeline, Stop},
    sink::{file::FileSink, stdout::Stdout, Sink, SinkError},
};

/// Turns growth of the kernel loss counters into `probe.loss` events.
struct LossTracker {
    last: HashMap<u32, u64>,
    last_decode: u64,
    since_ns: u64,
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
            "file": cfg.file.summary(),
            "output": cfg.output.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "stdout".into()),
        },
    })
}

/// Runs the probe until Ctrl-C, SIGTERM, `--duration`, `--count` or a closed output.
pub async fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let clock = BootClock::measure();
    let stats = Arc::new(Stats::default());
    // Process lifecycle events always flow: they keep the process table (exe, args, cwd of
    // every event's process) right whatever the user chose to see.
    let mut kernel_kinds = cfg.kinds.clone();
    for k in [
        EventKind::ProcessExec,
        EventKind::ProcessFork,
        EventKind::ProcessExit,
    ] {
        if !kernel_kinds.contains(&k) {
            kernel_kinds.push(k);
        }
    }
    let mut probe = loader::load(&LoadOptions {
        kinds: kernel_kinds,
        threads: cfg.threads,
        ringbuf_bytes: cfg.ringbuf_bytes,
        wakeup_bytes: (cfg.ringbuf_bytes / 8) as u64,
        btf_path: cfg.btf_path.clone(),
        file: cfg.file.clone(),
    })?;
    for h in probe.hooks.iter().filter(|h| !h.attached) {
        if let Some(r) = h.reason.as_deref().filter(|r| !r.starts_with("no enabled")) {
            log::warn!("hook {} not attached: {r}", h.hook);
        }
    }
    let sink: Box<dyn Sink> = match &cfg.output {
        Some(p) => Box::new(FileSink::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => Box::new(Stdout),
    };
    let start_ns = BootClock::now_boot_ns();
    let mut table = ProcessTable::new(cfg.host_name.clone(), "/proc".into());
    // After attaching: a process is either in the snapshot or seen by the hooks.
    table.snapshot();
    let mut pipeline = Pipeline::new(
        table,
        Box::new(Native::new(cfg.host_name.clone(), clock)),
        sink,
        stats.clone(),
        cfg.count,
        cfg.kinds.clone(),
    );
    pipeline.file = crate::file::FileStage::new(&cfg.file);
    let (tx, rx) = mpsc::channel::<Vec<Event>>(1024);
    let (stop_tx, mut stop_rx) = watch::channel(Stop::Running);
    let worker = std::thread::Builder::new()
        .name("tprobe-pipeline".into())
        .spawn(move || pipeline.run(rx, stop_tx))?;

    let info = start_info(&cfg, &probe);
    let _ = tx
        .send(vec![Event::probe(
            start_ns,
            Body::Probe { stop: false, info },
        )])
        .await;

    let ring = probe.ring.take().context("ring buffer already taken")?;
    let mut drain = Drain::new(ring, cfg.flush_interval)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let deadline = tokio::time::sleep(cfg.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut loss_tick = tokio::time::interval(Duration::from_secs(1));
    let mut losses = LossTracker {
        last: HashMap::new(),
        last_decode: 0,
        since_ns: start_ns,
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
                if !ev.is_empty() && tx.send(ev).await.is_err() {
                    break;
                }
            }
        }
        let batch = drain_batch(&mut drain, &stats);
        if !batch.is_empty() && tx.send(batch).await.is_err() {
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
    let _ = tx.send(tail).await;
    drop(tx);
    let result = tokio::task::spawn_blocking(move || worker.join())
        .await
        .context("joining the pipeline")?;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(SinkError::Closed)) => Ok(()),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("writing events")),
        Err(_) => anyhow::bail!("the pipeline thread panicked"),
    }
}
