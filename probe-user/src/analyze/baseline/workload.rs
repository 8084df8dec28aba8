//! One workload in memory: its profile, the running rate interval, what was already
//! reported in this run, and its alert budget.
use std::{collections::HashSet, path::PathBuf, sync::Arc};

use probe_common::EventKind;
use prometheus_client::metrics::gauge::Gauge;

use super::{
    config::{BaselineConfig, Totals},
    observe::Dim,
    profile::{Profile, State},
    rates::Interval,
};
use crate::families::security::names::cap_names;

/// Most deviations remembered per workload and run (for once-per-run); past it they are
/// reported as repeats.
const MAX_ALERTED: usize = 4096;
/// Longest rate interval a profile may hold (a day): longer is a damaged file.
pub const MAX_RATE_INTERVAL_S: u64 = 86_400;

struct Gauges {
    watching: Gauge,
    values: Gauge,
    events: Gauge,
}

pub struct Workload {
    pub key: Arc<str>,
    pub profile: Profile,
    pub path: PathBuf,
    /// Changed since last written.
    pub dirty: bool,
    pub saved_at: i64,
    pub write_failing: bool,
    /// Capability bits and euids in the profile, for a cheap check on every event.
    caps: u64,
    euids: Vec<u32>,
    /// (euid, capabilities, events, last seen) since the last write: counted here, folded
    /// into the `euid` and `caps` values when the profile is written.
    identities: Vec<(u32, u64, u64, i64)>,
    interval: Option<Interval>,
    alerted: HashSet<(Dim, String)>,
    tokens: f64,
    tokens_at: i64,
    pub alerts: u64,
    pub suppressed: u64,
    /// Events seen in this run.
    pub events: u64,
    gauges: Gauges,
}

fn cap_bit(name: &str) -> Option<u32> {
    let n = name.strip_prefix("CAP_")?;
    if let Ok(i) = n.parse::<u32>() {
        return (i < 64).then_some(i);
    }
    crate::families::process::names::CAPS
        .iter()
        .position(|c| *c == name)
        .map(|i| i as u32)
}

impl Workload {
    pub fn new(key: Arc<str>, profile: Profile, path: PathBuf) -> Workload {
        let l = [("workload", &*key)];
        let gauges = Gauges {
            watching: crate::service::prom::gauge(
                "tprobe_baseline_watching",
                "1 when the workload's baseline watches, 0 while it learns",
                &l,
            ),
            values: crate::service::prom::gauge(
                "tprobe_baseline_values",
                "Values in the workload's profile",
                &l,
            ),
            events: crate::service::prom::gauge(
                "tprobe_baseline_events",
                "Events of the workload seen in this run",
                &l,
            ),
        };
        let mut w = Workload {
            caps: 0,
            euids: Vec::new(),
            identities: Vec::new(),
            interval: None,
            alerted: HashSet::new(),
            tokens: 0.0,
            tokens_at: i64::MIN,
            alerts: 0,
            suppressed: 0,
            events: 0,
            dirty: true,
            saved_at: profile.learning_since,
            write_failing: false,
            key,
            profile,
            path,
            gauges,
        };
        w.mirror();
        w
    }

    /// A workload whose profile came from disk: unchanged until it learns something.
    pub fn loaded(key: Arc<str>, profile: Profile, path: PathBuf) -> Workload {
        let mut w = Workload::new(key, profile, path);
        w.dirty = false;
        w
    }

    /// Rebuilds the bit mirrors of the `caps` and `euid` dimensions.
    fn mirror(&mut self) {
        let p = &self.profile;
        self.caps = p
            .dimensions
            .get(Dim::Caps.as_str())
            .into_iter()
            .flat_map(|d| d.keys())
            .filter_map(|c| cap_bit(c))
            .fold(0, |m, b| m | (1u64 << b));
        self.euids = p
            .dimensions
            .get(Dim::Euid.as_str())
            .into_iter()
            .flat_map(|d| d.keys())
            .filter_map(|u| u.parse().ok())
            .collect();
        self.gauges
            .watching
            .set(i64::from(p.state == State::Watching));
        self.gauges.values.set(p.value_count() as i64);
    }

    /// Learns an euid or capability whose sightings `identities` counts.
    fn learn_counted_apart(&mut self, dim: Dim, v: &str, now: i64) {
        self.profile.learn(dim.as_str(), v, now, 0);
        if let Some(s) = self
            .profile
            .dimensions
            .get_mut(dim.as_str())
            .and_then(|d| d.get_mut(v))
        {
            s.count = 0;
        }
        self.dirty = true;
    }

    /// Folds the euid and capability counts into the profile (before it is written).
    pub fn sync_identities(&mut self) {
        for (euid, caps, n, last) in self.identities.drain(..) {
            let mut bump = |dim: Dim, v: &str| {
                if let Some(s) = self
                    .profile
                    .dimensions
                    .get_mut(dim.as_str())
                    .and_then(|d| d.get_mut(v))
                {
                    s.count += n;
                    s.last = s.last.max(last);
                }
            };
            bump(Dim::Euid, &euid.to_string());
            for c in cap_names(caps) {
                bump(Dim::Caps, &c);
            }
        }
    }

    /// Starts watching.
    pub fn watch(&mut self, now: i64) {
        self.profile.state = State::Watching;
        self.profile.watching_since = Some(now);
        self.dirty = true;
        self.gauges.watching.set(1);
    }

    /// The euid and effective capabilities of an event: new ones are learned or found.
    pub fn identity(
        &mut self,
        euid: u32,
        caps: u64,
        now: i64,
        cfg: &BaselineConfig,
        found: &mut Vec<(Dim, String)>,
    ) {
        self.events += 1;
        if self.profile.state == State::Learning {
            self.profile.events += 1;
        }
        if self.events.is_multiple_of(64) {
            self.gauges.events.set(self.events as i64);
        }
        let full = self.identities.len() >= 64;
        match self
            .identities
            .iter_mut()
            .find(|i| i.0 == euid && i.1 == caps)
        {
            Some(i) => {
                i.2 += 1;
                i.3 = now;
            }
            None if !full => self.identities.push((euid, caps, 1, now)),
            None => {}
        }
        if !self.euids.contains(&euid) {
            let learn = self.profile.state == State::Learning || cfg.accept;
            if learn {
                self.euids.push(euid);
                self.profile
                    .learn(Dim::Euid.as_str(), &euid.to_string(), now, 0);
                self.dirty = true;
            }
            if self.profile.state == State::Watching {
                found.push((Dim::Euid, euid.to_string()));
            }
        }
        let new = caps & !self.caps;
        if new != 0 {
            let learn = self.profile.state == State::Learning || cfg.accept;
            for name in cap_names(new) {
                if learn {
                    self.learn_counted_apart(Dim::Caps, &name, now);
                }
                if self.profile.state == State::Watching {
                    found.push((Dim::Caps, name));
                }
            }
            if learn {
                self.caps |= new;
            }
        }
    }

    /// One (dimension, value): counted when known, learned while learning (or with
    /// `--baseline-accept`), found while watching.
    pub fn value(
        &mut self,
        dim: Dim,
        value: String,
        now: i64,
        cfg: &BaselineConfig,
        totals: &mut Totals,
        found: &mut Vec<(Dim, String)>,
    ) {
        let d = dim.as_str();
        if self.profile.touch(d, &value, now) {
            // Last seen and count are part of the file: saved with the next write.
            self.dirty = true;
            return;
        }
        let watching = self.profile.state == State::Watching;
        if !watching || cfg.accept {
            if self.profile.learn(d, &value, now, cfg.dir_names) {
                self.dirty = true;
                self.gauges.values.set(self.profile.value_count() as i64);
                if watching {
                    totals.accepted += 1;
                }
            } else {
                totals.values_dropped += 1;
            }
        }
        if watching {
            found.push((dim, value));
        }
    }

    /// Counts an event for the rates; returns the kind's name when this interval just went
    /// over the learned rate (while watching).
    pub fn count(&mut self, kind: EventKind, ts_ns: u64, cfg: &BaselineConfig) -> Option<String> {
        // The profile's own interval: a profile learned with another one stays consistent.
        let len = self
            .profile
            .rate_interval_s
            .clamp(1, MAX_RATE_INTERVAL_S)
            .saturating_mul(1_000_000_000);
        let iv = self.interval.get_or_insert_with(|| Interval::new(ts_ns));
        let learning = self.profile.state == State::Learning;
        let rates = &mut self.profile.rates;
        let n = iv.count(kind as usize, ts_ns, len, |counts, seen| {
            if !learning {
                return;
            }
            for (slot, c) in counts.iter().enumerate() {
                if !seen[slot] {
                    continue;
                }
                let Ok(k) = EventKind::try_from(slot as u32) else {
                    continue;
                };
                rates
                    .entry(k.name().to_owned())
                    .or_default()
                    .add(f64::from(*c));
            }
        });
        // No interval ended while learning (a window shorter than one): no rates to hold.
        if learning || self.profile.rates.is_empty() {
            return None;
        }
        let floor = cfg.rate_floor as f64;
        let over = match self.profile.rates.get(kind.name()) {
            Some(r) => f64::from(n) > r.threshold(cfg.rate_k, floor),
            None => f64::from(n) > floor,
        };
        over.then(|| kind.name().to_owned())
    }

    /// True the first time a deviation is seen in this run.
    /// Whether (dim, value) was alerted on in this run (or the set of them is full).
    pub fn alerted(&self, dim: Dim, value: &str) -> bool {
        self.alerted.len() >= MAX_ALERTED || self.alerted.contains(&(dim, value.to_owned()))
    }

    /// Marks (dim, value) as alerted on, once its alert went out.
    pub fn mark_alerted(&mut self, dim: Dim, value: &str) {
        self.alerted.insert((dim, value.to_owned()));
    }

    /// Takes one alert from the workload's budget (refilled over a minute).
    pub fn allow(&mut self, now: i64, per_minute: u32) -> bool {
        let cap = f64::from(per_minute.max(1));
        if self.tokens_at == i64::MIN {
            self.tokens = cap;
        } else {
            self.tokens = (self.tokens + (now - self.tokens_at) as f64 * cap / 60.0).min(cap);
        }
        self.tokens_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.alerts += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    pub fn report(&self) -> serde_json::Value {
        let p = &self.profile;
        serde_json::json!({
            "state": p.state.as_str(),
            "values": p.value_count(),
            "events": self.events,
            "alerts": self.alerts,
            "suppressed": self.suppressed,
            "learning_since": super::profile::time_string(p.learning_since),
            "file": self.path.display().to_string(),
        })
    }
}
