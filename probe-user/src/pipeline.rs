//! The userspace stages after decode, on their own thread: enrich -> filter -> encode -> sink.
//! Blocking writes to a slow reader therefore never stall the ring buffer drain.
use std::sync::{atomic::Ordering::Relaxed, Arc};

use tokio::sync::{mpsc, watch};

use crate::{
    encode::Encoder,
    enrich::container::ContainerStage,
    enrich::{process::ProcessTable, users::Users},
    event::{Body, Event},
    metrics::Stats,
    sink::{Sink, SinkError},
};

/// Why the run should end, as seen from the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// `--count` events were written.
    CountReached,
    /// The reader closed the output (EPIPE).
    ReaderGone,
    /// Writing failed for another reason.
    SinkFailed,
}

pub struct Pipeline {
    pub table: ProcessTable,
    pub users: Users,
    pub encoder: Box<dyn Encoder>,
    pub sink: Box<dyn Sink>,
    pub stats: Arc<Stats>,
    /// Stop after this many non-`probe.*` events.
    pub count: Option<u64>,
    /// Kinds the user asked for; others reach the pipeline only to keep the process table
    /// right and are dropped after enrichment.
    pub emit: Vec<probe_common::EventKind>,
    /// Container enrichment and its hold queue (absent with `--no-containers`).
    pub containers: Option<ContainerStage>,
    /// Path resolution and prefix filters for file events.
    pub file: crate::file::FileStage,
    seq: u64,
    data_events: u64,
    buf: Vec<u8>,
}

impl Pipeline {
    pub fn new(
        table: ProcessTable,
        encoder: Box<dyn Encoder>,
        sink: Box<dyn Sink>,
        stats: Arc<Stats>,
        count: Option<u64>,
        emit: Vec<probe_common::EventKind>,
    ) -> Self {
        Pipeline {
            emit,
            file: Default::default(),
            table,
            users: Users::default(),
            encoder,
            sink,
            stats,
            count,
            containers: None,
            seq: 0,
            data_events: 0,
            buf: Vec::with_capacity(1 << 16),
        }
    }

    fn limit_reached(&self) -> bool {
        self.count.is_some_and(|c| self.data_events >= c)
    }

    fn process(&mut self, mut ev: Event, stop: &watch::Sender<Stop>) {
        let kind = ev.data_kind();
        if kind.is_some() && self.limit_reached() {
            return;
        }
        self.table.enrich(&mut ev);
        if kind.is_some_and(|k| !self.emit.contains(&k)) {
            return;
        }
        if !self.file.apply(&mut ev) {
            return;
        }
        if let Some(t) = &ev.task {
            ev.user = self.users.name(t.uid);
        }
        let mut ready = Vec::new();
        match &mut self.containers {
            Some(c) => c.push(ev, &mut ready),
            None => ready.push(ev),
        }
        for ev in ready {
            self.emit(ev, stop);
        }
    }

    /// Events the container stage let go (lookup done or time up), in arrival order.
    fn release_held(&mut self, force: bool, stop: &watch::Sender<Stop>) {
        let mut ready = Vec::new();
        if let Some(c) = &mut self.containers {
            c.release(force, &mut ready);
        }
        for ev in ready {
            self.emit(ev, stop);
        }
    }

    /// Numbers, encodes and counts one event.
    fn emit(&mut self, mut ev: Event, stop: &watch::Sender<Stop>) {
        let kind = ev.task.as_ref().map(|t| t.kind);
        if kind.is_some() && self.limit_reached() {
            return;
        }
        if let Body::Probe { stop: true, info } = &mut ev.body {
            self.stop_report(info);
        }
        self.seq += 1;
        self.encoder.encode(&ev, self.seq, &mut self.buf);
        self.stats.lines.fetch_add(1, Relaxed);
        if let Some(k) = kind {
            self.stats.count_emitted(k);
            self.data_events += 1;
            if self.limit_reached() {
                let _ = stop.send(Stop::CountReached);
            }
        }
    }

    /// Completes `probe.stop` with the counters as they stand when it is written.
    fn stop_report(&self, info: &mut serde_json::Value) {
        if let Some(o) = info.as_object_mut() {
            let s = &self.stats;
            o.insert("events".into(), s.emitted_by_kind().into());
            o.insert("lines".into(), (s.lines.load(Relaxed) + 1).into());
            o.insert(
                "losses".into(),
                serde_json::json!({
                    "ringbuf": s.ringbuf_lost.load(Relaxed),
                    "decode": s.decode_errors.load(Relaxed),
                    "dns": s.dns_malformed.load(Relaxed),
                }),
            );
            // Sink losses by source (queue, sink, spool), when any sink can lose records.
            if let Some(l) = o.get_mut("losses").and_then(|l| l.as_object_mut()) {
                l.extend(s.sinks.by_source());
            }
            o.insert("drained".into(), s.drained.load(Relaxed).into());
            o.insert("process_table".into(), self.table.len().into());
            if let Some(c) = &self.containers {
                o.insert("containers".into(), c.resolver.report());
            }
        }
    }

    /// Runs until the sender side closes; returns a sink error other than EPIPE.
    pub fn run(
        mut self,
        mut rx: mpsc::Receiver<Vec<Event>>,
        stop: watch::Sender<Stop>,
    ) -> Result<(), SinkError> {
        loop {
            let batch = match &self.containers {
                Some(c) => c.recv(&mut rx),
                None => rx.blocking_recv(),
            };
            let Some(batch) = batch else {
                // Closed: nothing else can come, let every held event go.
                self.release_held(true, &stop);
                if !self.buf.is_empty() {
                    match self.sink.write_batch(&self.buf) {
                        Ok(()) | Err(SinkError::Closed) => {}
                        Err(e) => return Err(e),
                    }
                }
                break;
            };
            // An empty batch is the hold queue's timer, not a queued batch.
            if !batch.is_empty() {
                self.stats.queued_batches.fetch_sub(1, Relaxed);
            }
            for ev in batch {
                self.process(ev, &stop);
            }
            self.release_held(false, &stop);
            self.stats
                .process_table
                .store(self.table.len() as u64, Relaxed);
            if self.buf.is_empty() {
                continue;
            }
            // A write that stays in progress too long makes /healthz fail (stuck reader).
            self.stats
                .sink_write_since_ns
                .store(crate::clock::BootClock::now_boot_ns(), Relaxed);
            let written = self.sink.write_batch(&self.buf);
            self.stats.sink_write_since_ns.store(0, Relaxed);
            match written {
                Ok(()) => self.buf.clear(),
                Err(SinkError::Closed) => {
                    let _ = stop.send(Stop::ReaderGone);
                    return Ok(());
                }
                Err(e) => {
                    let _ = stop.send(Stop::SinkFailed);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
