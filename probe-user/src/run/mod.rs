//! `tprobe run`: load and attach, then drain -> decode -> pipeline until a stop condition, and
//! shut down in order (detach, final drain, loss summary, `probe.stop`, flush).
use std::{
    collections::HashMap,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use std::os::fd::AsRawFd as _;

use anyhow::Context as _;
use probe_common::EventKind;
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot, watch},
};

use std::io::IsTerminal as _;

pub mod reload;

use crate::{
    analyze::Analyzer,
    clock::BootClock,
    config::RunConfig,
    enrich::{
        container::{ContainerStage, Resolver},
        process::ProcessTable,
    },
    event::{Body, Event},
    families::{self, flow::XdpError, wire::DecodeError},
    filter::OutputFilter,
    kernel::{
        decode::decode,
        drain::Drain,
        load::{self, LoadOptions, Probe},
    },
    pipeline::{Pipeline, Reload, Stop},
    service::{
        http,
        metrics::Stats,
        prom::{self, RingFill, RunCollector},
    },
    sink::{file::FileSink, stdout::Stdout, Sink, SinkError},
};
use reload::Reloader;

/// Turns growth of the loss counters (kernel and userspace) into `probe.loss` events.
struct LossTracker {
    /// Totals already reported, by (source, kind).
    last: HashMap<(&'static str, String), u64>,
    since_ns: u64,
}

impl LossTracker {
    /// One `probe.loss` for the growth of a running total since the last poll; returns it.
    fn report(
        &mut self,
        out: &mut Vec<Event>,
        now: u64,
        source: &'static str,
        kind: &str,
        total: u64,
    ) -> u64 {
        let prev = self
            .last
            .insert((source, kind.to_owned()), total)
            .unwrap_or(0);
        let grown = total.saturating_sub(prev);
        if grown > 0 {
            out.push(Event::loss(
                now,
                source,
                kind.to_owned(),
                grown,
                self.since_ns,
            ));
        }
        grown
    }

    fn poll(&mut self, probe: &Probe, stats: &Stats) -> Vec<Event> {
        let now = BootClock::now_boot_ns();
        let mut out = Vec::new();
        for (kind, total) in probe.losses() {
            let name = probe_common::EventKind::try_from(kind)
                .map(|k| k.name().to_owned())
                .unwrap_or_else(|_| format!("kind-{kind}"));
            let grown = self.report(&mut out, now, "ringbuf", &name, total);
            stats.ringbuf_lost.fetch_add(grown, Relaxed);
            prom::loss("ringbuf", &name).inc_by(grown);
        }
        for (sink, source, count) in stats.sinks.poll() {
            out.push(Event::loss(now, source, sink, count, self.since_ns));
        }
        let grown = self.report(&mut out, now, "follow", "process", probe.follow_losses());
        stats.follow_lost.fetch_add(grown, Relaxed);
        let decode = stats.decode_errors.load(Relaxed);
        let grown = self.report(&mut out, now, "decode", "malformed", decode);
        prom::loss("decode", "malformed").inc_by(grown);
        let dns = stats.dns_malformed.load(Relaxed);
        self.report(&mut out, now, "dns", "net.dns", dns);
        self.since_ns = now;
        out
    }
}

/// Records decoded into one batch in the drain loop (the final and reload drains take all).
const BATCH_EVENTS: usize = 4096;

fn drain_batch(drain: &mut Drain, stats: &Stats, limit: usize) -> Vec<Event> {
    let mut batch = Vec::new();
    let n = drain.drain(limit, |bytes| match decode(bytes) {
        Ok(ev) => batch.push(ev),
        Err(DecodeError::Dns(e)) => {
            stats.dns_malformed.fetch_add(1, Relaxed);
            log::debug!("skipped a DNS payload: {e}");
        }
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

/// `probe.start`'s `analyze`: what was loaded, and the hooks attached only because rules need
/// their kinds.
fn analyze_info(cfg: &RunConfig, probe: &Probe, a: &Analyzer) -> serde_json::Value {
    let kinds = a.kinds();
    let for_rules: Vec<&str> = crate::families::hooks()
        .filter(|h| {
            h.kinds.iter().any(|k| kinds.contains(k))
                && !h.kinds.iter().any(|k| cfg.kinds.contains(k))
        })
        .filter(|h| {
            probe
                .hooks
                .iter()
                .any(|r| r.program == h.program && r.attached)
        })
        .map(|h| h.program)
        .collect();
    let mut s = a.summary();
    s["hooks_for_rules"] = for_rules.into();
    s
}

fn start_info(
    cfg: &RunConfig,
    probe: &Probe,
    analyze: Option<serde_json::Value>,
) -> serde_json::Value {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "kernel": kernel,
        "pid": std::process::id(),
        "hooks": probe.hooks,
        "features": probe.features,
        "analyze": analyze,
        "config": {
            "events": cfg.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "threads": cfg.threads,
            "ringbuf_bytes": cfg.ringbuf_bytes,
            "flush_interval_ms": cfg.flush_interval.as_millis() as u64,
            "count": cfg.count,
            "duration_s": cfg.duration.map(|d| d.as_secs_f64()),
            "xdp": cfg.xdp.as_ref().map(|x| serde_json::json!({
                "ifaces": x.ifaces,
                "mode": x.mode.name(),
                "active_timeout_s": x.active_timeout.as_secs_f64(),
                "idle_timeout_s": x.idle_timeout.as_secs_f64(),
                "table_size": x.table_size,
            })),
            "file": cfg.file.summary(),
            "process": cfg.process.summary(),
            "security": cfg.security.summary(),
            "output": cfg.output.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "stdout".into()),
            "containers": cfg.containers.enabled.then(|| serde_json::json!({
                "cri_socket": cfg.containers.cri_socket,
                "containerd_socket": cfg.containers.containerd_socket,
                "docker_socket": cfg.containers.docker_socket,
                "wait_ms": cfg.containers.wait.as_millis() as u64,
            })),
            "format": cfg.format,
            "sinks": sink_configs(cfg).iter().map(|s| s.name()).collect::<Vec<_>>(),
            "filters": cfg.filters,
            "config_file": cfg.config_path.as_ref().map(|p| p.display().to_string()),
        },
    })
}

/// Loading parses the kernel's BTF (megabytes, twice: ours and aya's); hand that memory back
/// instead of keeping it as free heap for the whole run.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The sink set the config asks for. The one place sinks are built, at start and on SIGHUP
/// (a reopened output file also lets logrotate move the old one away).
pub fn build_sink(cfg: &RunConfig, stats: &Stats) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match (&cfg.output, cfg.sinks.is_empty()) {
        (Some(p), true) => {
            Box::new(FileSink::open(p).with_context(|| format!("opening {}", p.display()))?)
        }
        (None, true) => Box::new(Stdout),
        _ => crate::sink::fanout::build(&sink_configs(cfg), &cfg.host_name, &stats.sinks)
            .context("opening the sinks")?,
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
    // Rules first: a broken one is a usage error, found before anything is loaded.
    let mut analyzer = Analyzer::load(&cfg.analyze)?;
    analyzer.open_baseline(&cfg.analyze)?;
    let mut analyzed = analyzer.kinds();
    // The exec deny list needs exec events whatever --events shows.
    if !cfg.respond.deny.is_empty() {
        analyzed.push(EventKind::ProcessExec);
        analyzed.sort();
        analyzed.dedup();
    }
    let analyzing = !analyzer.is_noop();
    // Before touching the kernel: one clear line when privileges are missing.
    crate::kernel::check::require_privileges()?;
    // Process lifecycle events always flow: they keep the process table (exe, args, cwd of
    // every event's process) right whatever the user chose to see.
    let mut probe = load::load(&LoadOptions {
        kinds: reload::kernel_kinds(
            &reload::wanted_kinds(&cfg.kinds, &analyzed),
            cfg.xdp.is_some(),
        ),
        filters: cfg.filters.kernel(),
        threads: cfg.threads,
        ringbuf_bytes: cfg.ringbuf_bytes,
        wakeup_bytes: (cfg.ringbuf_bytes / 8) as u64,
        btf_path: cfg.btf_path.clone(),
        flow_entries: cfg.xdp.as_ref().map_or(1, |x| x.table_size),
        families: families::FamilyOptions {
            file: cfg.file.clone(),
            security: cfg.security.clone(),
        },
    })?;
    // XDP is attached per interface, not from the tracepoint table.
    let xdp_maps = match &cfg.xdp {
        Some(x) => {
            let ebpf = probe
                .ebpf_mut()
                .ok_or_else(|| XdpError::Program("probe already detached".into()))?;
            let (maps, reports) = families::flow::attach(ebpf, x)?;
            probe.hooks.extend(reports);
            Some(maps)
        }
        None => None,
    };
    let analyze = analyzing.then(|| analyze_info(&cfg, &probe, &analyzer));
    // The respond stage takes the kernel's deny map; its own config errors came earlier.
    let responder = if cfg.respond.is_off() {
        None
    } else {
        let map = probe
            .ebpf_mut()
            .and_then(|e| e.take_map(probe_common::MAP_DENY_EXEC));
        Some(
            crate::analyze::respond::Responder::start(
                cfg.respond.clone(),
                cfg.service.proc_root.clone(),
                map,
            )
            .context("starting the respond stage")?,
        )
    };
    let respond_info = responder.as_ref().map(|r| r.summary());
    release_startup_memory();
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
    let sink = build_sink(&cfg, &stats)?;
    let start_ns = BootClock::now_boot_ns();
    let mut table = ProcessTable::new(cfg.host_name.clone(), cfg.service.proc_root.clone());
    if let Some(cap) = cfg.limits.process_table {
        table.set_cap(cap as usize);
    }
    table.set_ancestors(cfg.process.ancestors);
    let hasher = if cfg.process.hash.enabled {
        let h =
            crate::enrich::hash::Hasher::start(&cfg.process.hash, cfg.service.proc_root.clone())
                .context("starting the executable hasher")?;
        table.set_hasher(h.clone());
        Some(h)
    } else {
        None
    };
    // After attaching: a process is either in the snapshot or seen by the hooks.
    table.snapshot();
    let (ctl_tx, ctl_rx) = std::sync::mpsc::channel::<Reload>();
    let mut pipeline = Pipeline::new(
        table,
        crate::encode::format::build(
            cfg.format,
            cfg.pretty,
            // Colours only when a terminal is the one output.
            std::io::IsTerminal::is_terminal(&std::io::stdout())
                && std::env::var_os("NO_COLOR").is_none()
                && cfg.output.is_none()
                && cfg
                    .sinks
                    .iter()
                    .all(|s| *s == crate::sink::config::SinkConfig::Stdout),
            cfg.host_name.clone(),
            clock,
        ),
        sink,
        stats.clone(),
        cfg.count,
        cfg.kinds.clone(),
    )
    .with_control(ctl_rx)
    .with_analyzer(
        analyzing.then_some(analyzer),
        cfg.alerts,
        crate::encode::native::Native::new(cfg.host_name.clone(), clock),
    )
    .with_responder(responder);
    pipeline.filter = OutputFilter::new(&cfg.filters).map_err(|e| anyhow::anyhow!(e))?;
    let mut reloader = Reloader::new(cfg.clone(), analyzed.clone());
    // Batches handed to the pipeline, so a reload lands between the right two.
    let mut sent: u64 = 0;
    pipeline.paths = crate::enrich::paths::PathResolver::new(&cfg.file);
    if let Some(h) = &hasher {
        pipeline.hashes = Some(crate::enrich::hash::HashStage::new(
            h,
            cfg.process.hash.wait,
        ));
    }
    if cfg.containers.enabled {
        let resolver = Resolver::start(&cfg.containers).context("starting container lookups")?;
        pipeline.containers = Some(ContainerStage::new(resolver, &cfg.containers));
    }
    let queue_batches = cfg.limits.queue.map_or(1024, |q| q.max(1) as usize);
    if let Some(n) = cfg.limits.queue_events {
        stats.queue_events_max.store(n.max(1), Relaxed);
    }
    let (tx, rx) = mpsc::channel::<Vec<Event>>(queue_batches);
    if let Some(r) = &mut pipeline.respond {
        r.serve(tx.downgrade())
            .context("starting the respond control socket")?;
    }
    let (stop_tx, mut stop_rx) = watch::channel(Stop::Running);
    // The pipeline reports its end on a channel rather than through a join, so a sink stuck in
    // a write cannot hold the shutdown past its budget.
    let (done_tx, mut done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("tprobe-pipeline".into())
        .spawn(move || {
            let _ = done_tx.send(pipeline.run(rx, stop_tx));
        })?;
    let tracker = match (xdp_maps, &cfg.xdp) {
        (Some(m), Some(x)) => Some(crate::enrich::flows::tracker::Tracker::spawn(
            m,
            x.clone(),
            tx.clone(),
            stats.clone(),
        )?),
        _ => None,
    };

    let ring = probe.ring.take().context("ring buffer already taken")?;
    let fill = match RingFill::new(ring.as_raw_fd(), cfg.ringbuf_bytes as u64) {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            log::warn!("cannot map the ring buffer positions (no fill metric): {e}");
            None
        }
    };
    let hash_stats = hasher.as_ref().map(|h| h.stats.clone());
    let server = start_server(
        &cfg,
        &probe,
        &stats,
        fill.clone(),
        queue_batches,
        hash_stats,
    )
    .await?;

    let mut info = start_info(&cfg, &probe, analyze);
    if let Some(r) = respond_info {
        info["respond"] = r;
    }
    info["metrics"] = server.as_ref().map(|s| s.addr.to_string()).into();
    let _ = send(
        &tx,
        &stats,
        &mut sent,
        vec![Event::probe(start_ns, Body::Probe { stop: false, info })],
    )
    .await;

    let mut drain = Drain::new(ring, cfg.flush_interval)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let deadline = tokio::time::sleep(cfg.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut loss_tick = tokio::time::interval(Duration::from_secs(1));
    let mut losses = LossTracker {
        last: HashMap::new(),
        since_ns: start_ns,
    };
    // Zero-valued loss series from the start, so rate() works before the first loss.
    for k in EventKind::ALL {
        prom::loss("ringbuf", k.name());
    }
    prom::loss("decode", "malformed");
    prom::enrich_failure("procfs");

    // Events read but not yet handed to the pipeline when a stop came (they go in the tail).
    let mut pending: Vec<Event> = Vec::new();
    loop {
        // Hooks are attached and the drain turns: /healthz is ok while this stays fresh.
        stats
            .drain_heartbeat_ns
            .store(BootClock::now_boot_ns(), Relaxed);
        let mut stop = false;
        let mut hup = false;
        tokio::select! {
            r = drain.wait() => r.context("waiting on the ring buffer")?,
            _ = sigterm.recv() => stop = true,
            _ = sigint.recv() => stop = true,
            _ = &mut deadline, if cfg.duration.is_some() => stop = true,
            _ = stop_rx.changed() => stop = true,
            _ = loss_tick.tick() => pending.extend(losses.poll(&probe, &stats)),
            _ = sighup.recv() => hup = true,
        }
        if stop {
            break;
        }
        if hup {
            match reloader.reload(&mut probe, |c| build_sink(c, &stats)) {
                Ok(mut r) => {
                    // The kernel has switched: what it queued before goes out under the old
                    // userspace filters, then the pipeline switches.
                    pending.extend(drain_batch(&mut drain, &stats, usize::MAX));
                    if !send(&tx, &stats, &mut sent, std::mem::take(&mut pending)).await {
                        break;
                    }
                    r.after_batches = sent;
                    let _ = ctl_tx.send(r);
                    // Wakes the pipeline so the switch (and `probe.reload`) happens now.
                    if !send(&tx, &stats, &mut sent, Vec::new()).await {
                        break;
                    }
                }
                Err(e) => eprintln!("tprobe: reload failed, the running config stays: {e:#}"),
            }
            continue;
        }
        let mut batch = drain_batch(&mut drain, &stats, BATCH_EVENTS);
        crate::enrich::flows::tracker::route(tracker.as_ref(), &mut batch);
        pending.extend(batch);
        if pending.is_empty() {
            continue;
        }
        // A full queue (stuck sink) must not hide a SIGTERM, nor the kernel's drops while the
        // ring buffer fills behind it: wait for room, a signal or the next loss poll.
        let permit = loop {
            tokio::select! {
                p = async {
                    stats.wait_queue_room().await;
                    tx.reserve().await
                } => break Some(p),
                _ = loss_tick.tick() => pending.extend(losses.poll(&probe, &stats)),
                _ = sigterm.recv() => break None,
                _ = sigint.recv() => break None,
            }
        };
        let Some(permit) = permit else { break };
        let Ok(permit) = permit else { break };
        sent += 1;
        stats.queued(pending.len());
        permit.send(std::mem::take(&mut pending));
    }

    // Stop producing, then take everything the kernel queued, including records that were
    // being written when the hooks went away.
    probe.detach();
    let mut tail = pending;
    let mut last = final_drain(&mut drain, fill.as_deref(), &stats).await;
    crate::enrich::flows::tracker::route(tracker.as_ref(), &mut last);
    tail.extend(last);
    // The tracker ends every live flow and reports its counters.
    let xdp_info = match tracker {
        Some(t) => Some(tokio::task::spawn_blocking(move || t.finish()).await?),
        None => None,
    };
    tail.extend(losses.poll(&probe, &stats));
    let mut info = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "reason": match *stop_rx.borrow() {
            Stop::Running => "signal or duration",
            Stop::CountReached => "count reached",
            Stop::ReaderGone => "output closed",
            Stop::SinkFailed => "output failed",
        },
        "duration_s": (BootClock::now_boot_ns() - start_ns) as f64 / 1e9,
    });
    if let Some(x) = xdp_info {
        info["xdp"] = x;
    }
    tail.push(Event::probe(
        BootClock::now_boot_ns(),
        Body::Probe { stop: true, info },
    ));
    let unwritten = tail.len();
    // Hand over the tail and wait for the sinks to flush it, within the shutdown budget; a
    // second signal cuts it short.
    let budget = cfg.service.shutdown_timeout;
    let flushed = async {
        let _ = send(&tx, &stats, &mut sent, tail).await;
        drop(tx);
        (&mut done_rx).await
    };
    let result = tokio::select! {
        r = tokio::time::timeout(budget, flushed) => match r {
            Ok(r) => r,
            Err(_) => anyhow::bail!(
                "shutdown took longer than {budget:?} (--shutdown-timeout): the output is stuck; \
                 up to {} queued batches and {unwritten} final events were not written",
                stats.queued_batches.load(Relaxed)
            ),
        },
        _ = sigterm.recv() => anyhow::bail!("second signal during shutdown: exiting without flushing"),
        _ = sigint.recv() => anyhow::bail!("second signal during shutdown: exiting without flushing"),
    };
    drop(server);
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

/// Queues a batch for the pipeline; false when the pipeline is gone.
/// Counts it in `sent` too, so a reload lands between the right two batches.
async fn send(
    tx: &mpsc::Sender<Vec<Event>>,
    stats: &Stats,
    sent: &mut u64,
    batch: Vec<Event>,
) -> bool {
    *sent += 1;
    let n = batch.len();
    stats.queued(n);
    if tx.send(batch).await.is_err() {
        stats.unqueued(n);
        return false;
    }
    true
}

/// Drains after the hooks are detached until the ring buffer is empty. A program that was
/// running during the detach may still commit a reserved record, so wait (briefly) for it.
async fn final_drain(drain: &mut Drain, fill: Option<&RingFill>, stats: &Stats) -> Vec<Event> {
    // Let programs that were already running when the hooks went away finish.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut out = drain_batch(drain, stats, usize::MAX);
    let Some(fill) = fill else { return out };
    let give_up = tokio::time::Instant::now() + Duration::from_millis(500);
    while fill.used() > 0 && tokio::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(1)).await;
        out.extend(drain_batch(drain, stats, usize::MAX));
    }
    if fill.used() > 0 {
        log::warn!(
            "{} bytes left in the ring buffer after the final drain",
            fill.used()
        );
    }
    out
}

/// Starts `/metrics` and `/healthz` unless disabled. A taken default port only warns (several
/// probes on one host); an address the user asked for must work.
async fn start_server(
    cfg: &RunConfig,
    probe: &Probe,
    stats: &Arc<Stats>,
    fill: Option<Arc<RingFill>>,
    queue: usize,
    hashes: Option<Arc<crate::enrich::hash::HashStats>>,
) -> anyhow::Result<Option<http::Server>> {
    let Some((addr, required)) = cfg.service.listen() else {
        return Ok(None);
    };
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(RunCollector {
        stats: stats.clone(),
        ring: fill,
        queue_capacity: queue as u64,
        hooks: probe
            .hooks
            .iter()
            .map(|h| (h.hook.clone(), h.program.to_owned(), h.attached))
            .collect(),
        stall_after: cfg.service.stall_timeout,
        hashes,
    }));
    match http::start(addr, registry, stats.clone(), cfg.service.stall_timeout).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if !required => {
            log::warn!(
                "no /metrics or /healthz: cannot listen on {addr}: {e} (use --metrics-addr)"
            );
            Ok(None)
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("listening on {addr} (--metrics-addr)")))
        }
    }
}

/// `--sink` values plus `--output` as a plain file sink.
fn sink_configs(cfg: &RunConfig) -> Vec<crate::sink::config::SinkConfig> {
    use crate::sink::{config::SinkConfig, rotate::FileConfig};
    let mut v = cfg.sinks.clone();
    if let Some(p) = &cfg.output {
        v.push(SinkConfig::File(FileConfig {
            path: p.clone(),
            max_size: None,
            keep: 1,
            gzip: false,
        }));
    }
    v
}
