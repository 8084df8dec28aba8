//! The native encoder's `process` objects, kept per thread: a thread that acts again in the
//! same context (same image, identity, ancestors, hash state) gets its last rendering copied
//! instead of 2-3 KB of names, argv and capabilities escaped again for every event.
use std::{cell::RefCell, sync::Arc};

use super::process::RawArc;
use crate::event::{
    process::{Ancestors, ProcessInfo},
    Event, Identity, FLAG_START_APPROX,
};
use serde::{Serialize, Serializer};

/// Direct-mapped by tid: bounded memory, and a collision only costs a rendering.
const SLOTS: usize = 256;

/// The task flags a `process` object depends on.
const FLAGS: u32 = FLAG_START_APPROX | probe_common::FLAG_NO_PROCESS;

/// Everything a `process` object is made of, apart from the event's own time.
struct Key {
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    flags: u32,
    cgroup_id: u64,
    start_ns: u64,
    id: Identity,
    comm: Vec<u8>,
    user: Option<Arc<str>>,
    // Held, not just compared by address: a freed image's address cannot come back as
    // another's while the slot keeps it alive.
    info: Option<Arc<ProcessInfo>>,
    ancestors: Option<Arc<Ancestors>>,
    hashed: u8,
}

/// 0: no hash asked; 1: pending; 2: known (it never changes after).
fn hash_state(p: Option<&ProcessInfo>) -> u8 {
    match p.and_then(|p| p.hash.as_deref()) {
        None => 0,
        Some(c) if c.get().is_none() => 1,
        Some(_) => 2,
    }
}

fn same<T>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl Key {
    fn of(ev: &Event) -> Option<Key> {
        let t = ev.task.as_ref()?;
        Some(Key {
            pid: t.pid,
            tid: t.tid,
            ppid: t.ppid,
            uid: t.uid,
            gid: t.gid,
            flags: t.flags & FLAGS,
            cgroup_id: t.cgroup_id,
            start_ns: t.start_ns,
            id: t.id,
            comm: t.comm.clone(),
            user: ev.user.clone(),
            info: ev.process.clone(),
            ancestors: ev.ancestors.clone(),
            hashed: hash_state(ev.process.as_deref()),
        })
    }

    fn matches(&self, ev: &Event) -> bool {
        let Some(t) = ev.task.as_ref() else {
            return false;
        };
        self.tid == t.tid
            && self.pid == t.pid
            && self.ppid == t.ppid
            && self.uid == t.uid
            && self.gid == t.gid
            && self.flags == t.flags & FLAGS
            && self.cgroup_id == t.cgroup_id
            && self.start_ns == t.start_ns
            && self.id == t.id
            && self.comm == t.comm
            && self.user == ev.user
            && same(&self.info, &ev.process)
            && same(&self.ancestors, &ev.ancestors)
            && self.hashed == hash_state(ev.process.as_deref())
    }
}

struct Slot {
    key: Key,
    /// Rendered the second time the context is seen: a thread that acts once (most execs)
    /// pays no extra rendering.
    json: Option<RawArc>,
}

/// What to write for an event's `process`.
pub enum Cached<T> {
    /// The thread's last rendering, still true.
    Hit(RawArc),
    /// Serialise this one.
    Fresh(T),
}

impl<T: Serialize> Serialize for Cached<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cached::Hit(r) => r.serialize(s),
            Cached::Fresh(v) => v.serialize(s),
        }
    }
}

pub struct ProcessCache(RefCell<Vec<Option<Slot>>>);

impl Default for ProcessCache {
    fn default() -> Self {
        ProcessCache(RefCell::new((0..SLOTS).map(|_| None).collect()))
    }
}

impl ProcessCache {
    /// The `process` object of `ev`: the cached rendering when its context is unchanged,
    /// else `make()`'s (rendered and kept when the same context comes back).
    pub fn get<T: Serialize>(
        &self,
        ev: &Event,
        make: impl FnOnce() -> Option<T>,
    ) -> Option<Cached<T>> {
        let Some(tid) = ev.task.as_ref().map(|t| t.tid) else {
            return make().map(Cached::Fresh);
        };
        let mut slots = self.0.borrow_mut();
        let slot = &mut slots[tid as usize % SLOTS];
        match slot {
            Some(s) if s.key.matches(ev) => {
                if let Some(j) = &s.json {
                    return Some(Cached::Hit(j.clone()));
                }
                let v = make()?;
                let j = RawArc::of(&v);
                s.json = Some(j.clone());
                Some(Cached::Hit(j))
            }
            _ => {
                *slot = Key::of(ev).map(|key| Slot { key, json: None });
                make().map(Cached::Fresh)
            }
        }
    }
}
