//! The config file under the flags: a flag the user gave wins, the file fills in the rest,
//! and the result is validated as one [`RunConfig`].
use std::{collections::BTreeSet, path::Path};

use super::{
    cli::{each, RunArgs},
    error::ConfigError,
    file::{file_err, load},
    kinds::parse_kinds,
    units::{check_ring_size, parse_duration, parse_size},
    RunConfig, Source,
};
use crate::filter;

/// Flags the user gave (on the command line or through their environment variable): clap
/// argument ids, i.e. `RunArgs` field names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Given(pub BTreeSet<String>);

impl Given {
    pub fn from_matches(m: &clap::ArgMatches) -> Self {
        use clap::parser::ValueSource;
        Given(
            m.ids()
                .filter(|id| {
                    matches!(
                        m.value_source(id.as_str()),
                        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                    )
                })
                .map(|id| id.as_str().to_owned())
                .collect(),
        )
    }

    fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

/// Merges the file named by `--config` under the flags the user gave, validates the result.
pub fn resolve(args: &RunArgs, given: &Given) -> Result<RunConfig, ConfigError> {
    let mut cfg = merge(args, given)?;
    let (args, given) = (args.clone(), given.clone());
    cfg.source = Some(Source::new(move || resolve(&args, &given)));
    Ok(cfg)
}

fn merge(args: &RunArgs, given: &Given) -> Result<RunConfig, ConfigError> {
    let Some(path) = args.config.clone() else {
        return args.clone().into_config();
    };
    let file = load(&path)?;
    let p = path.as_path();
    let mut a = args.clone();
    let take = |id: &str| !given.has(id);

    if let (Some(v), true) = (&file.events, take("events")) {
        let joined = v.0.join(",");
        parse_kinds(&joined).map_err(|e| file_err(p, "events", format!("bad value: {e}")))?;
        a.events = joined;
    }
    if let (Some(v), true) = (file.threads, take("threads")) {
        a.threads = v;
    }
    if let (Some(v), true) = (&file.duration, take("duration")) {
        a.duration = Some(parse_duration(&v.0).map_err(|e| file_err(p, "duration", e))?);
    }
    if let (Some(v), true) = (file.count, take("count")) {
        a.count = Some(v);
    }
    if let (Some(v), true) = (&file.output, take("output")) {
        a.output = Some(v.clone());
    }
    if let (Some(v), true) = (&file.ringbuf_size, take("ringbuf_size")) {
        parse_size(&v.0)
            .and_then(check_ring_size)
            .map_err(|e| file_err(p, "ringbuf_size", format!("bad value: {e}")))?;
        a.ringbuf_size = v.0.clone();
    }
    if let (Some(v), true) = (&file.flush_interval, take("flush_interval")) {
        a.flush_interval = parse_duration(&v.0).map_err(|e| file_err(p, "flush_interval", e))?;
    }
    if let (Some(v), true) = (&file.host_name, take("host_name")) {
        a.host_name = Some(v.clone());
    }
    if let (Some(v), true) = (&file.btf, take("btf")) {
        a.btf = v.clone();
    }
    if let Some(f) = &file.filters {
        // Each list is checked here so the message names the key, then handed to the flags.
        macro_rules! list {
            ($field:ident, $key:literal, $parse:expr) => {
                if let (Some(v), true) = (&f.$field, take(stringify!($field))) {
                    each(&v.0, $parse, |e| {
                        file_err(p, $key, format!("bad value: {e}"))
                    })?;
                    a.$field = v.0.clone();
                }
            };
        }
        list!(pid, "filters.pid", filter::parse_pid);
        list!(uid, "filters.uid", filter::parse_uid);
        list!(cgroup, "filters.cgroup", filter::parse_cgroup);
        list!(comm, "filters.comm", filter::parse_glob);
        list!(exe, "filters.exe", filter::parse_glob);
        list!(container, "filters.container", |s: &str| Ok::<_, String>(
            s.to_owned()
        ));
        list!(pod, "filters.pod", filter::parse_pod);
        list!(namespace, "filters.namespace", |s: &str| Ok::<_, String>(
            s.to_owned()
        ));
        if let (Some(v), true) = (f.follow, take("follow")) {
            a.follow = v;
        }
        // The two scope flags are one setting: either on the command line overrides both.
        if take("host_only") && take("containers_only") {
            let (h, c) = (
                f.host_only.unwrap_or(false),
                f.containers_only.unwrap_or(false),
            );
            if h && c {
                return Err(file_err(
                    p,
                    "filters.host_only",
                    "bad value: cannot be true together with filters.containers_only",
                ));
            }
            a.host_only = h;
            a.containers_only = c;
        }
        if a.follow && a.pid.is_empty() {
            return Err(file_err(
                p,
                "filters.follow",
                "bad value: needs filters.pid (the processes whose descendants to follow)",
            ));
        }
    }
    if let (Some(v), true) = (&file.format, take("format")) {
        a.format = clap::ValueEnum::from_str(v, true)
            .map_err(|_| file_err(p, "format", "bad value: use native, ecs or ocsf"))?;
    }
    if let (Some(v), true) = (file.pretty, take("pretty")) {
        a.pretty = v;
    }
    if let (Some(v), true) = (&file.sinks, take("sinks")) {
        a.sinks = v
            .iter()
            .map(|spec| crate::sink::config::parse_sink(spec))
            .collect::<Result<_, _>>()
            .map_err(|e| file_err(p, "sinks", format!("bad value: {e}")))?;
    }
    if let Some(f) = &file.file {
        if let (Some(v), true) = (&f.include, take("file_include")) {
            a.file.file_include = v.0.clone();
        }
        if let (Some(v), true) = (&f.exclude, take("file_exclude")) {
            a.file.file_exclude = v.0.clone();
        }
        if let (Some(v), true) = (f.reads, take("file_reads")) {
            a.file.file_reads = v;
        }
    }
    if let Some(f) = &file.process {
        if let (Some(v), true) = (f.ancestors, take("ancestors")) {
            a.process.ancestors = v;
        }
        if let (Some(v), true) = (f.hash, take("no_hash")) {
            a.process.no_hash = !v;
        }
        if let (Some(v), true) = (&f.hash_max_size, take("hash_max_size")) {
            parse_size(&v.0).map_err(|e| file_err(p, "process.hash_max_size", e))?;
            a.process.hash_max_size = v.0.clone();
        }
        if let (Some(v), true) = (&f.hash_wait, take("hash_wait")) {
            a.process.hash_wait =
                parse_duration(&v.0).map_err(|e| file_err(p, "process.hash_wait", e))?;
        }
    }
    if let Some(s) = &file.security {
        if let (Some(v), true) = (&s.signals, take("signals")) {
            a.security.signals = v.0.clone();
        }
        if let (Some(v), true) = (s.ptrace_peeks, take("ptrace_peeks")) {
            a.security.ptrace_peeks = v;
        }
    }
    if let Some(x) = &file.xdp {
        if let (Some(v), true) = (&x.ifaces, take("xdp_iface")) {
            a.xdp_iface = v.0.clone();
        }
        if let (Some(v), true) = (&x.mode, take("xdp_mode")) {
            a.xdp_mode = clap::ValueEnum::from_str(v, true)
                .map_err(|_| file_err(p, "xdp.mode", "bad value: use auto, skb or native"))?;
        }
        if let (Some(v), true) = (x.replace, take("xdp_replace")) {
            a.xdp_replace = v;
        }
        if let (Some(v), true) = (&x.active_timeout, take("flow_active_timeout")) {
            a.flow_active_timeout =
                parse_duration(&v.0).map_err(|e| file_err(p, "xdp.active_timeout", e))?;
        }
        if let (Some(v), true) = (&x.idle_timeout, take("flow_idle_timeout")) {
            a.flow_idle_timeout =
                parse_duration(&v.0).map_err(|e| file_err(p, "xdp.idle_timeout", e))?;
        }
        if let (Some(v), true) = (x.table_size, take("flow_table_size")) {
            a.flow_table_size = v;
        }
    }
    if let Some(e) = &file.enrichment {
        let c = &mut a.containers;
        if let (Some(v), true) = (e.containers, take("no_containers")) {
            c.no_containers = !v;
        }
        for (key, id, value, slot) in [
            (
                "enrichment.cri_socket",
                "cri_socket",
                &e.cri_socket,
                &mut c.cri_socket,
            ),
            (
                "enrichment.containerd_socket",
                "containerd_socket",
                &e.containerd_socket,
                &mut c.containerd_socket,
            ),
            (
                "enrichment.docker_socket",
                "docker_socket",
                &e.docker_socket,
                &mut c.docker_socket,
            ),
        ] {
            if let (Some(v), true) = (value, take(id)) {
                if v.trim().is_empty() {
                    return Err(file_err(p, key, "bad value: a path, `auto` or `none`"));
                }
                *slot = Some(v.clone());
            }
        }
        if let (Some(v), true) = (&e.containerd_namespace, take("containerd_namespace")) {
            c.containerd_namespace = v.clone();
        }
        if let (Some(v), true) = (&e.container_wait, take("container_wait")) {
            c.container_wait =
                parse_duration(v).map_err(|x| file_err(p, "enrichment.container_wait", x))?;
        }
        if let (Some(v), true) = (
            &e.container_sweep_interval,
            take("container_sweep_interval"),
        ) {
            c.container_sweep_interval = parse_duration(v)
                .map_err(|x| file_err(p, "enrichment.container_sweep_interval", x))?;
        }
    }
    if let Some(sv) = &file.service {
        let s = &mut a.service;
        if let (Some(v), true) = (&sv.metrics_addr, take("metrics_addr") && take("no_metrics")) {
            if v.trim() == "none" {
                s.no_metrics = true;
            } else {
                s.metrics_addr = Some(v.trim().parse().map_err(|_| {
                    file_err(p, "service.metrics_addr", "bad value: IP:PORT or `none`")
                })?);
            }
        }
        if let (Some(v), true) = (&sv.stall_timeout, take("stall_timeout")) {
            s.stall_timeout =
                parse_duration(&v.0).map_err(|e| file_err(p, "service.stall_timeout", e))?;
        }
        if let (Some(v), true) = (&sv.shutdown_timeout, take("shutdown_timeout")) {
            s.shutdown_timeout =
                parse_duration(&v.0).map_err(|e| file_err(p, "service.shutdown_timeout", e))?;
        }
        if let (Some(v), true) = (&sv.proc_root, take("proc_root")) {
            s.proc_root = v.clone();
        }
    }
    if let Some(an) = &file.analyze {
        // Relative paths are taken from the config file's folder, where they were written.
        let dir = p.parent().unwrap_or(Path::new("."));
        let paths = |l: &super::file::List| -> Vec<std::path::PathBuf> {
            l.0.iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| dir.join(s))
                .collect()
        };
        if let (Some(v), true) = (&an.rules, take("rules")) {
            a.rules = paths(v);
        }
        if let (Some(v), true) = (&an.ioc, take("ioc")) {
            a.ioc = paths(v);
        }
        if let Some(b) = &an.baseline {
            let ba = &mut a.baseline;
            let key = |k: &str| format!("analyze.baseline.{k}");
            let dur = |v: &super::file::Scalar, k: &str| {
                parse_duration(&v.0).map_err(|e| file_err(p, &key(k), e))
            };
            if let (Some(v), true) = (&b.dir, take("baseline")) {
                ba.baseline = Some(dir.join(v));
            }
            if let (Some(v), true) = (&b.learn_for, take("learn_for")) {
                ba.learn_for = dur(v, "learn_for")?;
            }
            if let (Some(v), true) = (&b.learn_stable, take("learn_stable")) {
                ba.learn_stable = dur(v, "learn_stable")?;
            }
            if let (Some(v), true) = (b.accept, take("baseline_accept")) {
                ba.baseline_accept = v;
            }
            if let (Some(v), true) = (b.read_only, take("baseline_read_only")) {
                ba.baseline_read_only = v;
            }
            if let (Some(v), true) = (&b.rate_interval, take("baseline_rate_interval")) {
                ba.baseline_rate_interval = dur(v, "rate_interval")?;
            }
            if let (Some(v), true) = (b.rate_k, take("baseline_rate_k")) {
                ba.baseline_rate_k = v;
            }
            if let (Some(v), true) = (b.rate_floor, take("baseline_rate_floor")) {
                ba.baseline_rate_floor = v;
            }
            if let (Some(v), true) = (b.dir_names, take("baseline_dir_names")) {
                ba.baseline_dir_names = v;
            }
            if let (Some(v), true) = (b.alerts_per_minute, take("baseline_alert_rate")) {
                ba.baseline_alert_rate = v;
            }
        }
    }
    if let Some(r) = &file.respond {
        let mut ra = (*a.respond).clone();
        ra.fill_from(r, |k| !take(k));
        // Checked here so the message names the file.
        ra.into_config()
            .map_err(|e| file_err(p, "respond", format!("bad value: {e}")))?;
        a.respond = Box::new(ra);
    }
    if let Some(l) = &file.limits {
        for (k, v) in [
            ("limits.process_table", l.process_table),
            ("limits.queue", l.queue),
            ("limits.queue_events", l.queue_events),
        ] {
            if v == Some(0) {
                return Err(file_err(p, k, "bad value: must be at least 1"));
            }
        }
    }
    let mut cfg = a.into_config()?;
    cfg.enrichment = file.enrichment.unwrap_or_default();
    cfg.limits = file.limits.unwrap_or_default();
    Ok(cfg)
}

/// `tprobe config --check FILE`: validates the file alone (no flags) and describes the
/// settings it gives, as JSON.
pub fn check_file(path: &Path) -> Result<String, ConfigError> {
    use clap::Parser as _;
    let argv = ["tprobe", "run", "--config", &path.display().to_string()].map(str::to_owned);
    let crate::config::cli::Command::Run(args) = crate::config::cli::Cli::parse_from(argv).command
    else {
        unreachable!("parsed a run command line")
    };
    let mut given = Given::default();
    given.0.insert("config".into());
    let c = resolve(&args, &given)?;
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "events": c.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "threads": c.threads,
        "duration_s": c.duration.map(|d| d.as_secs_f64()),
        "count": c.count,
        "output": c.output.map(|p| p.display().to_string()),
        "ringbuf_bytes": c.ringbuf_bytes,
        "flush_interval_ms": c.flush_interval.as_millis() as u64,
        "host_name": c.host_name,
        "btf": c.btf_path.display().to_string(),
        "filters": c.filters,
        "enrichment": c.enrichment,
        "limits": c.limits,
    }))
    .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use std::time::Duration;

    use super::*;
    use crate::{
        config::{
            cli::{Cli, Command},
            file::DEFAULT_YAML,
        },
        filter::Scope,
    };

    fn args(extra: &[&str]) -> (RunArgs, Given) {
        let mut argv = vec!["tprobe", "run"];
        argv.extend(extra);
        let m = <Cli as clap::CommandFactory>::command().get_matches_from(&argv);
        let given = Given::from_matches(m.subcommand_matches("run").unwrap());
        let Command::Run(a) = Cli::parse_from(&argv).command else {
            panic!()
        };
        (a, given)
    }

    fn with_file(text: &str, extra: &[&str]) -> Result<RunConfig, ConfigError> {
        // Unique per call: tests run in parallel.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tprobe-cfg-{}-{n}", std::process::id()));
        std::fs::write(&dir, text).unwrap();
        let mut v = vec!["--config", dir.to_str().unwrap()];
        v.extend(extra);
        let (a, g) = args(&v);
        let r = resolve(&a, &g);
        let _ = std::fs::remove_file(&dir);
        r
    }

    fn msg(r: Result<RunConfig, ConfigError>) -> String {
        r.expect_err("an error").to_string()
    }

    #[test]
    fn default_file_equals_no_file() {
        let (a, g) = args(&[]);
        let plain = resolve(&a, &g).unwrap();
        let from_file = with_file(DEFAULT_YAML, &[]).unwrap();
        assert_eq!(plain.kinds, from_file.kinds);
        assert_eq!(plain.ringbuf_bytes, from_file.ringbuf_bytes);
        assert_eq!(plain.flush_interval, from_file.flush_interval);
        assert_eq!(plain.filters, from_file.filters);
        assert_eq!(plain.btf_path, from_file.btf_path);
        assert_eq!(from_file.limits.process_table, Some(65536));
        // Every key of the file format appears in the default.
        for key in [
            "events:",
            "threads:",
            "duration:",
            "count:",
            "output:",
            "ringbuf_size:",
            "flush_interval:",
            "host_name:",
            "btf:",
            "filters:",
            "pid:",
            "follow:",
            "uid:",
            "cgroup:",
            "comm:",
            "exe:",
            "container:",
            "pod:",
            "namespace:",
            "host_only:",
            "containers_only:",
            "enrichment:",
            "cri_socket:",
            "limits:",
            "process_table:",
            "format:",
            "sinks:",
            "file:",
            "xdp:",
            "service:",
        ] {
            assert!(DEFAULT_YAML.contains(key), "{key}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let f = "events: [process.exec]\ncount: 5\nfilters:\n  comm: [curl, wget]\n  uid: root\n";
        let c = with_file(f, &[]).unwrap();
        assert_eq!(c.kinds, vec![probe_common::EventKind::ProcessExec]);
        assert_eq!(c.count, Some(5));
        assert_eq!(c.filters.comm, vec!["curl", "wget"]);
        assert_eq!(c.filters.uids, vec![0]);
        let c = with_file(f, &["--count", "9", "--comm", "sh", "--events", "process"]).unwrap();
        assert_eq!(c.count, Some(9));
        assert_eq!(c.filters.comm, vec!["sh"]);
        assert_eq!(
            c.kinds,
            crate::config::kinds::parse_kinds("process").unwrap()
        );
        assert_eq!(c.filters.uids, vec![0], "keys not overridden stay");
        let c = with_file("filters:\n  host_only: true\n", &["--containers-only"]).unwrap();
        assert_eq!(c.filters.scope, Scope::ContainersOnly);
        let c = with_file("events: process.exit, process.exec\nduration: 30\n", &[]).unwrap();
        assert_eq!(c.kinds.len(), 2);
        assert_eq!(c.duration, Some(Duration::from_secs(30)));
        assert!(with_file("# nothing\n", &[]).is_ok());
    }

    #[test]
    fn errors_name_key_and_problem() {
        let m = msg(with_file("evnts: all\n", &[]));
        assert!(
            m.contains("unknown key \"evnts\"") && m.contains("events"),
            "{m}"
        );
        let m = msg(with_file("filters:\n  pids: [1]\n", &[]));
        assert!(m.contains("in `filters`: unknown key \"pids\""), "{m}");
        let m = msg(with_file("threads: yes please\n", &[]));
        assert!(m.contains("key `threads`: wrong type"), "{m}");
        let m = msg(with_file("count: many\n", &[]));
        assert!(m.contains("key `count`: wrong type"), "{m}");
        let m = msg(with_file("filters:\n  pid: [12, abc]\n", &[]));
        assert!(
            m.contains("key `filters.pid`: bad value") && m.contains("abc"),
            "{m}"
        );
        let m = msg(with_file("ringbuf_size: 3M\n", &[]));
        assert!(m.contains("key `ringbuf_size`: bad value"), "{m}");
        let m = msg(with_file("events: [process.nope]\n", &[]));
        assert!(
            m.contains("key `events`: bad value") && m.contains("process.nope"),
            "{m}"
        );
        let m = msg(with_file("duration: soon\n", &[]));
        assert!(m.contains("key `duration`: bad value"), "{m}");
        let m = msg(with_file("filters:\n  follow: true\n", &[]));
        assert!(m.contains("key `filters.follow`"), "{m}");
        let m = msg(with_file("filters: [1, 2]\n", &[]));
        assert!(m.contains("key `filters`: wrong type"), "{m}");
        let m = msg(with_file("events: [\n", &[]));
        assert!(m.contains("not valid YAML"), "{m}");
        let m = msg(with_file("limits:\n  queue: 0\n", &[]));
        assert!(m.contains("key `limits.queue`: bad value"), "{m}");
        let m = msg(with_file("limits:\n  queue_events: 0\n", &[]));
        assert!(m.contains("key `limits.queue_events`: bad value"), "{m}");
        assert!(msg(with_file("filters:\n  pod: [web]\n", &[])).contains("NAMESPACE/NAME"));
        let m = msg(with_file("- events\n", &[]));
        assert!(m.contains("must be a mapping"), "{m}");
        let m = msg(with_file("threads: true\nevnts: all\n", &[]));
        assert!(m.ends_with("(line 2 column 1)"), "{m}");
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let (a, g) = args(&["--pid", "12,x"]);
        let m = resolve(&a, &g).unwrap_err().to_string();
        assert!(m.starts_with("--pid:") && m.contains("\"x\""), "{m}");
        let (a, g) = args(&["--follow"]);
        assert!(resolve(&a, &g)
            .unwrap_err()
            .to_string()
            .contains("needs --pid"));
        let (a, g) = args(&["--pid", "1,2", "--pid", "3", "--follow"]);
        let c = resolve(&a, &g).unwrap();
        assert_eq!(c.filters.pids, vec![1, 2, 3]);
        assert!(c.filters.follow);
    }

    #[test]
    fn every_section_reaches_the_run_config() {
        let f = "format: ecs\nsinks:\n  - file:/tmp/x.log,keep=3\n  - stdout\nfile:\n  include: [/etc]\n  reads: true\nenrichment:\n  cri_socket: none\n  containerd_namespace: k8s.io\n  container_wait: 1s\nservice:\n  metrics_addr: none\n  shutdown_timeout: 5s\nlimits:\n  process_table: 100\n  queue: 8\n  queue_events: 500\n";
        let c = with_file(f, &[]).unwrap();
        assert_eq!(c.format, crate::encode::format::Format::Ecs);
        assert_eq!(c.sinks.len(), 2);
        assert!(c.file.reads);
        assert!(c.file.prefixes.contains(&(b"/etc".to_vec(), true)));
        assert_eq!(c.containers.cri_socket, None);
        assert_eq!(c.containers.containerd_namespaces, vec!["k8s.io"]);
        assert_eq!(c.containers.wait, Duration::from_secs(1));
        assert!(c.service.listen().is_none());
        assert_eq!(c.service.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(
            (
                c.limits.process_table,
                c.limits.queue,
                c.limits.queue_events
            ),
            (Some(100), Some(8), Some(500))
        );
        // A flag still wins over its key.
        let c = with_file(f, &["--format", "ocsf"]).unwrap();
        assert_eq!(c.format, crate::encode::format::Format::Ocsf);
        // Bad values name their key.
        assert!(msg(with_file("format: xml\n", &[])).contains("`format`"));
        assert!(msg(with_file("xdp:\n  mode: turbo\n", &[])).contains("`xdp.mode`"));
        assert!(msg(with_file("sinks: [\"ftp:x\"]\n", &[])).contains("`sinks`"));
        assert!(msg(with_file("service:\n  metrics_addr: here\n", &[])).contains("metrics_addr"));
        assert!(msg(with_file("file:\n  colour: red\n", &[])).contains("colour"));
        let c = with_file(
            "security:\n  signals: [KILL, USR1]\n  ptrace_peeks: true\n",
            &[],
        )
        .unwrap();
        // KILL, TERM and STOP are always in; USR1 was asked for.
        assert_eq!(
            c.security.signals,
            (1 << 9) | (1 << 10) | (1 << 15) | (1 << 19)
        );
        assert!(c.security.ptrace_peeks);
        assert!(msg(with_file("security:\n  signals: [BOGUS]\n", &[])).contains("BOGUS"));
    }
}
