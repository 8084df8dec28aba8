//! Ring buffer draining: wait for a wakeup or a timer tick, then hand out every queued record.
//! No parsing here. The kernel wakes us only once enough data is queued (no wakeup per event),
//! and the tick bounds how long a quiet event waits.
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

pub struct Drain {
    fd: AsyncFd<RingBuf<MapData>>,
    tick: tokio::time::Interval,
    /// The last drain stopped at its limit: records are waiting and no wakeup will say so.
    backlog: bool,
}

impl Drain {
    pub fn new(ring: RingBuf<MapData>, tick: Duration) -> std::io::Result<Self> {
        let mut tick = tokio::time::interval(tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the
        // AsyncFd (and so the RingBuf) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Drain {
            fd,
            tick,
            backlog: false,
        })
    }

    /// Waits until there may be data: a kernel wakeup or the next tick.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        if self.backlog {
            return Ok(());
        }
        tokio::select! {
            g = self.fd.readable_mut() => {
                // Clear before draining: data queued after the drain raises a new edge.
                g?.clear_ready();
            }
            _ = self.tick.tick() => {}
        }
        Ok(())
    }

    /// Calls `f` for each queued record, up to `limit` of them; returns how many there were.
    /// A limit keeps one batch of decoded events small; the rest wait in the ring buffer.
    pub fn drain(&mut self, limit: usize, mut f: impl FnMut(&[u8])) -> usize {
        let ring = self.fd.get_mut();
        let mut n = 0;
        while n < limit {
            let Some(item) = ring.next() else { break };
            f(&item);
            n += 1;
        }
        self.backlog = n == limit;
        n
    }
}
