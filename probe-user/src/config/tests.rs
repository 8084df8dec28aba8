use super::{
    error::ConfigError,
    kinds::parse_kinds,
    units::{check_ring_size, parse_size},
    *,
};

#[test]
fn kinds_by_name_category_and_all() {
    assert_eq!(
        parse_kinds("process.exec").unwrap(),
        vec![EventKind::ProcessExec]
    );
    // ALL is grouped by category; parse_kinds sorts by kind id.
    let sorted = |mut v: Vec<EventKind>| {
        v.sort();
        v
    };
    assert_eq!(
        parse_kinds("process").unwrap(),
        sorted(
            EventKind::ALL
                .iter()
                .copied()
                .filter(|k| k.name().starts_with("process."))
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(parse_kinds("all").unwrap(), sorted(EventKind::ALL.to_vec()));
    assert_eq!(
        parse_kinds("kernel,bpf").unwrap(),
        vec![
            EventKind::KernelModuleLoad,
            EventKind::KernelModuleUnload,
            EventKind::BpfLoad
        ]
    );
    assert_eq!(
        parse_kinds("process.exit, process.exec").unwrap(),
        vec![EventKind::ProcessExec, EventKind::ProcessExit]
    );
    assert!(matches!(
        parse_kinds("proc"),
        Err(ConfigError::UnknownKind(..))
    ));
    assert_eq!(parse_kinds(" , "), Err(ConfigError::NoKinds));
    assert_eq!(
        parse_kinds("flow").unwrap(),
        vec![
            EventKind::FlowUpdate,
            EventKind::FlowEnd,
            EventKind::FlowNew
        ]
    );
    // flow.new is internal: a user cannot ask for it, and the known kinds do not offer it.
    match parse_kinds("flow.new") {
        Err(ConfigError::UnknownKind(k, known)) => {
            assert_eq!(k, "flow.new");
            assert!(
                known.contains("flow.update") && !known.contains("flow.new"),
                "{known}"
            );
        }
        other => panic!("flow.new accepted: {other:?}"),
    }
}

#[test]
fn sizes() {
    assert_eq!(parse_size("16M").unwrap(), 16 << 20);
    assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
    assert_eq!(parse_size("4096").unwrap(), 4096);
    assert!(parse_size("12Q").is_err());
    assert!(parse_size("").is_err());
    assert!(check_ring_size(16 << 20).is_ok());
    assert!(check_ring_size(3 << 20).is_err());
    assert!(check_ring_size(1024).is_err());
}

#[test]
fn xdp_settings_are_checked() {
    let x = |ifaces: &[&str], idle: u64| crate::families::flow::XdpConfig {
        ifaces: ifaces.iter().map(|s| s.to_string()).collect(),
        mode: crate::families::flow::Mode::Auto,
        replace: false,
        active_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(idle),
        table_size: 16,
    };
    let all = EventKind::ALL;
    assert!(xdp_config(all, x(&[], 15)).unwrap().is_none());
    let ok = xdp_config(all, x(&["lo", "lo", ""], 15)).unwrap().unwrap();
    assert_eq!(ok.ifaces, vec!["lo".to_string()]);
    let err = |r: Result<_, ConfigError>| r.unwrap_err().to_string();
    assert!(err(xdp_config(all, x(&["tprobe-none0"], 15))).contains("no such network interface"));
    assert!(err(xdp_config(&[EventKind::ProcessExec], x(&["lo"], 15))).contains("flow"));
    assert!(err(xdp_config(all, x(&["lo"], 0))).contains("above zero"));
}
