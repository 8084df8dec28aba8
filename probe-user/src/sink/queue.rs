//! A bounded record queue between the pipeline thread and a network sink's own thread, so a slow
//! or absent receiver never blocks the other sinks. Every record that does not make it is counted.
use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Condvar, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{Sink, SinkError};

/// Records a sink lost, by where they were lost (the `probe.loss` `source`).
#[derive(Default, Debug)]
pub struct LossCounters {
    /// The in-memory queue was full.
    pub queue: AtomicU64,
    /// The receiver refused them for good, or retries ran out.
    pub sink: AtomicU64,
    /// The on-disk spool was full.
    pub spool: AtomicU64,
}

impl LossCounters {
    pub fn snapshot(&self) -> [(&'static str, u64); 3] {
        [
            ("queue", self.queue.load(Relaxed)),
            ("sink", self.sink.load(Relaxed)),
            ("spool", self.spool.load(Relaxed)),
        ]
    }
}

struct State {
    items: VecDeque<Vec<u8>>,
    closed: bool,
}

pub struct Queue {
    state: Mutex<State>,
    cv: Condvar,
    cap: usize,
}

impl Queue {
    pub fn new(cap: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
            }),
            cv: Condvar::new(),
            cap: cap.max(1),
        }
    }

    /// Queues each `\n`-terminated record of `batch`; returns how many did not fit.
    pub fn push_lines(&self, batch: &[u8]) -> u64 {
        self.push(batch, self.cap)
    }

    /// Queues every record of `batch`, over the bound if need be (the run's last records).
    pub fn push_final(&self, batch: &[u8]) {
        self.push(batch, usize::MAX);
    }

    fn push(&self, batch: &[u8], cap: usize) -> u64 {
        let mut dropped = 0;
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for rec in batch.split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
            if g.items.len() >= cap {
                dropped += 1;
            } else {
                g.items.push_back(rec.to_vec());
            }
        }
        drop(g);
        self.cv.notify_one();
        dropped
    }

    /// Takes up to `max` records, waiting until `max` are there, the queue is closed or `wait`
    /// has passed. The flag says the queue is closed (and now empty when the batch is short).
    pub fn pop_batch(&self, max: usize, wait: Duration) -> (Vec<Vec<u8>>, bool) {
        let deadline = Instant::now() + wait;
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            if g.items.len() >= max || g.closed || now >= deadline {
                let n = g.items.len().min(max);
                let out: Vec<Vec<u8>> = g.items.drain(..n).collect();
                return (out, g.closed);
            }
            g = self
                .cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.cv.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed
    }

    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .items
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sleeps `d`, cut short to the shutdown deadline once the queue is closed. Returns false when
/// the deadline has passed (give up).
pub fn nap(d: Duration, closing_deadline: Option<Instant>) -> bool {
    match closing_deadline {
        Some(dl) => {
            let now = Instant::now();
            if now >= dl {
                return false;
            }
            std::thread::sleep(d.min(dl - now));
            Instant::now() < dl
        }
        None => {
            std::thread::sleep(d);
            true
        }
    }
}

/// The pipeline's handle on a sink running on its own thread.
pub struct Threaded {
    name: String,
    queue: Arc<Queue>,
    losses: Arc<LossCounters>,
    handle: Option<JoinHandle<()>>,
}

impl Threaded {
    /// Starts `work(queue, losses)` on a thread named after the sink.
    pub fn spawn(
        name: String,
        cap: usize,
        losses: Arc<LossCounters>,
        work: impl FnOnce(Arc<Queue>, Arc<LossCounters>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let queue = Arc::new(Queue::new(cap));
        let (q, l) = (queue.clone(), losses.clone());
        let handle = std::thread::Builder::new()
            .name(format!(
                "tprobe-{}",
                name.split(':').next().unwrap_or("sink")
            ))
            .spawn(move || work(q, l))?;
        Ok(Threaded {
            name,
            queue,
            losses,
            handle: Some(handle),
        })
    }
}

impl Sink for Threaded {
    fn write_batch(&mut self, records: &[u8]) -> Result<(), SinkError> {
        let dropped = self.queue.push_lines(records);
        if dropped > 0 {
            self.losses.queue.fetch_add(dropped, Relaxed);
            log::debug!("{}: queue full, {dropped} records dropped", self.name);
        }
        Ok(())
    }

    fn write_final(&mut self, records: &[u8]) -> Result<(), SinkError> {
        self.queue.push_final(records);
        Ok(())
    }
}

impl Drop for Threaded {
    /// Lets the worker send what is queued (it bounds that by its shutdown timeout).
    fn drop(&mut self) {
        self.queue.close();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let before = self.losses.snapshot();
        if before.iter().any(|(_, n)| *n > 0) {
            log::warn!("{}: records lost: {before:?}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_counted() {
        let q = Queue::new(3);
        assert_eq!(q.push_lines(b"a\nb\n"), 0);
        assert_eq!(q.push_lines(b"c\nd\ne\n"), 2);
        let (b, closed) = q.pop_batch(2, Duration::ZERO);
        assert_eq!(b, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(!closed);
        q.close();
        let (b, closed) = q.pop_batch(10, Duration::from_secs(5));
        assert_eq!(b, vec![b"c".to_vec()]);
        assert!(closed);
    }
}
