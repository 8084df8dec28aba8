//! A fixed event stream rendered and compared with the text a person should see.
use serde_json::json;

use super::line;

fn stream() -> Vec<serde_json::Value> {
    vec![
        json!({"ts": "2026-12-02T06:00:00.000000001Z", "kind": "probe.start", "seq": 1,
               "probe": {"version": "0.1.0", "kernel": "6.18.0", "pid": 42,
                         "hooks": [{"hook": "raw_tracepoint/sched_process_exec", "program": "a", "attached": true},
                                   {"hook": "tracepoint/syscalls/sys_enter_openat", "program": "b", "attached": true},
                                   {"hook": "tracepoint/syscalls/sys_enter_bpf", "program": "d", "attached": false,
                                    "reason": "no enabled event kind needs it"},
                                   {"hook": "tracepoint/syscalls/sys_enter_init_module", "program": "c", "attached": false,
                                    "reason": "this kernel is built without module support"}],
                         "features": [{"feature": "ringbuf", "available": true, "needed_for": "every event"}],
                         "analyze": {"rules": 40}, "config": {"events": ["process.exec"]},
                         "metrics": "127.0.0.1:9810"}}),
        json!({"ts": "2026-12-02T06:00:01.250000000Z", "kind": "process.exec", "seq": 2,
               "process": {"pid": 7, "comm": "touch", "user": "root", "uid": 0, "euid": 0,
                           "args": ["touch", "-d", "2001-01-01", "/tmp/x y"], "args_truncated": false}}),
        json!({"ts": "2026-12-02T06:00:01.260000000Z", "kind": "file.utime", "seq": 3,
               "process": {"pid": 7, "comm": "touch"},
               "file": {"path": "/tmp/x y", "path_truncated": false, "path_resolved": true, "syscall": "utimensat"},
               "result": {"ok": true}}),
        json!({"ts": "2026-12-02T06:00:01.261000000Z", "kind": "alert", "seq": 4,
               "alert": {"source": "sigma",
                         "rule": {"id": "5f1c0012", "title": "File times set by hand with touch", "level": "low",
                                  "description": "long text left out", "tags": ["attack.t1070.006"]},
                         "attack": {"tactics": ["defense-evasion"], "techniques": ["T1070.006"]},
                         "matched": {"kind": "process.exec", "seq": 2}},
               "process": {"pid": 7, "comm": "touch", "user": "root",
                           "args": ["touch", "-d", "2001-01-01", "/tmp/x y"]}}),
        json!({"ts": "2026-12-02T06:00:01.300000000Z", "kind": "process.exit", "seq": 5,
               "process": {"pid": 7, "comm": "touch"},
               "exit": {"code": 0, "signal": null, "core_dumped": false, "cpu": {"user_ms": 1, "system_ms": 0}}}),
        json!({"ts": "2026-12-02T06:00:01.400000000Z", "kind": "file.open", "seq": 6,
               "process": {"pid": 8, "comm": "cat"},
               "file": {"path": "/etc/shadow", "path_truncated": false, "path_resolved": false,
                        "flags": ["O_RDONLY"], "syscall": "openat"},
               "result": {"ok": false, "errno": 13, "error": "EACCES"}}),
        json!({"ts": "2026-12-02T06:00:05.000000000Z", "kind": "probe.stop", "seq": 7,
               "probe": {"reason": "signal or duration", "duration_s": 5.02, "lines": 7,
                         "events": {"process.exec": 1, "process.exit": 1, "file.open": 1, "file.utime": 1, "net.connect": 0},
                         "losses": {"ringbuf": 2, "decode": 0, "queue": 0}}}),
    ]
}

const EXPECTED: &str = "\
06:00:00.000 probe.start    tprobe 0.1.0 kernel 6.18.0 hooks 2 attached, 1 not needed, 1 skipped (sys_enter_init_module) rules 40 metrics http://127.0.0.1:9810/metrics
06:00:01.250 process.exec   touch[7] user=root touch -d 2001-01-01 \"/tmp/x y\"
06:00:01.260 file.utime     touch[7] file.path=\"/tmp/x y\" file.syscall=\"utimensat\"
06:00:01.261 ALERT low      File times set by hand with touch — touch[7] user=root touch -d 2001-01-01 \"/tmp/x y\" rule=5f1c0012 on=process.exec att&ck=T1070.006
06:00:01.300 process.exit   touch[7] exit.code=0 exit.cpu.system_ms=0 exit.cpu.user_ms=1
06:00:01.400 file.open      cat[8] EACCES file.flags=[\"O_RDONLY\"] file.path=\"/etc/shadow\" file.path_resolved=false file.syscall=\"openat\"
06:00:05.000 probe.stop     ran 5.0s (signal or duration) events: file 2, process 2 lines 7 LOST 2 (ringbuf 2)
";

#[test]
fn a_fixed_stream_reads_as_expected() {
    let got: String = stream().iter().map(|v| line(v, false) + "\n").collect();
    if got != EXPECTED {
        // The whole text on failure, so the difference is easy to see.
        panic!("got:\n{got}\nexpected:\n{EXPECTED}");
    }
}

#[test]
fn colour_only_when_asked_and_alerts_stand_out() {
    let s = stream();
    assert!(!line(&s[3], false).contains('\x1b'));
    let alert = line(&s[3], true);
    assert!(alert.contains("\x1b[1;33mALERT low"), "{alert}");
    assert!(
        alert.contains("\x1b[1mFile times set by hand with touch\x1b[0m"),
        "{alert}"
    );
    assert!(line(&s[6], true).contains("\x1b[1;31mLOST 2"));
    assert!(line(&s[1], true).contains("\x1b[1;32m"));
}

#[test]
fn the_start_line_stays_short() {
    let mut start = stream()[0].clone();
    let hooks: Vec<_> = (0..120)
        .map(|i| json!({"hook": format!("tracepoint/syscalls/sys_enter_x{i}"), "program": "p", "attached": true}))
        .collect();
    start["probe"]["hooks"] = hooks.into();
    let l = line(&start, false);
    assert!(l.len() < 200, "{l}");
    assert!(l.contains("hooks 120 attached"), "{l}");
    assert!(l.contains("metrics http://127.0.0.1:9810/metrics"), "{l}");
    // The old line kept the default `core_dumped=false` and `signal` null: both left out.
    assert!(!line(&stream()[4], false).contains("core_dumped"));
}
