//! SIGHUP: read the config again and switch kinds, threads, filters (kernel maps and
//! userspace) and sinks without losing an event. Settings that shape what was loaded (ring
//! buffer size, BTF, host name, ...) need a restart and are reported as such.
use probe_common::EventKind;

use crate::{
    analyze::Analyzer,
    clock::BootClock,
    config::RunConfig,
    event::{Body, Event},
    families,
    filter::OutputFilter,
    kernel::load::Probe,
    pipeline::Reload,
    sink::Sink,
};

/// The kinds the kernel must produce: the user's, plus process lifecycle events, which keep
/// the process table right whatever the user chose to see, and with XDP the socket events
/// that tell the flow tracker which process owns a connection (even one already closed when
/// its flow is reported).
pub fn kernel_kinds(kinds: &[EventKind], xdp: bool) -> Vec<EventKind> {
    let mut out = kinds.to_vec();
    let owners: &[EventKind] = if xdp {
        &[
            EventKind::NetConnect,
            EventKind::NetAccept,
            EventKind::NetBind,
            EventKind::NetSend,
        ]
    } else {
        &[]
    };
    for &k in [
        EventKind::ProcessExec,
        EventKind::ProcessFork,
        EventKind::ProcessExit,
    ]
    .iter()
    .chain(owners)
    {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

pub struct Reloader {
    current: RunConfig,
    /// Kinds the running rules and lists need.
    analyzed: Vec<EventKind>,
}

/// The user's kinds and the analyzer's, for the kernel.
pub fn wanted_kinds(kinds: &[EventKind], analyzed: &[EventKind]) -> Vec<EventKind> {
    let mut out = kinds.to_vec();
    for k in analyzed {
        if !out.contains(k) {
            out.push(*k);
        }
    }
    out
}

/// Settings whose change needs a restart, with their values.
fn restart_only(c: &RunConfig) -> Vec<(&'static str, String)> {
    vec![
        ("ringbuf_size", c.ringbuf_bytes.to_string()),
        ("flush_interval", format!("{:?}", c.flush_interval)),
        ("host_name", c.host_name.clone()),
        ("btf", c.btf_path.display().to_string()),
        ("duration", format!("{:?}", c.duration)),
        ("count", format!("{:?}", c.count)),
        ("enrichment", format!("{:?}", c.containers)),
        ("limits", format!("{:?}", c.limits)),
        ("format", format!("{:?} {:?}", c.format, c.pretty)),
        ("file", format!("{:?}", c.file)),
        ("security", format!("{:?}", c.security)),
        ("xdp", format!("{:?}", c.xdp)),
        ("service", format!("{:?}", c.service)),
    ]
}

impl Reloader {
    pub fn new(current: RunConfig, analyzed: Vec<EventKind>) -> Self {
        Reloader { current, analyzed }
    }

    /// Builds the new settings, switches the kernel side, and returns what the pipeline must
    /// switch to (with `after_batches` still to be set by the caller). On error nothing has
    /// changed.
    pub fn reload(
        &mut self,
        probe: &mut Probe,
        build_sink: impl Fn(&RunConfig) -> anyhow::Result<Box<dyn Sink>>,
    ) -> anyhow::Result<Reload> {
        let source = self
            .current
            .source
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no command line to reload from"))?;
        let mut new = source.resolve()?;
        let mut warnings = Vec::new();
        // The baseline keeps running as it started (its profiles live in memory).
        if new.analyze.baseline != self.current.analyze.baseline {
            warnings.push("analyze.baseline changed: takes effect at the next start".to_owned());
            new.analyze.baseline = self.current.analyze.baseline.clone();
        }
        let filter = OutputFilter::new(&new.filters).map_err(|e| anyhow::anyhow!(e))?;
        let sink = build_sink(&new)?;
        // Rule files are read again (they may have changed under the same paths); a set that
        // does not load leaves the running one in place.
        let analyzer = match Analyzer::load(&new.analyze) {
            Ok(a) => Some((!a.is_noop()).then_some(a)),
            Err(e) => {
                warnings.push(format!(
                    "rules and IoC lists not reloaded, the running ones stay: {e}"
                ));
                None
            }
        };
        let analyzed = match &analyzer {
            Some(Some(a)) => a.kinds(),
            Some(None) => Vec::new(),
            None => self.analyzed.clone(),
        };
        let wanted_all = wanted_kinds(&new.kinds, &analyzed);
        for ((key, old), (_, now)) in restart_only(&self.current)
            .into_iter()
            .zip(restart_only(&new))
        {
            if old != now {
                warnings.push(format!("{key} changed: takes effect at the next start"));
            }
        }
        for h in families::hooks() {
            let wanted: Vec<&str> = h
                .kinds
                .iter()
                .filter(|k| wanted_all.contains(k))
                .map(|k| k.name())
                .collect();
            let attached = probe
                .hooks
                .iter()
                .any(|r| r.program == h.program && r.attached);
            if !wanted.is_empty() && !attached {
                warnings.push(format!(
                    "{} needs hook {}, attached only at start: restart to get it",
                    wanted.join(", "),
                    h.attach.describe()
                ));
            }
        }
        for w in &warnings {
            eprintln!("tprobe: reload: {w}");
        }
        probe.reconfigure(
            &kernel_kinds(&wanted_all, self.current.xdp.is_some()),
            new.threads,
            &new.filters.kernel(),
        )?;
        let info = serde_json::json!({
            "config_file": new.config_path.as_ref().map(|p| p.display().to_string()),
            "config": {
                "events": new.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
                "threads": new.threads,
                "filters": new.filters,
                "analyze": {
                    "rules": new.analyze.rules.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "ioc": new.analyze.ioc.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "reloaded": matches!(analyzer, Some(Some(_))),
                },
                "output": new.output.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "stdout".into()),
            },
            "warnings": warnings,
        });
        let reload = Reload {
            after_batches: 0,
            filter,
            emit: new.kinds.clone(),
            alerts: new.alerts,
            analyzer,
            sink: Some(sink),
            event: Event::probe(BootClock::now_boot_ns(), Body::Reload { info }),
        };
        // Settings that need a restart keep their running values.
        let mut kept = new;
        kept.ringbuf_bytes = self.current.ringbuf_bytes;
        kept.flush_interval = self.current.flush_interval;
        kept.host_name = self.current.host_name.clone();
        kept.btf_path = self.current.btf_path.clone();
        kept.duration = self.current.duration;
        kept.count = self.current.count;
        kept.enrichment = self.current.enrichment.clone();
        kept.limits = self.current.limits.clone();
        kept.containers = self.current.containers.clone();
        kept.format = self.current.format;
        kept.pretty = self.current.pretty;
        kept.file = self.current.file.clone();
        kept.security = self.current.security.clone();
        kept.xdp = self.current.xdp.clone();
        kept.service = self.current.service.clone();
        if reload.analyzer.is_none() {
            kept.analyze = self.current.analyze.clone();
        }
        self.current = kept;
        self.analyzed = analyzed;
        Ok(reload)
    }
}
