//! Kernel feature probes: what tprobe needs that a kernel may lack, each asked of the running
//! kernel directly (a tiny map or program load) rather than guessed from its version, and
//! reported in `probe.start` with a plain reason, so an old or trimmed kernel says what it
//! lacks instead of failing with a verifier log.
use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{is_helper_supported, is_map_supported, is_program_supported, BpfHelper},
};

use crate::loader::Attach;

/// One probed feature.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FeatureReport {
    pub feature: &'static str,
    pub available: bool,
    /// What needs it and since which kernel it exists.
    pub needed_for: &'static str,
    /// Why the probe itself failed, when it could not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answers, as the loader uses them.
#[derive(Clone, Debug)]
pub struct Features {
    pub reports: Vec<FeatureReport>,
}

fn report(
    feature: &'static str,
    needed_for: &'static str,
    answer: Result<bool, String>,
) -> FeatureReport {
    match answer {
        Ok(available) => FeatureReport {
            feature,
            available,
            needed_for,
            error: None,
        },
        // A probe that could not answer is not a verdict: let the real load decide.
        Err(e) => FeatureReport {
            feature,
            available: true,
            needed_for,
            error: Some(e),
        },
    }
}

pub const RINGBUF: &str = "ringbuf";
pub const RAW_TRACEPOINT: &str = "raw_tracepoint";
pub const TRACEPOINT: &str = "tracepoint";

impl Features {
    /// Asks the running kernel. Needs the same privileges as loading the probe.
    pub fn probe() -> Features {
        let helper = |h: BpfHelper| {
            is_helper_supported(ProgramType::TracePoint, h).map_err(|e| e.to_string())
        };
        let reports = vec![
            report(
                RINGBUF,
                "every event (BPF ring buffer, Linux 5.8)",
                is_map_supported(MapType::RingBuf).map_err(|e| e.to_string()),
            ),
            report(
                RAW_TRACEPOINT,
                "raw_tracepoint hooks (Linux 4.17)",
                is_program_supported(ProgramType::RawTracePoint).map_err(|e| e.to_string()),
            ),
            report(
                TRACEPOINT,
                "tracepoint hooks (Linux 4.7)",
                is_program_supported(ProgramType::TracePoint).map_err(|e| e.to_string()),
            ),
            report(
                "bpf_probe_read_kernel",
                "kernel struct reads (Linux 5.5)",
                helper(BpfHelper::BPF_FUNC_probe_read_kernel),
            ),
            report(
                "bpf_ktime_get_boot_ns",
                "event timestamps (Linux 5.8)",
                helper(BpfHelper::BPF_FUNC_ktime_get_boot_ns),
            ),
        ];
        Features { reports }
    }

    pub fn has(&self, feature: &str) -> bool {
        self.reports
            .iter()
            .find(|r| r.feature == feature)
            .is_none_or(|r| r.available)
    }

    /// Required features the kernel lacks, as one sentence; `None` when all are there.
    pub fn missing_required(&self) -> Option<String> {
        let missing: Vec<String> = self
            .reports
            .iter()
            .filter(|r| !r.available && r.feature != RAW_TRACEPOINT && r.feature != TRACEPOINT)
            .map(|r| format!("{} (needed for {})", r.feature, r.needed_for))
            .collect();
        (!missing.is_empty()).then(|| missing.join(", "))
    }

    /// Why `attach` cannot work on this kernel, before trying it.
    pub fn hook_unsupported(&self, attach: &Attach) -> Option<String> {
        let (feature, what) = match attach {
            Attach::RawTracePoint(_) => (RAW_TRACEPOINT, "raw tracepoint"),
            Attach::TracePoint(..) => (TRACEPOINT, "tracepoint"),
            #[allow(unreachable_patterns)]
            _ => return None,
        };
        (!self.has(feature)).then(|| format!("this kernel does not support {what} programs"))
    }
}
