//! Kernel feature probes: what tprobe needs that a kernel may lack, each asked of the running
//! kernel directly (a tiny map or program load) rather than guessed from its version, and
//! reported in `probe.start` with a plain reason, so an old or trimmed kernel says what it
//! lacks instead of failing with a verifier log.
use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{is_helper_supported, is_map_supported, is_program_supported, BpfHelper},
};

use super::hook::Attach;

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
pub const TASK_STORAGE: &str = "task_storage";
pub const TASK_STORAGE_HELPER: &str = "bpf_task_storage_get";

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
            // The object declares task-local storage maps, so no program loads without them.
            report(
                TASK_STORAGE,
                "loading the probe: per-thread state of file and network calls (task-local \
                 storage, Linux 5.11)",
                is_map_supported(MapType::TaskStorage).map_err(|e| e.to_string()),
            ),
            // Only the file and network hooks call it; where it is missing they are skipped
            // with the verifier's reason.
            report(
                TASK_STORAGE_HELPER,
                "file and network hooks (task-local storage from tracepoints, Linux 5.12)",
                helper(BpfHelper::BPF_FUNC_task_storage_get),
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
            .filter(|r| {
                !r.available
                    && ![RAW_TRACEPOINT, TRACEPOINT, TASK_STORAGE_HELPER].contains(&r.feature)
            })
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

/// A one-line reason for a program the kernel refused: the verifier's own complaint and the
/// instruction it stopped at. The whole log goes to the debug log (`RUST_LOG=debug`).
pub fn load_failure(program: &str, e: &aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            log::debug!("verifier log of {program}:\n{log}");
            format!(
                "the verifier rejected it ({io_error}): {}",
                verifier_summary(&log)
            )
        }
        other => format!("load: {other}"),
    }
}

/// The rejection message of a verifier log and the last instruction before it.
pub fn verifier_summary(log: &str) -> String {
    let is_stats = |l: &str| {
        l.is_empty()
            || l.starts_with("verification time")
            || l.starts_with("stack depth")
            || l.starts_with("processed ")
            || l.starts_with('}')
    };
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    let Some(end) = lines.iter().rposition(|l| !is_stats(l)) else {
        return "no verifier output".into();
    };
    let msg = lines[end];
    // Instructions look like `402: (85) call bpf_ringbuf_output#130`.
    let insn = lines[..end].iter().rev().find(|l| {
        l.split_once(": (")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    match insn {
        Some(i) => format!("{msg} (at {})", i.split(" ; ").next().unwrap_or(i).trim()),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(feature: &'static str, available: bool) -> Features {
        let mut f = Features {
            reports: [RINGBUF, RAW_TRACEPOINT, TRACEPOINT]
                .into_iter()
                .map(|n| report(n, "x", Ok(true)))
                .collect(),
        };
        f.reports
            .iter_mut()
            .filter(|r| r.feature == feature)
            .for_each(|r| r.available = available);
        f
    }

    #[test]
    fn missing_program_types_skip_hooks_not_the_probe() {
        let f = with(RAW_TRACEPOINT, false);
        assert_eq!(f.missing_required(), None);
        assert_eq!(
            f.hook_unsupported(&Attach::RawTracePoint("sched_process_exec"))
                .as_deref(),
            Some("this kernel does not support raw tracepoint programs")
        );
        assert_eq!(
            f.hook_unsupported(&Attach::TracePoint("sched", "sched_process_exit")),
            None
        );
    }

    #[test]
    fn missing_task_storage_stops_the_probe_a_missing_helper_does_not() {
        let mut f = with(RINGBUF, true);
        f.reports.push(report(TASK_STORAGE, "x", Ok(false)));
        f.reports.push(report(TASK_STORAGE_HELPER, "y", Ok(false)));
        assert_eq!(
            f.missing_required().as_deref(),
            Some("task_storage (needed for x)")
        );
    }

    #[test]
    fn a_missing_ring_buffer_stops_the_probe() {
        let f = with(RINGBUF, false);
        assert!(f
            .missing_required()
            .unwrap()
            .starts_with("ringbuf (needed for"));
        // A probe that could not answer does not count as missing.
        let f = Features {
            reports: vec![report(RINGBUF, "x", Err("EINVAL".into()))],
        };
        assert_eq!(f.missing_required(), None);
    }

    #[test]
    fn verifier_summary_keeps_the_complaint_and_its_instruction() {
        // Tail of the 6.1 verifier's refusal of an earlier exec program.
        let log = "0: R1=ctx(off=0,imm=0) R10=fp0\n\
            ; fun(ringbuf, data, size, flags)\n\
            401: (bf) r3 = r9                     ; R3_w=scalar(id=19) R9_w=scalar(id=19)\n\
            402: (85) call bpf_ringbuf_output#130\n\
            R3 min value is negative, either use unsigned or 'var &= const'\n\
            verification time 7520 usec\n\
            stack depth 128+0\n\
            processed 509 insns (limit 1000000) max_states_per_insn 2 total_states 28\n";
        assert_eq!(
            verifier_summary(log),
            "R3 min value is negative, either use unsigned or 'var &= const' \
             (at 402: (85) call bpf_ringbuf_output#130)"
        );
        assert_eq!(verifier_summary(""), "no verifier output");
        assert_eq!(verifier_summary("invalid argument\n"), "invalid argument");
    }
}
