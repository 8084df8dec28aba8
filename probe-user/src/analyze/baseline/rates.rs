//! Volume: per workload and event kind, the count of each interval (a minute by default) is
//! learned as an exponentially weighted mean and variance; while watching, an interval whose
//! count goes above mean + k·σ and above a floor is a deviation.
use serde::{Deserialize, Serialize};

/// Weight of the newest interval.
pub const ALPHA: f64 = 0.2;

/// EWMA of the per-interval counts of one kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ewma {
    pub mean: f64,
    pub var: f64,
    /// Intervals folded in.
    #[serde(default)]
    pub n: u64,
}

impl Ewma {
    pub fn add(&mut self, x: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            let inc = ALPHA * d;
            self.mean += inc;
            self.var = (1.0 - ALPHA) * (self.var + d * inc);
        }
        self.n += 1;
    }

    /// The count above which an interval is a deviation.
    pub fn threshold(&self, k: f64, floor: f64) -> f64 {
        (self.mean + k * self.var.max(0.0).sqrt()).max(floor)
    }

    /// Two estimates of one workload (other nodes) as one: means weighted by intervals,
    /// variance within plus between.
    pub fn pooled(&self, o: &Ewma) -> Ewma {
        let (na, nb) = (self.n.max(1) as f64, o.n.max(1) as f64);
        let mean = (self.mean * na + o.mean * nb) / (na + nb);
        let var = (na * (self.var + (self.mean - mean).powi(2))
            + nb * (o.var + (o.mean - mean).powi(2)))
            / (na + nb);
        Ewma {
            mean,
            var,
            n: self.n + o.n,
        }
    }
}

/// The running interval of one workload: counts by kind, since `start_ns`.
#[derive(Default)]
pub struct Interval {
    pub start_ns: u64,
    pub counts: Vec<u32>,
    /// Kinds seen while learning (they get a zero for an interval without them).
    pub seen: Vec<bool>,
}

/// Slots: kind ids are small numbers.
const SLOTS: usize = 64;

impl Interval {
    pub fn new(start_ns: u64) -> Interval {
        Interval {
            start_ns,
            counts: vec![0; SLOTS],
            seen: vec![false; SLOTS],
        }
    }

    /// Counts one event of kind `slot` at `now_ns`. When intervals ended before it, `closed`
    /// is called with each ended interval's counts (idle ones as zeros, at most a few) before
    /// the count is added. Returns the running count.
    pub fn count(
        &mut self,
        slot: usize,
        now_ns: u64,
        len_ns: u64,
        mut closed: impl FnMut(&[u32], &[bool]),
    ) -> u32 {
        let slot = slot.min(SLOTS - 1);
        if now_ns >= self.start_ns + len_ns {
            let ended = (now_ns - self.start_ns) / len_ns;
            closed(&self.counts, &self.seen);
            self.counts.iter_mut().for_each(|c| *c = 0);
            // Idle intervals count as zeros, up to ten of them.
            for _ in 1..ended.min(10) {
                closed(&self.counts, &self.seen);
            }
            self.start_ns += ended * len_ns;
        }
        self.seen[slot] = true;
        self.counts[slot] += 1;
        self.counts[slot]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_follows_a_steady_rate_and_flags_a_burst() {
        let mut e = Ewma::default();
        for x in [10.0, 12.0, 9.0, 11.0, 10.0, 10.0, 11.0, 9.0] {
            e.add(x);
        }
        assert!((e.mean - 10.2).abs() < 1.0, "{e:?}");
        assert!(e.var > 0.0 && e.var < 4.0, "{e:?}");
        let t = e.threshold(6.0, 100.0);
        assert_eq!(t, 100.0, "the floor wins for small rates");
        let t = e.threshold(6.0, 0.0);
        assert!(t > e.mean && t < 25.0, "{t}");
        assert!(300.0 > e.threshold(6.0, 100.0));
    }

    #[test]
    fn intervals_close_with_zeros_for_idle_ones() {
        let mut iv = Interval::new(0);
        let mut closed = Vec::new();
        for t in [1, 2, 3] {
            iv.count(1, t, 10, |c, _| closed.push(c[1]));
        }
        assert!(closed.is_empty());
        let n = iv.count(1, 35, 10, |c, _| closed.push(c[1]));
        assert_eq!(closed, vec![3, 0, 0]);
        assert_eq!(n, 1);
        assert_eq!(iv.start_ns, 30);
    }
}
