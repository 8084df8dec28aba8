//! Load the eBPF object, write its configuration, attach the hooks the enabled kinds need, and
//! report what was attached and what was skipped (and why).
use std::path::Path;

use aya::{
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{RawTracePoint, TracePoint},
    Ebpf, EbpfLoader,
};
use probe_common::{EventKind, ProbeConfig, CFG_THREADS, MAP_CONFIG, MAP_EVENTS, MAP_LOSSES};

use super::{
    btf,
    features::Features,
    filter_maps::KernelFilterMaps,
    hook::{Attach, Hook, HookReport, MapWriteError},
    tracefs,
};
use crate::{families, filter::KernelFilterSpec};

/// The compiled eBPF object, built by `build.rs`.
pub(crate) static PROBE_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("kernel BTF: {0} (tprobe needs a kernel built with CONFIG_DEBUG_INFO_BTF=y)")]
    Btf(#[from] btf::BtfError),
    #[error(transparent)]
    Tracefs(#[from] tracefs::TracefsError),
    #[error("loading eBPF programs was refused: {0} (run as root, or grant CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE)")]
    Permission(String),
    #[error("loading eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, aya::maps::MapError),
    #[error(transparent)]
    FamilyMap(#[from] MapWriteError),
    #[error("no hook could be attached; first failure: {0}")]
    NothingAttached(String),
    #[error("this kernel lacks what tprobe needs: {0}")]
    Unsupported(String),
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub kinds: Vec<EventKind>,
    pub threads: bool,
    /// Ring buffer size in bytes (a power of two, a multiple of the page size).
    pub ringbuf_bytes: u32,
    /// Wake the reader once this many bytes are queued.
    pub wakeup_bytes: u64,
    pub btf_path: std::path::PathBuf,
    /// Entries of the XDP flow map (1 when no interface is watched, to save memory).
    pub flow_entries: u32,
    /// File event settings (prefix filters, read-only opens).
    pub families: families::FamilyOptions,
    /// Pid/cgroup/uid sets applied in the kernel.
    pub filters: KernelFilterSpec,
}

/// A loaded, attached probe. Dropping `ebpf` (see [`Probe::detach`]) detaches every hook.
pub struct Probe {
    ebpf: Option<Ebpf>,
    pub ring: Option<RingBuf<MapData>>,
    pub losses: PerCpuArray<MapData, u64>,
    config: Array<MapData, ProbeConfig>,
    pub hooks: Vec<HookReport>,
    /// Kernel features probed before loading (reported in `probe.start`).
    pub features: Vec<super::features::FeatureReport>,
    kfilters: KernelFilterMaps,
    /// What the config map holds, so a change of one part keeps the others.
    current: ProbeConfig,
}

pub fn probe_config(kinds: &[EventKind], threads: bool) -> ProbeConfig {
    ProbeConfig {
        enabled: kinds.iter().fold(0, |m, k| m | k.bit()),
        flags: if threads { CFG_THREADS } else { 0 },
    }
}

fn raise_memlock() {
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones ignore it.
    let rl = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) };
    if ret != 0 {
        log::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn is_permission(e: &aya::EbpfError) -> bool {
    let s = format!("{e:?}");
    s.contains("EPERM") || s.contains("Operation not permitted") || s.contains("PermissionDenied")
}

pub fn load(opts: &LoadOptions) -> Result<Probe, LoadError> {
    raise_memlock();
    let tracefs_root = tracefs::ensure_mounted()?;
    let kbtf = btf::Btf::from_file(&opts.btf_path)?;
    let offsets = btf::kernel_offsets(&kbtf)?;
    let self_tgid = std::process::id();
    let features = Features::probe();
    if let Some(missing) = features.missing_required() {
        return Err(LoadError::Unsupported(missing));
    }

    let globals = families::Globals::from_btf(&kbtf);
    // The loader holds aya's own parse of the kernel BTF (megabytes): scoped to the load, so
    // it is gone before the programs attach and does not raise the peak RSS.
    let loaded = {
        let mut loader = EbpfLoader::new();
        globals.apply(&mut loader);
        loader
            .override_global("SELF_TGID", &self_tgid, true)
            .override_global("OFFSETS", &offsets, true)
            .override_global("WAKEUP_BYTES", &opts.wakeup_bytes, true)
            // Task-local storage (pending file calls) is created and used by the kernel side
            // only; aya has no userspace wrapper for it, which is all "unsupported" means here.
            .allow_unsupported_maps()
            .map_max_entries(MAP_EVENTS, opts.ringbuf_bytes)
            .map_max_entries(probe_common::MAP_FLOWS, opts.flow_entries.max(1))
            .load(PROBE_OBJ)
    };
    let mut ebpf = loaded.map_err(|e| {
        if is_permission(&e) {
            LoadError::Permission(e.to_string())
        } else {
            LoadError::Load(e)
        }
    })?;

    let mut config: Array<MapData, ProbeConfig> = ebpf
        .take_map(MAP_CONFIG)
        .ok_or(LoadError::Map(
            MAP_CONFIG,
            aya::maps::MapError::InvalidName {
                name: MAP_CONFIG.into(),
            },
        ))?
        .try_into()
        .map_err(|e| LoadError::Map(MAP_CONFIG, e))?;
    let mut kfilters = KernelFilterMaps::take(&mut ebpf).map_err(|(n, e)| LoadError::Map(n, e))?;
    let mut current = probe_config(&opts.kinds, opts.threads);
    current.flags |= kfilters
        .stage(&opts.filters)
        .map_err(|e| LoadError::Map(probe_common::MAP_FILTER_PIDS, e))?;
    config
        .set(0, current, 0)
        .map_err(|e| LoadError::Map(MAP_CONFIG, e))?;
    families::write_maps(&mut ebpf, &opts.families)?;
    kfilters
        .commit()
        .map_err(|e| LoadError::Map(probe_common::MAP_FILTER_PIDS, e))?;
    let losses: PerCpuArray<MapData, u64> = ebpf
        .take_map(MAP_LOSSES)
        .ok_or(LoadError::Map(
            MAP_LOSSES,
            aya::maps::MapError::InvalidName {
                name: MAP_LOSSES.into(),
            },
        ))?
        .try_into()
        .map_err(|e| LoadError::Map(MAP_LOSSES, e))?;
    let ring: RingBuf<MapData> = ebpf
        .take_map(MAP_EVENTS)
        .ok_or(LoadError::Map(
            MAP_EVENTS,
            aya::maps::MapError::InvalidName {
                name: MAP_EVENTS.into(),
            },
        ))?
        .try_into()
        .map_err(|e| LoadError::Map(MAP_EVENTS, e))?;

    let mut hooks = Vec::new();
    for hook in families::hooks() {
        let mut report = HookReport {
            hook: hook.attach.describe(),
            program: hook.program,
            attached: false,
            reason: None,
        };
        if !hook.kinds.iter().any(|k| opts.kinds.contains(k)) {
            report.reason = Some("no enabled event kind needs it".into());
        } else if let Some(why) = features.hook_unsupported(&hook.attach) {
            report.reason = Some(why);
        } else if let Err(e) = attach(&mut ebpf, hook, &tracefs_root) {
            report.reason = Some(e);
        } else {
            report.attached = true;
        }
        hooks.push(report);
    }
    let wanted: Vec<_> = hooks
        .iter()
        .filter(|h| h.reason.as_deref() != Some("no enabled event kind needs it"))
        .collect();
    if !wanted.is_empty() && wanted.iter().all(|h| !h.attached) {
        let first = wanted[0].reason.clone().unwrap_or_default();
        if first.contains("EPERM") || first.contains("Operation not permitted") {
            return Err(LoadError::Permission(first));
        }
        return Err(LoadError::NothingAttached(first));
    }
    Ok(Probe {
        ebpf: Some(ebpf),
        ring: Some(ring),
        losses,
        config,
        hooks,
        features: features.reports,
        kfilters,
        current,
    })
}

fn attach(ebpf: &mut Ebpf, hook: &Hook, tracefs_root: &Path) -> Result<(), String> {
    let prog = ebpf
        .program_mut(hook.program)
        .ok_or_else(|| format!("program {} missing from the object", hook.program))?;
    match hook.attach {
        Attach::TracePoint(cat, name) => {
            if !tracefs::tracepoint_exists(tracefs_root, cat, name) {
                let why = families::missing_hint(name)
                    .map(|h| format!(": {h}"))
                    .unwrap_or_default();
                return Err(format!(
                    "tracepoint {cat}:{name} does not exist on this kernel{why}"
                ));
            }
            let p: &mut TracePoint = prog.try_into().map_err(|e| format!("{e}"))?;
            p.load()
                .map_err(|e| super::features::load_failure(hook.program, &e))?;
            p.attach(cat, name).map_err(|e| format!("attach: {e}"))?;
        }
        Attach::RawTracePoint(name) => {
            let p: &mut RawTracePoint = prog.try_into().map_err(|e| format!("{e}"))?;
            p.load()
                .map_err(|e| super::features::load_failure(hook.program, &e))?;
            p.attach(name).map_err(|e| format!("attach: {e}"))?;
        }
    }
    Ok(())
}

impl Probe {
    /// Rewrites the run-time configuration (enabled kinds, flags) in the kernel.
    pub fn set_config(&mut self, cfg: ProbeConfig) -> Result<(), LoadError> {
        self.config
            .set(0, cfg, 0)
            .map_err(|e| LoadError::Map(MAP_CONFIG, e))
    }

    /// The loaded object, for hooks attached outside the tracepoint table (XDP); `None` once
    /// detached.
    pub fn ebpf_mut(&mut self) -> Option<&mut Ebpf> {
        self.ebpf.as_mut()
    }

    /// Switches kinds, thread reporting and kernel filter sets in one config update (see
    /// `filter_maps`): each event sees the old settings or the new ones, never a mix.
    pub fn reconfigure(
        &mut self,
        kinds: &[EventKind],
        threads: bool,
        filters: &KernelFilterSpec,
    ) -> Result<(), LoadError> {
        let map_err = |e| LoadError::Map(probe_common::MAP_FILTER_PIDS, e);
        let mut cfg = probe_config(kinds, threads);
        cfg.flags |= self.kfilters.stage(filters).map_err(map_err)?;
        self.set_config(cfg)?;
        self.current = cfg;
        self.kfilters.commit().map_err(map_err)
    }

    /// `--follow` descendants the kernel could not add to a full pid set (summed over CPUs).
    pub fn follow_losses(&self) -> u64 {
        self.losses
            .get(&probe_common::LOSS_SLOT_FOLLOW, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }

    /// What the programs read from the config map.
    pub fn config(&self) -> ProbeConfig {
        self.current
    }

    /// Pids the kernel filter currently matches (`--pid` roots and `--follow` descendants).
    pub fn filtered_pids(&self) -> Vec<u32> {
        self.kfilters.live_pids()
    }

    /// Detaches every hook; the maps (ring buffer, counters) stay readable.
    pub fn detach(&mut self) {
        self.ebpf.take();
    }

    /// Kernel-side losses per kind id, summed over CPUs.
    pub fn losses(&self) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        for k in EventKind::ALL {
            if let Ok(v) = self.losses.get(&(*k as u32), 0) {
                let n: u64 = v.iter().sum();
                out.push((*k as u32, n));
            }
        }
        out
    }
}
