//! Userspace side of the kernel filter maps (pid, cgroup, uid sets).
//!
//! Two generations live side by side in each map (value bits `FILTER_SLOT0/1`); the config
//! flag `CFG_FILTER_SLOT1` says which one the programs read. A change writes the idle
//! generation, flips the flag with one config update, then clears the old generation: every
//! event is judged entirely by the old sets or entirely by the new ones.
use std::hash::Hash;

use aya::{
    maps::{HashMap, MapData, MapError},
    Ebpf, Pod,
};
use probe_common::{
    CFG_FILTER_CGROUP, CFG_FILTER_PID, CFG_FILTER_SLOT1, CFG_FILTER_UID, CFG_FOLLOW,
    FILTER_FOLLOWED, FILTER_SLOT0, FILTER_SLOT1, MAP_FILTER_CGROUPS, MAP_FILTER_PIDS,
    MAP_FILTER_UIDS,
};

use crate::filter::KernelFilterSpec;

pub struct KernelFilterMaps {
    pids: HashMap<MapData, u32, u8>,
    cgroups: HashMap<MapData, u64, u8>,
    uids: HashMap<MapData, u32, u8>,
    /// The live generation is slot 1.
    slot1: bool,
    /// `--follow` roots of the staged generation.
    follow_roots: Vec<u32>,
}

fn take<K: Pod, V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, MapError> {
    ebpf.take_map(name)
        .ok_or(MapError::InvalidName { name: name.into() })?
        .try_into()
}

fn bit(slot1: bool) -> u8 {
    if slot1 {
        FILTER_SLOT1
    } else {
        FILTER_SLOT0
    }
}

/// Writes `keys` into generation `new` of `map`; entries of other generations stay.
fn stage<K: Pod + Eq + Hash>(
    map: &mut HashMap<MapData, K, u8>,
    keys: &[(K, u8)],
    new: u8,
) -> Result<(), MapError> {
    for (k, extra) in keys {
        let old = map.get(k, 0).unwrap_or(0);
        // A root given by the user is not a followed descendant, whatever it was before.
        let v = (old & (FILTER_SLOT0 | FILTER_SLOT1)) | new | extra;
        map.insert(k, v, 0)?;
    }
    Ok(())
}

/// Removes generation `old` from every entry; entries left in no generation go.
fn retire<K: Pod + Eq + Hash>(map: &mut HashMap<MapData, K, u8>, old: u8) -> Result<(), MapError> {
    let entries: Vec<(K, u8)> = map.iter().filter_map(Result::ok).collect();
    for (k, v) in entries {
        if v & old == 0 {
            continue;
        }
        let nv = v & !old;
        if nv & (FILTER_SLOT0 | FILTER_SLOT1) == 0 {
            let _ = map.remove(&k);
        } else {
            map.insert(k, nv, 0)?;
        }
    }
    Ok(())
}

/// Is `pid` a descendant of one of `roots` (walking /proc parent links)?
fn descends_from(pid: u32, roots: &[u32]) -> bool {
    let mut p = pid;
    for _ in 0..128 {
        let Ok(stat) = procfs::process::Process::new(p as i32).and_then(|p| p.stat()) else {
            return false;
        };
        let pp = stat.ppid.max(0) as u32;
        if roots.contains(&pp) {
            return true;
        }
        if pp <= 1 {
            return false;
        }
        p = pp;
    }
    false
}

impl KernelFilterMaps {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, (&'static str, MapError)> {
        Ok(KernelFilterMaps {
            pids: take(ebpf, MAP_FILTER_PIDS).map_err(|e| (MAP_FILTER_PIDS, e))?,
            cgroups: take(ebpf, MAP_FILTER_CGROUPS).map_err(|e| (MAP_FILTER_CGROUPS, e))?,
            uids: take(ebpf, MAP_FILTER_UIDS).map_err(|e| (MAP_FILTER_UIDS, e))?,
            slot1: true,
            follow_roots: Vec::new(),
        })
    }

    /// Writes `spec` into the idle generation and returns the `ProbeConfig::flags` bits that
    /// make it live. Call [`KernelFilterMaps::commit`] after the config map holds those flags.
    pub fn stage(&mut self, spec: &KernelFilterSpec) -> Result<u64, MapError> {
        let next = !self.slot1;
        let new = bit(next);
        let mut pids: Vec<(u32, u8)> = spec.pids.iter().map(|&p| (p, 0)).collect();
        if spec.follow && !spec.pids.is_empty() {
            // Descendants the kernel followed so far stay when their root is still asked for.
            let live = bit(self.slot1);
            let followed: Vec<u32> = self
                .pids
                .iter()
                .filter_map(Result::ok)
                .filter(|(k, v)| {
                    v & FILTER_FOLLOWED != 0 && v & live != 0 && !spec.pids.contains(k)
                })
                .map(|(k, _)| k)
                .collect();
            for k in followed {
                if descends_from(k, &spec.pids) {
                    pids.push((k, FILTER_FOLLOWED));
                }
            }
        }
        stage(&mut self.pids, &pids, new)?;
        self.follow_roots = if spec.follow {
            spec.pids.clone()
        } else {
            Vec::new()
        };
        let cg: Vec<(u64, u8)> = spec.cgroups.iter().map(|&c| (c, 0)).collect();
        stage(&mut self.cgroups, &cg, new)?;
        let uids: Vec<(u32, u8)> = spec.uids.iter().map(|&u| (u, 0)).collect();
        stage(&mut self.uids, &uids, new)?;
        let mut flags = if next { CFG_FILTER_SLOT1 } else { 0 };
        if !spec.pids.is_empty() {
            flags |= CFG_FILTER_PID;
            if spec.follow {
                flags |= CFG_FOLLOW;
            }
        }
        if !spec.cgroups.is_empty() {
            flags |= CFG_FILTER_CGROUP;
        }
        if !spec.uids.is_empty() {
            flags |= CFG_FILTER_UID;
        }
        Ok(flags)
    }

    /// The staged generation is live: drop the old one.
    pub fn commit(&mut self) -> Result<(), MapError> {
        let old = bit(self.slot1);
        self.slot1 = !self.slot1;
        let new = bit(self.slot1);
        // A child forked while its root was being staged copied the old generation only: it
        // still belongs to the new tree.
        if !self.follow_roots.is_empty() {
            let late: Vec<(u32, u8)> = self
                .pids
                .iter()
                .filter_map(Result::ok)
                .filter(|(k, v)| {
                    v & FILTER_FOLLOWED != 0
                        && v & new == 0
                        && descends_from(*k, &self.follow_roots)
                })
                .collect();
            for (k, v) in late {
                self.pids.insert(k, v | new, 0)?;
            }
        }
        retire(&mut self.pids, old)?;
        retire(&mut self.cgroups, old)?;
        retire(&mut self.uids, old)
    }

    /// Pids in the live set (roots and followed descendants).
    pub fn live_pids(&self) -> Vec<u32> {
        let live = bit(self.slot1);
        self.pids
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| v & live != 0)
            .map(|(k, _)| k)
            .collect()
    }
}
