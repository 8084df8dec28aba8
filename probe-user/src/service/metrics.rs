//! Counters shared by every stage. Cheap to bump (relaxed atomics), read for `probe.stop`.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use probe_common::{EventKind, KIND_SLOTS};

pub struct Stats {
    /// Events written to the sink, per kernel kind.
    pub emitted: [AtomicU64; KIND_SLOTS as usize],
    /// Every line written, `probe.*` included.
    pub lines: AtomicU64,
    /// Records the decoder rejected (malformed or unknown kind).
    pub decode_errors: AtomicU64,
    pub unknown_kinds: AtomicU64,
    /// Ring buffer records drained.
    pub drained: AtomicU64,
    /// Events lost in the kernel (ring buffer full), summed over kinds.
    pub ringbuf_lost: AtomicU64,
    /// Events dropped by userspace filters (not losses: the user asked for it).
    pub filtered: AtomicU64,
    /// Payloads sent to port 53 that did not parse as a DNS query (skipped).
    pub dns_malformed: AtomicU64,
    /// Entries in the process table (the enrichment cache), set by the pipeline.
    pub process_table: AtomicU64,
    /// Batches queued between the drain and the pipeline thread.
    pub queued_batches: AtomicU64,
    /// Events in those batches: the drain waits while there are `queue_events_max`.
    pub queued_events: AtomicU64,
    /// `limits.queue_events` ([`QUEUE_EVENTS`] by default).
    pub queue_events_max: AtomicU64,
    /// Woken each time the pipeline has taken a batch off the queue.
    pub queue_room: tokio::sync::Notify,
    /// Boot-clock ns of the drain loop's last turn (0 until it first runs): `/healthz`.
    pub drain_heartbeat_ns: AtomicU64,
    /// Boot-clock ns at which the current sink write started, 0 when no write is in progress.
    pub sink_write_since_ns: AtomicU64,
    /// Loss counters of each sink that can lose records (name, counters).
    pub sinks: crate::sink::fanout::SinkLossRegistry,
    /// `--follow` descendants that did not fit in the kernel pid set.
    pub follow_lost: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            emitted: std::array::from_fn(|_| AtomicU64::new(0)),
            lines: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            unknown_kinds: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            ringbuf_lost: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            dns_malformed: AtomicU64::new(0),
            process_table: AtomicU64::new(0),
            queued_batches: AtomicU64::new(0),
            queued_events: AtomicU64::new(0),
            queue_events_max: AtomicU64::new(QUEUE_EVENTS),
            queue_room: tokio::sync::Notify::new(),
            drain_heartbeat_ns: AtomicU64::new(0),
            sink_write_since_ns: AtomicU64::new(0),
            sinks: Default::default(),
            follow_lost: AtomicU64::new(0),
        }
    }
}

/// Decoded events that may wait for the pipeline, by default: about 36 MiB when full (0.3 KiB
/// each). A bound in batches alone let 1024 batches of up to a whole ring buffer each queue.
/// Past it the drain waits, the ring buffer fills and the kernel counts what it drops
/// (`probe.loss`). W2's storm (200k opens in 0.6 s) fits with no loss; 32768 lost a third.
pub const QUEUE_EVENTS: u64 = 131_072;

impl Stats {
    /// A batch of `n` events handed to the pipeline's queue, by any sender (the drain, the
    /// flow tracker). An empty batch only wakes the pipeline and is counted nowhere.
    pub fn queued(&self, n: usize) {
        if n > 0 {
            self.queued_batches.fetch_add(1, Relaxed);
            self.queued_events.fetch_add(n as u64, Relaxed);
        }
    }

    /// A send that failed (the pipeline is gone): what [`Stats::queued`] counted is taken back.
    pub fn unqueued(&self, n: usize) {
        if n > 0 {
            self.queued_batches.fetch_sub(1, Relaxed);
            self.queued_events.fetch_sub(n as u64, Relaxed);
        }
    }

    /// The pipeline took a batch of `n` events off the queue.
    pub fn dequeued(&self, n: usize) {
        self.unqueued(n);
        self.queue_room.notify_one();
    }

    /// Returns once fewer than `queue_events_max` events are queued.
    pub async fn wait_queue_room(&self) {
        while self.queued_events.load(Relaxed) >= self.queue_events_max.load(Relaxed) {
            self.queue_room.notified().await;
        }
    }

    pub fn count_emitted(&self, kind: EventKind) {
        if let Some(c) = self.emitted.get(kind as usize) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Emitted events per kind name, for the stop report.
    pub fn emitted_by_kind(&self) -> serde_json::Map<String, serde_json::Value> {
        EventKind::ALL
            .iter()
            .map(|k| {
                (
                    k.name().to_owned(),
                    self.emitted[*k as usize].load(Relaxed).into(),
                )
            })
            .collect()
    }
}
