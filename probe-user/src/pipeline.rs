//! The userspace stages after decode, on their own thread: enrich -> analyze -> filter ->
//! encode -> sink.
//! Blocking writes to a slow reader therefore never stall the ring buffer drain.
use std::sync::{atomic::Ordering::Relaxed, Arc};

use tokio::sync::{mpsc, watch};

use crate::{
    analyze::Analyzer,
    encode::{native::Native, Encoder},
    enrich::{
        container::{ContainerStage, Received},
        process::ProcessTable,
        users::Users,
    },
    event::{Body, Event},
    filter::{ContainerFacts, OutputFilter},
    service::metrics::Stats,
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

/// Encoded bytes that make the pipeline write before its batch is done.
const FLUSH_BYTES: usize = 256 << 10;

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
    /// Kinds the first stages let through: `emit` as of the newest reload, which the output
    /// stage takes over only once that reload's `probe.reload` reaches it.
    admit: Vec<probe_common::EventKind>,
    /// Reloads whose `probe.reload` is still in the hold stages, oldest first.
    switches: std::collections::VecDeque<Switch>,
    /// The run's end, found inside a stage (the old sink failed at a reload).
    ended: Option<Result<(), SinkError>>,
    /// Container enrichment and its hold queue (absent with `--no-containers`).
    pub containers: Option<ContainerStage>,
    /// Exec events held for their executable's hash (absent with `--no-hash`).
    pub hashes: Option<crate::enrich::hash::HashStage>,
    /// Runs the waits for held events (built on first need).
    waiter: Option<tokio::runtime::Runtime>,
    /// Path resolution and prefix filters for file events.
    pub paths: crate::enrich::paths::PathResolver,
    seq: u64,
    data_events: u64,
    buf: Vec<u8>,
    /// Userspace filters (what the kernel could not decide).
    pub filter: OutputFilter,
    control: Option<std::sync::mpsc::Receiver<Reload>>,
    pending: std::collections::VecDeque<Reload>,
    batches: u64,
    /// Events the container stage let go, reused from one event to the next.
    ready: Vec<Event>,
    /// The same for the events the hash stage lets go.
    hashed: Vec<Event>,
    /// Names of addresses from the DNS answers seen (per container).
    pub dns: crate::enrich::dns::DnsNames,
    /// Sigma rules and IoC lists; `None` when none are loaded.
    pub analyzer: Option<Analyzer>,
    /// `--events` shows alerts.
    pub alerts: bool,
    /// Kinds the analyzer needs (analysed, then dropped unless `emit` has them).
    analyzed: Vec<probe_common::EventKind>,
    /// The native record of an event, for the fields rules read through it.
    render: Option<Native>,
    alert_buf: Vec<Event>,
    /// `probe.stop`, written last, once every other record has reached the sinks.
    stop_event: Option<Event>,
    /// Actions bound to rules and the exec deny list; `None` when none are configured.
    pub respond: Option<crate::analyze::respond::Responder>,
    /// Kinds the respond stage needs (kept like the analyzer's).
    respond_kinds: Vec<probe_common::EventKind>,
}

/// What a reload changes where its `probe.reload` is written: the events that came before it
/// and were held for a hash or a container lookup still go out under the old settings.
struct Switch {
    filter: OutputFilter,
    emit: Vec<probe_common::EventKind>,
    alerts: bool,
    analyzer: Option<Option<Analyzer>>,
    sink: Option<Box<dyn Sink>>,
}

/// New settings for a running pipeline (SIGHUP). Applied between two batches, right after
/// the `after_batches`-th one, so the swap lands exactly where the kernel switched.
pub struct Reload {
    pub after_batches: u64,
    pub filter: OutputFilter,
    pub emit: Vec<probe_common::EventKind>,
    pub alerts: bool,
    /// New rules and lists; `None` keeps the current ones.
    pub analyzer: Option<Option<Analyzer>>,
    /// The new sink set; `None` keeps the current one.
    pub sink: Option<Box<dyn Sink>>,
    /// `probe.reload`, written first with the new settings.
    pub event: Event,
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
            admit: emit.clone(),
            emit,
            switches: Default::default(),
            ended: None,
            paths: Default::default(),
            table,
            users: Users::default(),
            encoder,
            sink,
            stats,
            count,
            containers: None,
            hashes: None,
            waiter: None,
            seq: 0,
            data_events: 0,
            buf: Vec::with_capacity(1 << 16),
            filter: OutputFilter::default(),
            control: None,
            pending: Default::default(),
            batches: 0,
            ready: Vec::new(),
            hashed: Vec::new(),
            dns: Default::default(),
            analyzer: None,
            alerts: true,
            analyzed: Vec::new(),
            render: None,
            alert_buf: Vec::new(),
            stop_event: None,
            respond: None,
            respond_kinds: Vec::new(),
        }
    }

    /// Runs `r` on the alerts and execs (see `analyze::respond`).
    pub fn with_responder(mut self, r: Option<crate::analyze::respond::Responder>) -> Self {
        self.respond_kinds = r.as_ref().map(|r| r.kinds()).unwrap_or_default();
        self.respond = r;
        self
    }

    /// Runs `analyzer` on the events it needs; `render` gives them their native record.
    pub fn with_analyzer(
        mut self,
        analyzer: Option<Analyzer>,
        alerts: bool,
        render: Native,
    ) -> Self {
        self.analyzed = analyzer.as_ref().map(Analyzer::kinds).unwrap_or_default();
        self.set_analyzer(analyzer);
        self.alerts = alerts;
        self.render = Some(render);
        self
    }

    fn set_analyzer(&mut self, mut analyzer: Option<Analyzer>) {
        // Baselines: what the running analyzer learned carries over to the new one.
        let running = self.analyzer.as_mut().and_then(Analyzer::take_baseline);
        if let (Some(a), Some(b)) = (&mut analyzer, running) {
            a.put_baseline(Some(b));
        }
        self.analyzer = analyzer.filter(|a| !a.is_noop());
    }

    /// Accepts [`Reload`]s on `rx` while running.
    pub fn with_control(mut self, rx: std::sync::mpsc::Receiver<Reload>) -> Self {
        self.control = Some(rx);
        self
    }

    /// Applies the reloads due before the next batch: the first stages take the new kinds
    /// now, where the kernel switched, and the output stage the rest when the reload's
    /// `probe.reload` reaches it behind the events held before it.
    fn apply_reloads(&mut self, stop: &watch::Sender<Stop>) {
        if let Some(rx) = &self.control {
            self.pending.extend(rx.try_iter());
        }
        while self
            .pending
            .front()
            .is_some_and(|r| r.after_batches <= self.batches)
        {
            let Some(r) = self.pending.pop_front() else {
                break;
            };
            self.admit.clone_from(&r.emit);
            if let Some(a) = &r.analyzer {
                self.analyzed = a.as_ref().map(Analyzer::kinds).unwrap_or_default();
            }
            self.switches.push_back(Switch {
                filter: r.filter,
                emit: r.emit,
                alerts: r.alerts,
                analyzer: r.analyzer,
                sink: r.sink,
            });
            self.process(r.event, stop);
        }
    }

    /// The output stage takes a reload's settings; the lines before it go to the old sink.
    fn switch(&mut self, s: Switch, stop: &watch::Sender<Stop>) {
        self.filter = s.filter;
        self.emit = s.emit;
        self.alerts = s.alerts;
        if let Some(a) = s.analyzer {
            self.set_analyzer(a);
        }
        if let Some(sink) = s.sink {
            if let Some(end) = self.flush(stop) {
                self.ended.get_or_insert(end);
                self.buf.clear();
            }
            self.sink = sink;
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
        crate::enrich::targets::resolve(&mut self.table, &mut ev);
        // Kinds nobody asked to see reach the rest of the stages only when rules need them.
        if kind.is_some_and(|k| {
            !self.admit.contains(&k)
                && !self.analyzed.contains(&k)
                && !self.respond_kinds.contains(&k)
        }) {
            return;
        }
        if !self.paths.apply(&mut ev) {
            return;
        }
        if let Some(t) = &ev.task {
            ev.user = self.users.name(t.uid);
        }
        // A buffer kept across events: a new Vec here was one allocation per event.
        let mut ready = std::mem::take(&mut self.ready);
        match &mut self.hashes {
            Some(h) => {
                let mut hashed = std::mem::take(&mut self.hashed);
                h.push(ev, &mut hashed);
                for ev in hashed.drain(..) {
                    self.contain(ev, &mut ready);
                }
                self.hashed = hashed;
            }
            None => self.contain(ev, &mut ready),
        }
        for ev in ready.drain(..) {
            self.emit(ev, stop);
        }
        self.ready = ready;
    }

    /// The container step of an event the hash stage let go.
    fn contain(&mut self, ev: Event, ready: &mut Vec<Event>) {
        match &mut self.containers {
            Some(c) => c.push(ev, ready),
            None => ready.push(ev),
        }
    }

    /// Events the hold stages let go (hash or lookup done, or time up), in arrival order.
    fn release_held(&mut self, force: bool, stop: &watch::Sender<Stop>) {
        let mut hashed = Vec::new();
        if let Some(h) = &mut self.hashes {
            h.release(force, &mut hashed);
        }
        let mut ready = Vec::new();
        for ev in hashed {
            self.contain(ev, &mut ready);
        }
        if let Some(c) = &mut self.containers {
            c.release(force, &mut ready);
        }
        for ev in ready {
            self.emit(ev, stop);
        }
    }

    /// Blocks until a batch arrives, a held event's hash or lookup is done, or the first
    /// held event's time is up.
    fn recv(&mut self, rx: &mut mpsc::Receiver<Vec<Event>>) -> Received {
        let deadline = [
            self.hashes.as_ref().and_then(|h| h.deadline()),
            self.containers.as_ref().and_then(|c| c.deadline()),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(deadline) = deadline else {
            return Received::from(rx.blocking_recv());
        };
        if self.waiter.is_none() {
            match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => self.waiter = Some(rt),
                // No timer: poll instead of sleeping.
                Err(_) => return Received::from(rx.try_recv().ok()),
            }
        }
        let hash_done = self.hashes.as_ref().map(|h| h.done.clone());
        let container_done = self.containers.as_ref().map(|c| c.resolver.clone());
        let rt = self.waiter.as_ref().expect("built above");
        rt.block_on(async {
            let hashed = async {
                match &hash_done {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            let looked_up = async {
                match &container_done {
                    Some(r) => r.done.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                b = rx.recv() => Received::from(b),
                _ = hashed => Received::Timer,
                _ = looked_up => Received::Timer,
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => Received::Timer,
            }
        })
    }

    /// Applies the userspace filters (container metadata is known by now), then numbers,
    /// encodes and counts one event.
    fn emit(&mut self, mut ev: Event, stop: &watch::Sender<Stop>) {
        if matches!(ev.body, Body::Reload { .. }) {
            if let Some(s) = self.switches.pop_front() {
                self.switch(s, stop);
            }
        }
        let kind = ev.data_kind();
        if kind.is_some() && self.limit_reached() {
            return;
        }
        // Here, where the container is known: answers are remembered per container.
        self.dns.apply(&mut ev);
        let wanted = kind.is_none_or(|k| self.emit.contains(&k));
        let shown = wanted && (kind.is_none() || self.passes_filter(&ev));
        if wanted && !shown {
            self.stats.filtered.fetch_add(1, Relaxed);
        }
        if shown && matches!(ev.body, Body::Probe { stop: true, .. }) {
            self.stop_event = Some(ev);
            return;
        }
        // Analysis sees every event it needs; the output shows only what was asked.
        let mut alerts = std::mem::take(&mut self.alert_buf);
        if let (Some(a), Some(r), Some(_)) = (&mut self.analyzer, &self.render, kind) {
            let seq = shown.then_some(self.seq + 1);
            a.analyze(&ev, seq, r.epoch_secs(ev.ts_ns), r, &mut alerts);
        }
        if shown {
            self.write(&ev, kind, stop);
        }
        let mut responses = Vec::new();
        for a in alerts.drain(..) {
            let mut seq = None;
            if self.alerts && !self.limit_reached() && self.passes_filter(&a) {
                self.write(&a, None, stop);
                seq = Some(self.seq);
                self.data_events += 1;
                if self.limit_reached() {
                    let _ = stop.send(Stop::CountReached);
                }
            }
            if let Some(r) = &mut self.respond {
                r.on_alert(&a, seq, &mut responses);
            }
        }
        self.alert_buf = alerts;
        if let (Some(r), Some(_)) = (&mut self.respond, kind) {
            r.on_event(&ev, &mut responses);
        }
        // Every action is written, whatever the filters and --count say.
        for r in responses {
            self.write(&r, None, stop);
        }
    }

    /// The console's requests, answered between batches; at the end, every hold lifted.
    fn respond_control(&mut self, last: bool, stop: &watch::Sender<Stop>) {
        let Some(r) = &mut self.respond else { return };
        let mut out = Vec::new();
        r.poll_control(&mut out);
        if last {
            r.release_all(&mut out);
        }
        for ev in out {
            self.write(&ev, None, stop);
        }
    }

    fn passes_filter(&self, ev: &Event) -> bool {
        self.filter.is_noop()
            || self.filter.matches(ev, |e| {
                e.container.as_deref().map(ContainerFacts::from_info)
            })
    }

    /// Numbers, encodes and counts one event.
    fn write(
        &mut self,
        ev: &Event,
        kind: Option<probe_common::EventKind>,
        stop: &watch::Sender<Stop>,
    ) {
        self.seq += 1;
        self.encoder.encode(ev, self.seq, &mut self.buf);
        self.stats.lines.fetch_add(1, Relaxed);
        if let Some(k) = kind {
            self.stats.count_emitted(k);
            self.data_events += 1;
            if self.limit_reached() {
                let _ = stop.send(Stop::CountReached);
            }
        }
    }

    /// Writes `probe.stop` after everything else has been handed to the sinks, so its counters
    /// and a last `probe.loss` (sink losses since the run loop's last poll) cover every other
    /// record. The two go out past the network sinks' queue bounds: the records that account
    /// for losses are never lost to a full queue themselves.
    fn write_stop(&mut self, mut ev: Event, stop: &watch::Sender<Stop>) -> Result<(), SinkError> {
        let now = crate::clock::BootClock::now_boot_ns();
        for (sink, source, count) in self.stats.sinks.poll() {
            self.write(&Event::loss(now, source, sink, count, now), None, stop);
        }
        if let Body::Probe { info, .. } = &mut ev.body {
            // Profiles are written before the report that counts their writes.
            if let Some(a) = &mut self.analyzer {
                a.flush();
            }
            self.stop_report(info);
        }
        self.write(&ev, None, stop);
        let r = self.sink.write_final(&self.buf);
        self.buf.clear();
        match r {
            Ok(()) | Err(SinkError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Hands the encoded lines to the sink. `Some`: the run ends, with this result.
    fn flush(&mut self, stop: &watch::Sender<Stop>) -> Option<Result<(), SinkError>> {
        if self.buf.is_empty() {
            return None;
        }
        // A write that stays in progress too long makes /healthz fail (stuck reader).
        self.stats
            .sink_write_since_ns
            .store(crate::clock::BootClock::now_boot_ns(), Relaxed);
        let written = self.sink.write_batch(&self.buf);
        self.stats.sink_write_since_ns.store(0, Relaxed);
        match written {
            Ok(()) => {
                self.buf.clear();
                None
            }
            Err(SinkError::Closed) => {
                let _ = stop.send(Stop::ReaderGone);
                Some(Ok(()))
            }
            Err(e) => {
                let _ = stop.send(Stop::SinkFailed);
                Some(Err(e))
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
                    "follow": s.follow_lost.load(Relaxed),
                }),
            );
            // Sink losses by source (queue, sink, spool), when any sink can lose records.
            if let Some(l) = o.get_mut("losses").and_then(|l| l.as_object_mut()) {
                l.extend(s.sinks.by_source());
            }
            o.insert("drained".into(), s.drained.load(Relaxed).into());
            o.insert("filtered".into(), s.filtered.load(Relaxed).into());
            o.insert("process_table".into(), self.table.len().into());
            if let Some(c) = &self.containers {
                o.insert("containers".into(), c.resolver.report());
            }
            if let Some(h) = self.table.hasher() {
                o.insert("hashes".into(), h.stats.report());
            }
            if let Some(a) = &self.analyzer {
                o.insert("analyze".into(), a.report());
            }
            if let Some(r) = &self.respond {
                o.insert("respond".into(), r.report());
            }
        }
    }

    /// Runs until the sender side closes; returns a sink error other than EPIPE.
    pub fn run(
        mut self,
        mut rx: mpsc::Receiver<Vec<Event>>,
        stop: watch::Sender<Stop>,
    ) -> Result<(), SinkError> {
        // However the run ends (a panic too), a drain waiting for room must not wait on.
        struct Gone(Arc<Stats>);
        impl Drop for Gone {
            fn drop(&mut self) {
                self.0.queued_events.store(0, Relaxed);
                self.0.queue_room.notify_one();
            }
        }
        let _gone = Gone(self.stats.clone());
        loop {
            let got = self.recv(&mut rx);
            match got {
                Received::Closed => {
                    // Nothing else can come: let every held event go.
                    self.release_held(true, &stop);
                    if let Some(end) = self.ended.take() {
                        return end;
                    }
                    // Holds are lifted before the last line, which counts them.
                    self.respond_control(true, &stop);
                    if let Some(a) = &mut self.analyzer {
                        a.flush();
                    }
                    if !self.buf.is_empty() {
                        match self.sink.write_batch(&self.buf) {
                            Ok(()) | Err(SinkError::Closed) => {}
                            Err(e) => return Err(e),
                        }
                        self.buf.clear();
                    }
                    if let Some(ev) = self.stop_event.take() {
                        self.write_stop(ev, &stop)?;
                    }
                    break;
                }
                Received::Timer => {}
                Received::Batch(batch) => {
                    // Off the queue: its events wait no more (the bound is on waiting ones).
                    self.stats.dequeued(batch.len());
                    self.apply_reloads(&stop);
                    self.batches += 1;
                    for ev in batch {
                        self.process(ev, &stop);
                        if let Some(end) = self.ended.take() {
                            return end;
                        }
                        // Written as it grows: a drained batch can be tens of MB of lines,
                        // which otherwise sit in memory and leave the cache before the write.
                        if self.buf.len() >= FLUSH_BYTES {
                            if let Some(end) = self.flush(&stop) {
                                return end;
                            }
                        }
                    }
                }
            }
            self.release_held(false, &stop);
            if let Some(end) = self.ended.take() {
                return end;
            }
            self.respond_control(false, &stop);
            self.stats
                .process_table
                .store(self.table.len() as u64, Relaxed);
            if let Some(end) = self.flush(&stop) {
                return end;
            }
        }
        Ok(())
    }
}
