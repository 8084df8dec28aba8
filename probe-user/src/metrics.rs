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
            follow_lost: AtomicU64::new(0),
        }
    }
}

impl Stats {
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
