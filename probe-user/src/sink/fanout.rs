//! Several sinks at once. Local sinks (stdout, files) are written inline on the pipeline thread;
//! network sinks (OTLP, syslog) run on their own threads behind bounded queues, so a slow or
//! absent receiver never holds the others back.
use std::sync::{Arc, Mutex};

use super::{
    config::SinkConfig,
    otlp,
    queue::{LossCounters, Threaded},
    rotate::RotatingFile,
    stdout::Stdout,
    syslog, Sink, SinkError,
};

type Reported = std::collections::HashMap<(String, &'static str), u64>;

/// The loss counters of every sink, for `probe.loss` and `probe.stop`, and how much of each
/// has been reported in `probe.loss` events already (the run loop polls it every second, the
/// pipeline once more before `probe.stop`).
#[derive(Default)]
pub struct SinkLossRegistry(Mutex<Vec<(String, Arc<LossCounters>)>>, Mutex<Reported>);

impl SinkLossRegistry {
    pub fn register(&self, name: String) -> Arc<LossCounters> {
        let c = Arc::new(LossCounters::default());
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name, c.clone()));
        c
    }

    /// (sink name, source, total) for every counter.
    pub fn totals(&self) -> Vec<(String, &'static str, u64)> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.iter()
            .flat_map(|(n, c)| c.snapshot().map(|(src, v)| (n.clone(), src, v)))
            .collect()
    }

    /// Totals per source over all sinks, for the `probe.stop` summary.
    pub fn by_source(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (_, src, v) in self.totals() {
            let cur = m.get(src).and_then(|x| x.as_u64()).unwrap_or(0);
            m.insert(src.into(), (cur + v).into());
        }
        m
    }

    /// Growth since the last call: (sink name, source, count) for `probe.loss` events.
    pub fn poll(&self) -> Vec<(String, &'static str, u64)> {
        let mut last = self.1.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (name, src, total) in self.totals() {
            let prev = last.insert((name.clone(), src), total).unwrap_or(0);
            if total > prev {
                out.push((name, src, total - prev));
            }
        }
        out
    }
}

pub struct Fanout {
    sinks: Vec<(String, Box<dyn Sink>)>,
}

impl Sink for Fanout {
    fn write_batch(&mut self, records: &[u8]) -> Result<(), SinkError> {
        let mut i = 0;
        while i < self.sinks.len() {
            match self.sinks[i].1.write_batch(records) {
                Ok(()) => i += 1,
                // A reader that left (`| head`) ends only its own sink while others remain.
                Err(SinkError::Closed) if self.sinks.len() > 1 => {
                    log::info!("{}: reader gone, sink closed", self.sinks[i].0);
                    self.sinks.remove(i);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_final(&mut self, records: &[u8]) -> Result<(), SinkError> {
        let mut i = 0;
        while i < self.sinks.len() {
            match self.sinks[i].1.write_final(records) {
                Ok(()) => i += 1,
                Err(SinkError::Closed) if self.sinks.len() > 1 => {
                    self.sinks.remove(i);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Opens every configured sink (stdout when none is).
pub fn build(
    cfgs: &[SinkConfig],
    host: &str,
    losses: &SinkLossRegistry,
) -> std::io::Result<Box<dyn Sink>> {
    let mut sinks: Vec<(String, Box<dyn Sink>)> = Vec::new();
    let default = [SinkConfig::Stdout];
    let cfgs = if cfgs.is_empty() { &default[..] } else { cfgs };
    for c in cfgs {
        let name = c.name();
        let sink: Box<dyn Sink> = match c {
            SinkConfig::Stdout => Box::new(Stdout),
            SinkConfig::File(f) => Box::new(RotatingFile::open(f.clone()).map_err(|e| {
                std::io::Error::new(e.kind(), format!("opening {}: {e}", f.path.display()))
            })?),
            SinkConfig::Otlp(o) => {
                let (o, h) = (o.clone(), host.to_owned());
                let counters = losses.register(name.clone());
                Box::new(Threaded::spawn(
                    name.clone(),
                    o.queue_size,
                    counters,
                    move |q, l| otlp::worker(o, h, q, l),
                )?)
            }
            SinkConfig::Syslog(s) => {
                let (s, h) = (s.clone(), host.to_owned());
                let counters = losses.register(name.clone());
                Box::new(Threaded::spawn(
                    name.clone(),
                    s.queue_size,
                    counters,
                    move |q, l| syslog::worker(s, h, q, l),
                )?)
            }
        };
        sinks.push((name, sink));
    }
    if sinks.len() == 1 {
        return Ok(sinks.pop().map(|s| s.1).expect("one sink"));
    }
    Ok(Box::new(Fanout { sinks }))
}
