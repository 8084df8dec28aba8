use probe_common::{FileEvent, FileSyscall, FILE_FIXED_LEN, FILE_HAS_TARGET};

use super::{
    decode::decode,
    names::open_flag_names,
    prefix::{normalize, PathFilter},
    *,
};
use crate::{
    enrich::paths::{join, PathResolver},
    event::{file::FileRecord, Body, Event},
};

fn opts(inc: &[&str], exc: &[&str]) -> FileOptions {
    FileArgs {
        file_include: inc.iter().map(|s| s.to_string()).collect(),
        file_exclude: exc.iter().map(|s| s.to_string()).collect(),
        file_reads: false,
    }
    .into_options()
    .unwrap()
}

#[test]
fn open_flags_by_name() {
    assert_eq!(open_flag_names(0).to_vec(), vec!["O_RDONLY"]);
    assert_eq!(
        open_flag_names((libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC) as u32)
            .to_vec(),
        vec!["O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"]
    );
    assert_eq!(
        open_flag_names((libc::O_RDWR | libc::O_TMPFILE) as u32).to_vec(),
        vec!["O_RDWR", "O_TMPFILE"]
    );
    assert_eq!(
        open_flag_names(libc::O_SYNC as u32).to_vec(),
        vec!["O_RDONLY", "O_SYNC"]
    );
    assert_eq!(
        open_flag_names(1 << 30).to_vec(),
        vec!["O_RDONLY", "0x40000000"]
    );
    // The JSON array is the same list, unknown bits last.
    assert_eq!(
        serde_json::to_string(&open_flag_names((libc::O_WRONLY as u32) | 1 << 30)).unwrap(),
        r#"["O_WRONLY","0x40000000"]"#
    );
}

#[test]
fn normalization() {
    assert_eq!(normalize(b"/a//b/./c/../d/"), b"/a/b/d");
    assert_eq!(normalize(b"/../.."), b"/");
    assert_eq!(normalize(b"/dev/pts/../../etc/passwd"), b"/etc/passwd");
}

#[test]
fn prefixes_longest_match_and_boundaries() {
    let f = PathFilter::new(&opts(&["/etc", "/usr/"], &["/usr/share", "/dev/null"]).prefixes);
    assert!(f.keeps(b"/etc"));
    assert!(f.keeps(b"/etc/passwd"));
    assert!(!f.keeps(b"/etcx/passwd"));
    assert!(f.keeps(b"/usr/bin/x"));
    assert!(!f.keeps(b"/usr/share/doc"));
    assert!(!f.keeps(b"/tmp/x"));
    assert!(f.keeps(b"/tmp/../etc/shadow"));
    assert!(f.keeps(b"relative/unresolved"));
    let f = PathFilter::new(&opts(&[], &["/dev/pts"]).prefixes);
    assert!(f.keeps(b"/tmp/x"));
    assert!(!f.keeps(b"/dev/pts/3"));
    assert!(f.keeps(b"/dev/pts/../../etc/passwd"));
    assert!(!f.keeps(b"/dev/pts/./3"));
    assert!(!f.keeps(b"/dev//pts/3"));
    assert!(!f.keeps(b"/dev/pts/"));
    assert!(!f.keeps(b"/dev/pts"));
    assert!(f.keeps(b"/dev/ptsx"));
    let f = PathFilter::new(&opts(&["/"], &["/proc"]).prefixes);
    assert!(f.keeps(b"/x"));
    assert!(f.keeps(b"/"));
    assert!(!f.keeps(b"/proc/1/x"));
    assert!(!f.keeps(b"/proc"));
    assert!(f.keeps(b"/procx"));
    let f = PathFilter::new(&opts(&["/srv"], &[]).prefixes);
    assert!(!f.keeps(b"/"), "/ is not under /srv");
    assert!(f.keeps(b"/srv/"));
    assert!(f.keeps(b"//srv/a"));
}

#[test]
fn bad_prefixes() {
    let bad = |p: &str| {
        FileArgs {
            file_include: vec![p.into()],
            file_exclude: vec![],
            file_reads: false,
        }
        .into_options()
    };
    assert!(matches!(bad("etc"), Err(FileOptionsError::NotAbsolute(_))));
    assert!(matches!(
        bad(&format!("/{}", "a".repeat(300))),
        Err(FileOptionsError::TooLong(..))
    ));
    // Empty items (e.g. `--file-exclude ''`) select nothing.
    assert!(opts(&[], &[""]).prefixes.is_empty());
}

#[test]
fn trie_keys_end_in_slash() {
    let k = FileOptions::trie_key(b"/etc");
    assert_eq!(k.prefix_len(), 5 * 8);
    assert_eq!(&k.data()[..5], b"/etc/");
    assert_eq!(FileOptions::trie_key(b"/").prefix_len(), 8);
}

fn record(syscall: FileSyscall, fflags: u32, path: &[u8], target: Option<&[u8]>) -> Vec<u8> {
    let mut ev: FileEvent = unsafe { std::mem::zeroed() };
    ev.header.kind = EventKind::FileRename as u32;
    ev.syscall = syscall as u32;
    ev.fflags = fflags;
    ev.ret = -2;
    ev.path_len = path.len() as u32;
    ev.data[..path.len()].copy_from_slice(path);
    let mut end = FILE_FIXED_LEN + path.len();
    if let Some(t) = target {
        ev.fflags |= FILE_HAS_TARGET;
        ev.target_len = t.len() as u32;
        ev.data[path.len()..path.len() + t.len()].copy_from_slice(t);
        end += t.len();
    }
    let all = unsafe {
        std::slice::from_raw_parts(
            &ev as *const FileEvent as *const u8,
            std::mem::size_of::<FileEvent>(),
        )
    };
    all[..end].to_vec()
}

#[test]
fn decode_records_and_reject_bad_lengths() {
    let rec = record(FileSyscall::Renameat2, 0, b"a\n\xff", Some(b"/b c"));
    assert_eq!(join(b"/", b"x"), b"/x");
    assert_eq!(join(b"/a", b""), b"/a");
    assert_eq!(join(b"/a", b"b/c"), b"/a/b/c");
    let f = decode(&rec).unwrap();
    assert_eq!(f.path, b"a\n\xff");
    assert!(!f.path_resolved);
    assert_eq!(f.target.as_deref(), Some(&b"/b c"[..]));
    assert!(f.target_resolved);
    assert_eq!(f.ret, -2);
    // Cut short, or a length pointing past the end: rejected, never a panic.
    assert!(decode(&rec[..rec.len() - 1]).is_none());
    let mut bad = record(FileSyscall::Open, 0, b"/x", None);
    let off = std::mem::offset_of!(FileEvent, path_len);
    bad[off..off + 4].copy_from_slice(&5000u32.to_le_bytes());
    assert!(decode(&bad).is_none());
    let mut bad = record(FileSyscall::Open, 0, b"/x", None);
    let off = std::mem::offset_of!(FileEvent, syscall);
    bad[off..off + 4].copy_from_slice(&999u32.to_le_bytes());
    assert!(decode(&bad).is_none());
    for n in 0..rec.len().min(400) {
        let _ = decode(&rec[..n]);
    }
}

fn file_event(f: FileRecord) -> Event {
    let task = crate::event::Task {
        kind: EventKind::FileChown,
        flags: 0,
        ts_ns: 1,
        pid: 10,
        tid: 11,
        ppid: 1,
        uid: 0,
        gid: 0,
        cgroup_id: 7,
        start_ns: 1,
        parent_start_ns: 0,
        comm: b"x".to_vec(),
        exec_id: 0,
        id: Default::default(),
    };
    Event {
        ts_ns: 1,
        task: Some(task),
        body: Body::File(Box::new(f)),
        process: None,
        parent: None,
        ancestors: None,
        user: None,
        container: None,
    }
}

fn encode(ev: &Event) -> serde_json::Value {
    use crate::encode::Encoder as _;
    let n = crate::encode::native::Native::new("h".into(), crate::clock::BootClock::measure());
    let mut out = Vec::new();
    n.encode(ev, 1, &mut out);
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    serde_json::from_slice(&out).unwrap()
}

fn chown_record() -> FileRecord {
    let rec = record(FileSyscall::Fchownat, 0, b"/t/a\nb\xff", None);
    let mut f = decode(&rec).unwrap();
    f.uid = 0;
    f.gid = u32::MAX;
    f.flags = libc::AT_SYMLINK_NOFOLLOW as u32;
    f.ret = -13;
    f
}

#[test]
fn native_json_of_a_failed_chown() {
    let v = encode(&file_event(chown_record()));
    assert_eq!(v["kind"], "file.chown");
    let f = &v["file"];
    assert_eq!(f["path"], "/t/a\nb\u{fffd}");
    assert_eq!(f["path_b64"], "L3QvYQpi/w==");
    assert_eq!(f["syscall"], "fchownat");
    assert_eq!(f["uid"], 0);
    assert!(f.get("gid").is_none(), "-1 means unchanged");
    assert!(f.get("mode").is_none());
    assert_eq!(f["flags"], serde_json::json!(["AT_SYMLINK_NOFOLLOW"]));
    assert_eq!(
        v["result"],
        serde_json::json!({"ok": false, "errno": 13, "error": "EACCES"})
    );
}

#[test]
fn stage_resolves_from_the_kernel_base_and_filters() {
    let mut f = chown_record();
    f.path = b"rel".to_vec();
    f.path_resolved = false;
    f.base = Some(b"/srv/x".to_vec());
    let stage = PathResolver::new(&opts(&[], &["/srv/x/rel"]));
    let mut ev = file_event(f.clone());
    assert!(!stage.apply(&mut ev), "excluded after resolution");
    let stage = PathResolver::new(&opts(&["/srv"], &[]));
    let mut ev = file_event(f.clone());
    assert!(stage.apply(&mut ev));
    let Body::File(g) = &ev.body else { panic!() };
    assert_eq!(g.path, b"/srv/x/rel");
    assert_eq!(g.resolved_from, Some("kernel"));
    // No base and no such process in /proc: kept as written, flagged.
    let mut stage = PathResolver::new(&opts(&[], &[]));
    stage.proc_root = "/nonexistent-proc".into();
    f.base = None;
    let mut ev = file_event(f);
    assert!(stage.apply(&mut ev));
    let Body::File(g) = &ev.body else { panic!() };
    assert_eq!((g.path.as_slice(), g.path_resolved), (&b"rel"[..], false));
    assert_eq!(encode(&ev)["file"]["path_resolved"], false);
}
