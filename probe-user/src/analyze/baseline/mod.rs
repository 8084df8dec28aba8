//! Baselines: per workload ([`key`]), learn what it does ([`observe`]: executables, files
//! written as patterns, destinations, ports, DNS names, users, capabilities, security kinds,
//! and event rates), then watch and report what it never did as `alert`s with
//! `source: "baseline"`. Profiles are JSON files in a folder ([`store`], [`profile`]);
//! `tprobe baseline show|merge|diff` read them ([`cmd`]). docs/baselines.md says it for users.
pub mod args;
#[cfg(test)]
pub(super) mod bench;
pub mod cmd;
pub mod config;
pub mod key;
pub mod observe;
pub mod patterns;
pub mod profile;
pub mod rates;
pub mod store;
#[cfg(test)]
mod tests;
mod workload;

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

use probe_common::EventKind;
use prometheus_client::metrics::counter::Counter;

use crate::event::{
    alert::{BaselineHit, RuleInfo},
    Event,
};
pub use config::{BaselineConfig, Totals};
use observe::{Dim, Ephemeral};
use profile::{Profile, State};
use store::StoreError;
use workload::Workload;

/// Most workloads tracked; events of more are counted, not learned.
pub const MAX_WORKLOADS: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("--baseline: {0}")]
    Store(#[from] StoreError),
    #[error("--baseline: {0} is not a folder")]
    NotADir(String),
}

struct Metrics {
    alerts: Counter,
    suppressed: Counter,
    write_errors: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    alerts: crate::service::prom::counter(
        "tprobe_baseline_alerts",
        "Baseline deviations reported",
        &[],
    ),
    suppressed: crate::service::prom::counter(
        "tprobe_baseline_suppressed",
        "Baseline deviations not reported: over the per-workload alert rate",
        &[],
    ),
    write_errors: crate::service::prom::counter(
        "tprobe_baseline_write_errors",
        "Profile files that could not be written",
        &[],
    ),
});

/// A deviation found in one event: what the alert says, and its rule.
pub struct Deviation {
    pub hit: BaselineHit,
    pub rule: Arc<RuleInfo>,
}

pub struct Baseline {
    cfg: BaselineConfig,
    keys: key::Keys,
    workloads: HashMap<Arc<str>, Workload>,
    /// The rule of each dimension's alerts.
    rules: HashMap<Dim, Arc<RuleInfo>>,
    eph: Ephemeral,
    last_sweep: i64,
    pub totals: Totals,
    /// Profiles that did not load (renamed `.bad`), with why.
    pub bad: Vec<String>,
    pub unreadable: Vec<String>,
    obs: Vec<(Dim, String)>,
}

fn rule(d: Dim) -> RuleInfo {
    RuleInfo {
        id: "baseline".into(),
        title: d.title().into(),
        level: d.level().into(),
        status: Some("experimental".into()),
        description: Some(format!(
            "The workload did something its learned profile has no {} entry for",
            d.as_str()
        )),
        tags: vec![format!("baseline.{}", d.as_str())],
        ..Default::default()
    }
}

impl Baseline {
    /// The kinds the kernel must send for the baseline.
    pub fn kinds() -> Vec<EventKind> {
        let mut k: Vec<EventKind> = observe::KINDS
            .iter()
            .chain(observe::SECURITY)
            .copied()
            .collect();
        k.sort();
        k
    }

    /// Opens the profile folder and loads what it holds. Bad files are renamed `.bad` (with a
    /// warning); a folder that cannot be read is an error.
    pub fn open(cfg: &BaselineConfig) -> Result<Baseline, BaselineError> {
        if cfg.dir.exists() && !cfg.dir.is_dir() {
            return Err(BaselineError::NotADir(cfg.dir.display().to_string()));
        }
        let loaded = store::load(&cfg.dir, cfg.read_only, cfg.dir_names)?;
        for b in &loaded.bad {
            log::warn!("baseline: {b}; the workload learns again");
        }
        for b in &loaded.unreadable {
            log::warn!("baseline: {b}");
        }
        let mut workloads = HashMap::new();
        for (k, (path, p)) in loaded.profiles {
            let k: Arc<str> = k.into();
            workloads.insert(k.clone(), Workload::loaded(k, p, path));
        }
        Ok(Baseline {
            cfg: cfg.clone(),
            keys: key::Keys::default(),
            workloads,
            rules: Dim::ALL.iter().map(|d| (*d, Arc::new(rule(*d)))).collect(),
            eph: Ephemeral::read(),
            last_sweep: 0,
            totals: Totals::default(),
            bad: loaded.bad,
            unreadable: loaded.unreadable,
            obs: Vec::new(),
        })
    }

    /// Learns from or checks one event; deviations go to `out`. `now` is the event's wall
    /// time in seconds.
    pub fn observe(&mut self, ev: &Event, now: i64, out: &mut Vec<Deviation>) {
        let Some(task) = ev.task.as_ref() else { return };
        let kind = task.kind;
        if now != self.last_sweep {
            self.last_sweep = now;
            self.sweep(now);
        }
        let Some(key) = self.keys.key(ev) else {
            self.totals.unkeyed += 1;
            return;
        };
        // One hash of the key per event: the entry finds or makes the workload.
        let full = self.workloads.len() >= MAX_WORKLOADS;
        let w = match self.workloads.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                if full {
                    self.totals.over_cap += 1;
                    return;
                }
                let key = v.key().clone();
                let p = Profile::new(&key, now, self.cfg.rate_interval.as_secs().max(1));
                let path = self.cfg.dir.join(store::file_name(&key));
                v.insert(Workload::new(key, p, path))
            }
        };
        let mut obs = std::mem::take(&mut self.obs);
        obs.clear();
        observe::observe(ev, self.eph, &mut obs);
        let mut found = Vec::new();
        w.identity(
            task.id.euid,
            task.id.cap_effective,
            now,
            &self.cfg,
            &mut found,
        );
        for (dim, value) in obs.drain(..) {
            w.value(dim, value, now, &self.cfg, &mut self.totals, &mut found);
        }
        self.obs = obs;
        if let Some(v) = w.count(kind, ev.ts_ns, &self.cfg) {
            found.push((Dim::Rate, v));
        }
        for (dim, value) in found {
            if w.alerted(dim, &value) {
                self.totals.repeats += 1;
                continue;
            }
            // A suppressed deviation is not marked: it alerts when the budget allows.
            if !w.allow(now, self.cfg.alerts_per_minute) {
                self.totals.suppressed += 1;
                METRICS.suppressed.inc();
                continue;
            }
            w.mark_alerted(dim, &value);
            self.totals.alerts += 1;
            METRICS.alerts.inc();
            out.push(Deviation {
                hit: BaselineHit {
                    workload: w.key.to_string(),
                    dimension: dim.as_str(),
                    value,
                    state: w.profile.state.as_str(),
                },
                rule: self.rules[&dim].clone(),
            });
        }
    }

    /// Once a second: learning workloads whose time is up start watching (their profile is
    /// written); learning ones are written every minute they changed.
    fn sweep(&mut self, now: i64) {
        let mut to_save = Vec::new();
        for (k, w) in self.workloads.iter_mut() {
            if w.profile.state == State::Learning {
                let p = &w.profile;
                let long = now - p.learning_since >= self.cfg.learn_for.as_secs() as i64;
                let stable = now - p.last_new >= self.cfg.learn_stable.as_secs() as i64;
                if long || stable {
                    w.watch(now);
                    to_save.push(k.clone());
                } else if w.dirty && now - w.saved_at >= 60 {
                    to_save.push(k.clone());
                }
            } else if w.dirty && now - w.saved_at >= 60 {
                to_save.push(k.clone());
            }
        }
        for k in to_save {
            self.save(&k, now);
        }
    }

    fn save(&mut self, k: &Arc<str>, now: i64) {
        let Some(w) = self.workloads.get_mut(k) else {
            return;
        };
        w.saved_at = now;
        w.sync_identities();
        if self.cfg.read_only {
            w.dirty = false;
            return;
        }
        match store::write(&w.path, &w.profile) {
            Ok(()) => {
                self.totals.writes += 1;
                w.dirty = false;
                w.write_failing = false;
            }
            Err(e) => {
                self.totals.write_errors += 1;
                METRICS.write_errors.inc();
                // Said once per workload until a write works again; every failure counts.
                if !w.write_failing {
                    log::warn!("baseline: cannot write the profile of {k}: {e}");
                }
                w.write_failing = true;
            }
        }
    }

    /// Writes every changed profile (at exit).
    pub fn flush(&mut self, now: i64) {
        let keys: Vec<Arc<str>> = self
            .workloads
            .iter()
            .filter(|(_, w)| w.dirty)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.save(&k, now);
        }
    }

    /// For `probe.start`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "dir": self.cfg.dir.display().to_string(),
            "read_only": self.cfg.read_only,
            "accept": self.cfg.accept,
            "learn_for_s": self.cfg.learn_for.as_secs_f64(),
            "learn_stable_s": self.cfg.learn_stable.as_secs_f64(),
            "rate_interval_s": self.cfg.rate_interval.as_secs_f64(),
            "profiles": self.workloads.len(),
            "bad_profiles": self.bad,
        })
    }

    /// For `probe.stop`: totals and each workload's state and counts.
    pub fn report(&self) -> serde_json::Value {
        let t = &self.totals;
        let mut per = serde_json::Map::new();
        let (mut learning, mut watching) = (0, 0);
        for (k, w) in &self.workloads {
            match w.profile.state {
                State::Learning => learning += 1,
                State::Watching => watching += 1,
            }
            per.insert(k.to_string(), w.report());
        }
        serde_json::json!({
            "workloads": self.workloads.len(),
            "learning": learning,
            "watching": watching,
            "alerts": t.alerts,
            "suppressed": t.suppressed,
            "repeats": t.repeats,
            "accepted": t.accepted,
            "writes": t.writes,
            "write_errors": t.write_errors,
            "bad_profiles": self.bad.len(),
            "unreadable_profiles": self.unreadable.len(),
            "unkeyed_events": t.unkeyed,
            "over_cap_events": t.over_cap,
            "values_dropped": t.values_dropped,
            "per_workload": per,
        })
    }
}
