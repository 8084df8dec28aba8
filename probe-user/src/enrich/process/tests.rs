use std::path::Path;

use super::*;
use crate::event::process::ExecRecord;

fn task(pid: u32, start_ns: u64, exec_id: u32) -> Task {
    Task {
        kind: probe_common::EventKind::ProcessExit,
        flags: 0,
        ts_ns: 0,
        pid,
        tid: pid,
        ppid: 0,
        uid: 0,
        gid: 0,
        cgroup_id: 0,
        start_ns,
        parent_start_ns: 0,
        comm: Vec::new(),
        exec_id,
        id: Default::default(),
    }
}

fn event(t: Task, body: Body) -> Event {
    let mut ev = Event::probe(t.ts_ns, body);
    ev.task = Some(t);
    ev
}

fn exec(exe: &str, cwd: &str, arg: &str) -> Body {
    Body::Exec(Box::new(ExecRecord {
        filename: exe.into(),
        interp: exe.into(),
        exe: exe.into(),
        cwd: Some(cwd.into()),
        args: vec![arg.into()],
        ..Default::default()
    }))
}

#[test]
fn entity_ids_differ_by_start_time_and_are_stable() {
    let a = entity_id("node1", 100, 5);
    assert_eq!(a, entity_id("node1", 100, 5));
    assert_ne!(a, entity_id("node1", 100, 6));
    assert_ne!(a, entity_id("node2", 100, 5));
    assert_eq!(a.len(), 16);
}

#[test]
fn absolute_paths() {
    assert_eq!(absolute(b"/bin/x", None).unwrap(), b"/bin/x");
    assert_eq!(
        absolute(b"./run.sh", Some(b"/tmp")).unwrap(),
        b"/tmp/run.sh"
    );
    assert_eq!(absolute(b"a", Some(b"/")).unwrap(), b"/a");
    assert_eq!(absolute(b"a", None), None);
}

/// Events of an image keep its exe, argv and cwd, even when they are processed after the
/// process exec'd again; a fork child runs its parent's image until it execs.
#[test]
fn images_are_selected_by_exec_id() {
    // A pid that does not exist: nothing may come from /proc.
    let pid = 4_000_000;
    let mut t = ProcessTable::new("h".into(), "/nonexistent".into());
    let mut a = task(pid, 1000, 7);
    a.ts_ns = 10;
    t.enrich(&mut event(a.clone(), exec("/usr/bin/env", "/tmp/a", "env")));
    let mut b = task(pid, 1000, 8);
    b.ts_ns = 20;
    t.enrich(&mut event(b.clone(), exec("/usr/bin/dash", "/tmp/b", "sh")));
    // A late event of the first image.
    let mut ev = event(
        a.clone(),
        Body::Exit(crate::event::ExitStatus::from_wait_status(0)),
    );
    t.enrich(&mut ev);
    let p = ev.process.unwrap();
    assert_eq!(p.exe.as_deref(), Some(&b"/usr/bin/env"[..]));
    assert_eq!(p.cwd.as_deref(), Some(&b"/tmp/a"[..]));
    assert_eq!(p.args, vec![b"env".to_vec()]);
    assert_eq!(p.source, ProcSource::Kernel);
    // The child of image 8.
    let mut f = b.clone();
    f.ts_ns = 30;
    t.enrich(&mut event(
        f,
        Body::Fork {
            child_pid: pid + 1,
            child_tid: pid + 1,
            child_start_ns: 2000,
            thread: false,
        },
    ));
    let mut c = task(pid + 1, 2000, 8);
    c.ppid = pid;
    c.parent_start_ns = 1000;
    c.ts_ns = 40;
    let mut ev = event(c, Body::Exit(crate::event::ExitStatus::from_wait_status(0)));
    t.enrich(&mut ev);
    let p = ev.process.unwrap();
    assert_eq!(p.exe.as_deref(), Some(&b"/usr/bin/dash"[..]));
    assert_eq!(p.pid, pid + 1);
    let parent = ev.parent.unwrap();
    assert_eq!(parent.args, vec![b"sh".to_vec()]);
    let anc = ev.ancestors.unwrap();
    assert_eq!(anc.list.len(), 1);
    assert!(Arc::ptr_eq(&anc.list[0], &parent));
}

#[test]
fn own_process_loads_from_proc_and_pid_reuse_does_not_match() {
    let pid = std::process::id();
    let mut t = ProcessTable::new("h".into(), "/proc".into());
    let start = procfs::start_ns(Path::new("/proc"), pid, t.tick_ns).unwrap();
    let me = t.image_of(&task(pid, start, 1));
    assert!(me.exe.is_some());
    assert!(!me.args.is_empty());
    assert!(!me.comm.is_empty());
    assert_eq!(me.source, ProcSource::Procfs);
    // Same pid, another start time: a different process, nothing borrowed from /proc.
    let other = t.image_of(&task(pid, start + 10_000_000_000, 1));
    assert!(other.exe.is_none() && other.args.is_empty());
    assert_ne!(other.entity_id, me.entity_id);
    // A snapshot entry (tick resolution) is matched and upgraded to the exact start time.
    let mut t = ProcessTable::new("h".into(), "/proc".into());
    t.snapshot();
    assert!(t.len() > 1);
    let exact = start + 1234;
    let me2 = t.image_of(&task(pid, exact, 3));
    assert_eq!(me2.start_ns, exact);
    assert_eq!(me2.entity_id, entity_id("h", pid, exact));
    assert_eq!(me2.exec_id, Some(3));
    assert!(!me2.args.is_empty());
}

/// The chain an event's process keeps is reused while its links are the same images, and
/// walked again when an ancestor execs.
#[test]
fn ancestors_are_reused_until_an_ancestor_execs() {
    let mut t = ProcessTable::new("h".into(), "/nonexistent".into());
    t.ancestors_max = 5;
    // 4000100 -> 4000101 -> 4000102, each exec'd at ts 10.
    let at = |pid: u32, ppid: u32, exec_id: u32, ts: u64| {
        let mut k = task(pid, 1000, exec_id);
        k.ppid = ppid;
        k.parent_start_ns = if ppid == 0 { 0 } else { 1000 };
        k.ts_ns = ts;
        k
    };
    for (pid, ppid) in [
        (4_000_100, 0),
        (4_000_101, 4_000_100),
        (4_000_102, 4_000_101),
    ] {
        t.enrich(&mut event(at(pid, ppid, 1, 10), exec("/bin/a", "/", "a")));
    }
    let exit = || Body::Exit(crate::event::ExitStatus::from_wait_status(0));
    let mut first = event(at(4_000_102, 4_000_101, 1, 20), exit());
    t.enrich(&mut first);
    let first = first.ancestors.unwrap();
    assert_eq!(first.list.len(), 2);
    let mut again = event(at(4_000_102, 4_000_101, 1, 21), exit());
    t.enrich(&mut again);
    assert!(Arc::ptr_eq(&first, &again.ancestors.unwrap()), "reused");
    // The grandparent execs another program: later events see it.
    t.enrich(&mut event(
        at(4_000_100, 0, 2, 30),
        exec("/bin/b", "/", "b"),
    ));
    let mut after = event(at(4_000_102, 4_000_101, 1, 31), exit());
    t.enrich(&mut after);
    let after = after.ancestors.unwrap();
    assert_eq!(after.list.len(), 2);
    assert_eq!(after.list[1].args, vec![b"b".to_vec()]);
    assert!(!Arc::ptr_eq(&first, &after));
}
