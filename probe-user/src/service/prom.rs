//! Prometheus exposition of the probe's counters (`/metrics`, text format 0.0.4).
//!
//! Two sources, rendered one after the other:
//! - [`RunCollector`]: read at scrape time from [`Stats`] and the live ring buffer, so the hot
//!   path only bumps relaxed atomics;
//! - a process-wide registry of labelled counters and gauges that any module can add to with
//!   one call, no plumbing: keep the handle (e.g. in a `LazyLock`) and `inc()` it.
//!
//! ```ignore
//! static RETRIES: LazyLock<Counter> = LazyLock::new(|| {
//!     metrics::counter("tprobe_sink_retries", "Sink write retries", &[("sink", "otlp")])
//! });
//! RETRIES.inc();
//! // losses per stage share one family: metrics::prom::loss("queue", "process.exec").inc();
//! ```
use std::{
    collections::HashMap,
    os::fd::RawFd,
    sync::{atomic::Ordering::Relaxed, Arc, LazyLock, Mutex},
    time::Duration,
};

use probe_common::EventKind;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        MetricType,
    },
    registry::Registry,
};

use super::metrics::Stats;
use crate::clock::BootClock;

/// Content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Vec<(String, String)>;

#[derive(Default)]
struct Global {
    registry: Registry,
    counters: HashMap<&'static str, Family<Labels, Counter>>,
    gauges: HashMap<&'static str, Family<Labels, Gauge>>,
}

static GLOBAL: LazyLock<Mutex<Global>> = LazyLock::new(Default::default);

fn labels(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The counter `name{labels}` (exposed as `name_total`), created on first use. Calls with the
/// same name share one family; the first call's help text is kept.
pub fn counter(name: &'static str, help: &'static str, l: &[(&str, &str)]) -> Counter {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let g = &mut *g;
    let fam = g.counters.entry(name).or_insert_with(|| {
        let f = Family::<Labels, Counter>::default();
        g.registry.register(name, help, f.clone());
        f
    });
    fam.get_or_create_owned(&labels(l))
}

/// The gauge `name{labels}`, created on first use (see [`counter`]).
pub fn gauge(name: &'static str, help: &'static str, l: &[(&str, &str)]) -> Gauge {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let g = &mut *g;
    let fam = g.gauges.entry(name).or_insert_with(|| {
        let f = Family::<Labels, Gauge>::default();
        g.registry.register(name, help, f.clone());
        f
    });
    fam.get_or_create_owned(&labels(l))
}

/// The histogram `name` (exposed with `_bucket`, `_sum`, `_count`), registered on first use.
pub fn histogram(
    name: &'static str,
    help: &'static str,
    buckets: impl Iterator<Item = f64>,
) -> prometheus_client::metrics::histogram::Histogram {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = prometheus_client::metrics::histogram::Histogram::new(buckets);
    g.registry.register(name, help, h.clone());
    h
}

/// Alerts raised, by rule and level.
pub fn alert(rule: &str, level: &str) -> Counter {
    counter(
        "tprobe_alerts",
        "Alerts raised by the analyze stage, by rule and level",
        &[("rule", rule), ("level", level)],
    )
}

/// Events lost at `stage` (`ringbuf`, `decode`, `queue`, `sink`, ...), one family for all.
pub fn loss(stage: &str, kind: &str) -> Counter {
    counter(
        "tprobe_losses",
        "Events lost, by pipeline stage and event kind",
        &[("stage", stage), ("kind", kind)],
    )
}

/// Enrichment lookups that failed, by source (`procfs`, `cri`, ...).
pub fn enrich_failure(source: &str) -> Counter {
    counter(
        "tprobe_enrich_failures",
        "Enrichment lookups that failed, by source",
        &[("source", source)],
    )
}

/// Read-only view of a BPF ring buffer's consumer and producer positions, for its fill level.
pub struct RingFill {
    base: *mut libc::c_void,
    len: usize,
    page: usize,
    pub size: u64,
}

// SAFETY: the mapping is read-only and only read with atomic loads.
unsafe impl Send for RingFill {}
unsafe impl Sync for RingFill {}

impl RingFill {
    /// Maps the consumer and producer pages of ring buffer map `fd` read-only. The mapping
    /// keeps the map alive on its own, so `fd` may be closed afterwards.
    pub fn new(fd: RawFd, size: u64) -> std::io::Result<Self> {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as usize;
        let len = 2 * page;
        // SAFETY: a fresh shared read-only mapping of two pages of a ring buffer map, which the
        // kernel allows at any offset when not writable.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RingFill {
            base,
            len,
            page,
            size,
        })
    }

    fn pos(&self, off: usize) -> u64 {
        // SAFETY: `off` is 0 or one page into a live two-page mapping; the kernel and aya update
        // these words atomically.
        unsafe {
            (*(self.base.cast::<u8>().add(off) as *const std::sync::atomic::AtomicU64))
                .load(std::sync::atomic::Ordering::Acquire)
        }
    }

    /// Bytes queued (committed or still being written) and not yet consumed.
    pub fn used(&self) -> u64 {
        let consumer = self.pos(0);
        let producer = self.pos(self.page);
        producer.saturating_sub(consumer).min(self.size)
    }
}

impl Drop for RingFill {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Whether the probe is doing its job, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Hooks not attached yet, or the drain loop has not run.
    Starting,
    /// The drain loop has not turned for this long (and the sink write blocked for so long,
    /// the usual cause).
    DrainStalled(Duration, Option<Duration>),
    /// A sink write has been blocked for this long.
    SinkStalled(Duration),
}

impl Health {
    pub fn of(stats: &Stats, stall_after: Duration) -> Health {
        let now = BootClock::now_boot_ns();
        let beat = stats.drain_heartbeat_ns.load(Relaxed);
        if beat == 0 {
            return Health::Starting;
        }
        let drain_age = Duration::from_nanos(now.saturating_sub(beat));
        let since = stats.sink_write_since_ns.load(Relaxed);
        let blocked = (since != 0)
            .then(|| Duration::from_nanos(now.saturating_sub(since)))
            .filter(|b| *b > stall_after);
        if drain_age > stall_after {
            return Health::DrainStalled(drain_age, blocked);
        }
        match blocked {
            Some(b) => Health::SinkStalled(b),
            None => Health::Ok,
        }
    }

    pub fn is_ok(&self) -> bool {
        *self == Health::Ok
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Ok => write!(f, "ok"),
            Health::Starting => write!(f, "starting: hooks not attached or drain not running yet"),
            Health::DrainStalled(d, None) => write!(f, "ring buffer drain stalled for {d:.1?}"),
            Health::DrainStalled(d, Some(b)) => write!(
                f,
                "ring buffer drain stalled for {d:.1?}; sink write blocked for {b:.1?}"
            ),
            Health::SinkStalled(d) => write!(f, "sink write blocked for {d:.1?}"),
        }
    }
}

/// Live values of one `tprobe run`, read at scrape time.
pub struct RunCollector {
    pub stats: Arc<Stats>,
    pub ring: Option<Arc<RingFill>>,
    pub queue_capacity: u64,
    /// (hook, program, attached)
    pub hooks: Vec<(String, String, bool)>,
    pub stall_after: Duration,
    /// Executable hashing, when on.
    pub hashes: Option<Arc<crate::enrich::hash::HashStats>>,
}

impl std::fmt::Debug for RunCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCollector").finish_non_exhaustive()
    }
}

fn one<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    m: M,
) -> std::fmt::Result {
    let me = enc.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(me)
}

impl Collector for RunCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.stats;
        {
            let mut f = enc.encode_descriptor(
                "tprobe_build_info",
                "tprobe version",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(1i64)
                .encode(f.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        }
        {
            let mut f = enc.encode_descriptor(
                "tprobe_events",
                "Events written, by kind",
                None,
                MetricType::Counter,
            )?;
            for k in EventKind::ALL {
                let v = s.emitted[*k as usize].load(Relaxed);
                ConstCounter::new(v).encode(f.encode_family(&[("kind", k.name())])?)?;
            }
        }
        one(
            &mut enc,
            "tprobe_lines",
            "Lines written, probe.* included",
            ConstCounter::new(s.lines.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "tprobe_ringbuf_records",
            "Records read from the ring buffer",
            ConstCounter::new(s.drained.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "tprobe_decode_unknown_kinds",
            "Records of a kind this build does not know",
            ConstCounter::new(s.unknown_kinds.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "tprobe_filtered",
            "Events dropped by userspace filters (asked for, not a loss)",
            ConstCounter::new(s.filtered.load(Relaxed)),
        )?;
        if let Some(r) = &self.ring {
            let used = r.used();
            one(
                &mut enc,
                "tprobe_ringbuf_size_bytes",
                "Ring buffer size",
                ConstGauge::new(r.size as i64),
            )?;
            one(
                &mut enc,
                "tprobe_ringbuf_used_bytes",
                "Bytes queued in the ring buffer, not yet read",
                ConstGauge::new(used as i64),
            )?;
            one(
                &mut enc,
                "tprobe_ringbuf_fill_ratio",
                "Fraction of the ring buffer in use",
                ConstGauge::new(used as f64 / r.size.max(1) as f64),
            )?;
        }
        if let Some(h) = &self.hashes {
            for (name, help, v) in [
                ("tprobe_hash_requests", "Executables to hash (one per exec image, and per script).", &h.requests),
                ("tprobe_hash_cache_hits", "Hash requests answered from the (dev, inode, size, mtime, ctime) cache.", &h.cache_hits),
                ("tprobe_hash_files_hashed", "Files read and hashed.", &h.hashed),
                ("tprobe_hash_skipped", "Files not hashed on purpose (larger than --hash-max-size).", &h.skipped),
                ("tprobe_hash_errors", "Files that could not be hashed truthfully (deleted, replaced, root unavailable, ...).", &h.errors),
                ("tprobe_hash_exec_without_hash", "Exec events sent before their hash was ready (--hash-wait).", &h.exec_without_hash),
            ] {
                one(&mut enc, name, help, ConstCounter::new(v.load(Relaxed)))?;
            }
            let req = h.requests.load(Relaxed);
            one(
                &mut enc,
                "tprobe_hash_cache_hit_ratio",
                "Share of hash requests answered from the cache.",
                ConstGauge::new(if req == 0 {
                    0.0
                } else {
                    h.cache_hits.load(Relaxed) as f64 / req as f64
                }),
            )?;
        }
        one(
            &mut enc,
            "tprobe_process_table_entries",
            "Processes in the enrichment cache",
            ConstGauge::new(s.process_table.load(Relaxed) as i64),
        )?;
        one(
            &mut enc,
            "tprobe_pipeline_queue_batches",
            "Batches queued between the drain and the sink thread",
            ConstGauge::new(s.queued_batches.load(Relaxed) as i64),
        )?;
        one(
            &mut enc,
            "tprobe_pipeline_queue_events",
            "Events in those batches (the drain waits at tprobe_pipeline_queue_capacity_events)",
            ConstGauge::new(s.queued_events.load(Relaxed) as i64),
        )?;
        one(
            &mut enc,
            "tprobe_pipeline_queue_capacity_events",
            "Events that queue may hold",
            ConstGauge::new(s.queue_events_max.load(Relaxed) as i64),
        )?;
        one(
            &mut enc,
            "tprobe_pipeline_queue_capacity_batches",
            "Capacity of that queue",
            ConstGauge::new(self.queue_capacity as i64),
        )?;
        {
            let mut f = enc.encode_descriptor(
                "tprobe_hook_attached",
                "1 when the hook is attached",
                None,
                MetricType::Gauge,
            )?;
            for (hook, program, attached) in &self.hooks {
                ConstGauge::new(*attached as i64).encode(
                    f.encode_family(&[("hook", hook.as_str()), ("program", program.as_str())])?,
                )?;
            }
        }
        let now = BootClock::now_boot_ns();
        let beat = s.drain_heartbeat_ns.load(Relaxed);
        if beat != 0 {
            one(
                &mut enc,
                "tprobe_drain_heartbeat_age_seconds",
                "Time since the drain loop last turned",
                ConstGauge::new(now.saturating_sub(beat) as f64 / 1e9),
            )?;
        }
        let since = s.sink_write_since_ns.load(Relaxed);
        one(
            &mut enc,
            "tprobe_sink_write_blocked_seconds",
            "How long the current sink write has been in progress (0 when idle)",
            ConstGauge::new(if since == 0 {
                0.0
            } else {
                now.saturating_sub(since) as f64 / 1e9
            }),
        )?;
        one(
            &mut enc,
            "tprobe_healthy",
            "1 when /healthz reports ok",
            ConstGauge::new(Health::of(s, self.stall_after).is_ok() as i64),
        )
    }
}

/// The exposition text: the run's collector (if any), then the process-wide families.
pub fn render(run: Option<&Registry>) -> String {
    let mut out = String::new();
    if let Some(r) = run {
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, r);
    }
    let g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &g.registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_shared_and_labelled() {
        let a = counter("tprobe_test_things", "Things", &[("x", "1")]);
        let b = counter("tprobe_test_things", "ignored", &[("x", "2")]);
        a.inc();
        b.inc_by(3);
        counter("tprobe_test_things", "Things", &[("x", "1")]).inc();
        let text = render(None);
        assert_eq!(
            text.matches("# TYPE tprobe_test_things_total counter")
                .count(),
            1
        );
        assert!(
            text.contains("tprobe_test_things_total{x=\"1\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tprobe_test_things_total{x=\"2\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn run_collector_renders_stats() {
        let stats = Arc::new(Stats::default());
        stats.count_emitted(EventKind::ProcessExec);
        let mut reg = Registry::default();
        reg.register_collector(Box::new(RunCollector {
            stats: stats.clone(),
            ring: None,
            queue_capacity: 8,
            hooks: vec![("raw_tracepoint/x".into(), "x".into(), true)],
            stall_after: Duration::from_secs(5),
            hashes: Some(Default::default()),
        }));
        let text = render(Some(&reg));
        assert!(text.contains("tprobe_hash_cache_hit_ratio 0"), "{text}");
        assert!(
            text.contains("tprobe_events_total{kind=\"process.exec\"} 1"),
            "{text}"
        );
        assert!(text.contains("tprobe_events_total{kind=\"process.exit\"} 0"));
        assert!(text.contains("tprobe_hook_attached{hook=\"raw_tracepoint/x\",program=\"x\"} 1"));
        assert!(text.contains("tprobe_healthy 0"), "not started yet: {text}");
    }

    #[test]
    fn health_states() {
        let s = Stats::default();
        let stall = Duration::from_millis(500);
        assert_eq!(Health::of(&s, stall), Health::Starting);
        s.drain_heartbeat_ns
            .store(BootClock::now_boot_ns(), Relaxed);
        assert_eq!(Health::of(&s, stall), Health::Ok);
        s.sink_write_since_ns
            .store(BootClock::now_boot_ns() - 2_000_000_000, Relaxed);
        assert!(matches!(Health::of(&s, stall), Health::SinkStalled(_)));
        s.drain_heartbeat_ns
            .store(BootClock::now_boot_ns() - 2_000_000_000, Relaxed);
        let h = Health::of(&s, stall);
        assert!(matches!(h, Health::DrainStalled(_, Some(_))), "{h:?}");
        assert!(h.to_string().contains("sink write blocked"), "{h}");
    }
}
