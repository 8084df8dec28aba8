//! A workload's profile: what it was seen doing, as the JSON file a person reads, edits,
//! merges and ships. Values carry first and last seen (RFC 3339) and a count; rates carry the
//! EWMA mean and variance of the per-interval counts of each event kind.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    patterns::{dir_wildcard, split_dir},
    rates::Ewma,
};

/// The file format's version (`tprobe_profile`).
pub const FORMAT: u32 = 1;

/// Most values kept per dimension; past it new values are counted, not kept.
pub const MAX_VALUES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Learning,
    Watching,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Learning => "learning",
            State::Watching => "watching",
        }
    }
}

/// RFC 3339 on disk, epoch seconds in memory.
mod time {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn to_string(secs: i64) -> String {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    pub fn serialize<S: Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_string(*secs))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp())
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time: {e}")))
    }
}

pub use time::to_string as time_string;

mod opt_time {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(secs: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match secs {
            Some(t) => crate::analyze::baseline::profile::time::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        crate::analyze::baseline::profile::time::deserialize(d).map(Some)
    }
}

/// One learned value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    /// An entry added by hand may leave these out.
    #[serde(default, with = "time")]
    pub first: i64,
    #[serde(default, with = "time")]
    pub last: i64,
    #[serde(default)]
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub tprobe_profile: u32,
    pub workload: String,
    pub state: State,
    /// When learning began (the workload's first event).
    #[serde(with = "time")]
    pub learning_since: i64,
    /// When a new value was last learned.
    #[serde(with = "time")]
    pub last_new: i64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub watching_since: Option<i64>,
    /// Events seen while learning.
    #[serde(default)]
    pub events: u64,
    /// Seconds per rate interval (60: per minute).
    pub rate_interval_s: u64,
    /// dimension → value → seen.
    #[serde(default)]
    pub dimensions: BTreeMap<String, BTreeMap<String, Seen>>,
    /// event kind → per-interval count EWMA.
    #[serde(default)]
    pub rates: BTreeMap<String, Ewma>,
}

impl Profile {
    pub fn new(workload: &str, now: i64, rate_interval_s: u64) -> Profile {
        Profile {
            tprobe_profile: FORMAT,
            workload: workload.to_owned(),
            state: State::Learning,
            learning_since: now,
            last_new: now,
            watching_since: None,
            events: 0,
            rate_interval_s,
            dimensions: BTreeMap::new(),
            rates: BTreeMap::new(),
        }
    }

    /// Whether `value` is known in `dim`, directly or through a `dir/*` entry (file
    /// dimensions); counts it when it is.
    pub fn touch(&mut self, dim: &str, value: &str, now: i64) -> bool {
        let Some(d) = self.dimensions.get_mut(dim) else {
            return false;
        };
        let hit = match d.get_mut(value) {
            Some(s) => Some(s),
            None if dim.starts_with("file.") => split_dir(value)
                .map(|(dir, _)| dir_wildcard(dir))
                .and_then(|w| d.get_mut(&w)),
            None => None,
        };
        match hit {
            Some(s) => {
                s.last = s.last.max(now);
                s.count += 1;
                true
            }
            None => false,
        }
    }

    /// Adds a new value; false when the dimension is full. File values become `dir/*`
    /// once their directory holds more than `dir_names` names.
    pub fn learn(&mut self, dim: &str, value: &str, now: i64, dir_names: usize) -> bool {
        let d = self.dimensions.entry(dim.to_owned()).or_default();
        if d.len() >= MAX_VALUES {
            return false;
        }
        d.insert(
            value.to_owned(),
            Seen {
                first: now,
                last: now,
                count: 1,
            },
        );
        self.last_new = now;
        if dim.starts_with("file.") {
            if let Some((dir, _)) = split_dir(value) {
                generalise(d, dir, dir_names);
            }
        }
        true
    }

    pub fn value_count(&self) -> usize {
        self.dimensions.values().map(BTreeMap::len).sum()
    }

    /// Folds `other` (the same workload, seen elsewhere) into this one: values united (first
    /// the earliest, last the latest, counts added), rates pooled, watching when either is.
    pub fn merge(&mut self, other: &Profile, dir_names: usize) {
        for (dim, vals) in &other.dimensions {
            let d = self.dimensions.entry(dim.clone()).or_default();
            for (v, s) in vals {
                let e = d.entry(v.clone()).or_insert_with(|| Seen {
                    first: s.first,
                    last: s.last,
                    count: 0,
                });
                e.first = e.first.min(s.first);
                e.last = e.last.max(s.last);
                e.count += s.count;
            }
            if dim.starts_with("file.") {
                let dirs: std::collections::BTreeSet<String> = d
                    .keys()
                    .filter_map(|v| split_dir(v).map(|(dir, _)| dir.to_owned()))
                    .collect();
                for dir in dirs {
                    generalise(d, &dir, dir_names);
                }
            }
        }
        for (k, r) in &other.rates {
            match self.rates.get_mut(k) {
                Some(mine) => *mine = mine.pooled(r),
                None => {
                    self.rates.insert(k.clone(), r.clone());
                }
            }
        }
        self.learning_since = self.learning_since.min(other.learning_since);
        self.last_new = self.last_new.max(other.last_new);
        self.events += other.events;
        if other.state == State::Watching {
            self.state = State::Watching;
        }
        self.watching_since = match (self.watching_since, other.watching_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Replaces the names directly under `dir` by `dir/*` when there are more than `n`.
fn generalise(d: &mut BTreeMap<String, Seen>, dir: &str, n: usize) {
    let wild = dir_wildcard(dir);
    let prefix = if dir == "/" {
        "/".to_owned()
    } else {
        format!("{dir}/")
    };
    let names: Vec<String> = d
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(k, _)| !k[prefix.len()..].contains('/') && **k != wild)
        .map(|(k, _)| k.clone())
        .collect();
    if names.len() <= n {
        return;
    }
    let mut all = d.remove(&wild).unwrap_or(Seen {
        first: i64::MAX,
        last: i64::MIN,
        count: 0,
    });
    for k in names {
        if let Some(s) = d.remove(&k) {
            all.first = all.first.min(s.first);
            all.last = all.last.max(s.last);
            all.count += s.count;
        }
    }
    d.insert(wild, all);
}

/// What `b` has that `a` has not, and the reverse, per dimension; rates whose mean moved.
pub struct Diff {
    pub only_a: Vec<(String, String)>,
    pub only_b: Vec<(String, String)>,
    pub rates: Vec<(String, Option<f64>, Option<f64>)>,
}

pub fn diff(a: &Profile, b: &Profile) -> Diff {
    let side = |x: &Profile, y: &Profile| {
        let mut v = Vec::new();
        for (dim, vals) in &x.dimensions {
            for val in vals.keys() {
                if !y.dimensions.get(dim).is_some_and(|o| o.contains_key(val)) {
                    v.push((dim.clone(), val.clone()));
                }
            }
        }
        v
    };
    let mut rates = Vec::new();
    let kinds: std::collections::BTreeSet<&String> = a.rates.keys().chain(b.rates.keys()).collect();
    for k in kinds {
        let (ra, rb) = (
            a.rates.get(k).map(|r| r.mean),
            b.rates.get(k).map(|r| r.mean),
        );
        let moved = match (ra, rb) {
            (Some(x), Some(y)) => (x - y).abs() > 0.25 * x.abs().max(y.abs()).max(1.0),
            _ => true,
        };
        if moved {
            rates.push((k.clone(), ra, rb));
        }
    }
    Diff {
        only_a: side(a, b),
        only_b: side(b, a),
        rates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(vals: &[(&str, &str)]) -> Profile {
        let mut p = Profile::new("w", 1000, 60);
        for (d, v) in vals {
            assert!(p.learn(d, v, 1000, 4));
        }
        p
    }

    #[test]
    fn a_directory_with_many_names_becomes_a_wildcard() {
        let mut p = profile(&[("file.write", "/etc/a")]);
        for i in 0..5 {
            p.learn("file.write", &format!("/var/spool/q{i}x"), 1000 + i, 4);
        }
        let d = &p.dimensions["file.write"];
        assert!(d.contains_key("/var/spool/*"), "{d:?}");
        assert_eq!(d["/var/spool/*"].count, 5);
        assert!(d.contains_key("/etc/a"));
        assert!(p.touch("file.write", "/var/spool/other", 2000));
        assert!(!p.touch("file.write", "/var/spool/deeper/x", 2000));
        assert!(!p.touch("file.write", "/etc/b", 2000));
        assert!(p.touch("file.write", "/etc/a", 2000));
        assert_eq!(p.dimensions["file.write"]["/etc/a"].last, 2000);
    }

    #[test]
    fn merge_unites_values_and_keeps_first_and_last() {
        let mut a = profile(&[("exec", "/bin/a <- /bin/sh"), ("dns", "x.test")]);
        let mut b = profile(&[("exec", "/bin/a <- /bin/sh"), ("euid", "0")]);
        b.dimensions
            .get_mut("exec")
            .unwrap()
            .get_mut("/bin/a <- /bin/sh")
            .unwrap()
            .first = 10;
        b.dimensions
            .get_mut("exec")
            .unwrap()
            .get_mut("/bin/a <- /bin/sh")
            .unwrap()
            .last = 5000;
        b.state = State::Watching;
        b.rates.insert(
            "process.exec".into(),
            Ewma {
                mean: 10.0,
                var: 4.0,
                n: 10,
            },
        );
        a.rates.insert(
            "process.exec".into(),
            Ewma {
                mean: 20.0,
                var: 4.0,
                n: 10,
            },
        );
        a.merge(&b, 4);
        let e = &a.dimensions["exec"]["/bin/a <- /bin/sh"];
        assert_eq!((e.first, e.last, e.count), (10, 5000, 2));
        assert!(a.dimensions["euid"].contains_key("0"));
        assert!(a.dimensions["dns"].contains_key("x.test"));
        assert_eq!(a.state, State::Watching);
        let r = &a.rates["process.exec"];
        assert_eq!(r.n, 20);
        assert!((r.mean - 15.0).abs() < 1e-9, "{r:?}");
        // pooled variance: within (4) plus between ((10-15)^2 = 25)
        assert!((r.var - 29.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn diff_names_what_each_side_has_alone() {
        let a = profile(&[("exec", "/bin/a"), ("dns", "x.test")]);
        let b = profile(&[("exec", "/bin/a"), ("dns", "y.test")]);
        let d = diff(&a, &b);
        assert_eq!(d.only_a, vec![("dns".to_owned(), "x.test".to_owned())]);
        assert_eq!(d.only_b, vec![("dns".to_owned(), "y.test".to_owned())]);
        assert!(d.rates.is_empty());
    }

    #[test]
    fn the_file_round_trips_and_hand_edits_may_leave_out_counts() {
        let mut p = profile(&[("exec", "/bin/a <- /bin/sh")]);
        p.rates.insert(
            "net.connect".into(),
            Ewma {
                mean: 3.5,
                var: 0.25,
                n: 4,
            },
        );
        let text = serde_json::to_string_pretty(&p).unwrap();
        assert!(
            text.contains("\"first\": \"1970-01-01T00:16:40Z\""),
            "{text}"
        );
        let back: Profile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
        let edited = text.replace(
            "\"dimensions\": {",
            "\"dimensions\": {\n    \"dns\": { \"added.by.hand\": {} },",
        );
        let e: Profile = serde_json::from_str(&edited).unwrap();
        assert!(e.dimensions["dns"].contains_key("added.by.hand"));
    }
}
