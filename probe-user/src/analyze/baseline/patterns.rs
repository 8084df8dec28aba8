//! Values made general enough to learn: file paths with their random parts collapsed, and
//! the executable of a multi-call binary with its applet. A leaf.

/// A path with runs of digits, hex ids, UUIDs and `mktemp`-style suffixes collapsed, component
/// by component, directories kept: `/tmp/job-1234.log` → `/tmp/job-#.log`,
/// `/run/x/0f3a9c2e-…` → `/run/x/{uuid}`, `/tmp/tmp.Xa81bQz09c` → `/tmp/tmp.{rand}`.
pub fn path_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, comp) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        component(comp, &mut out);
    }
    out
}

/// One path component: split into tokens at `.`, `-`, `_` and `+`, each token collapsed on
/// its own (a UUID spans five tokens, so it is looked for first).
fn component(c: &str, out: &mut String) {
    let b = c.as_bytes();
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        if is_uuid_at(b, i) && (i == 0 || is_sep(b[i - 1])) {
            token(&c[start..i], out);
            out.push_str("{uuid}");
            i += 36;
            start = i;
            continue;
        }
        if is_sep(b[i]) {
            token(&c[start..i], out);
            out.push(b[i] as char);
            start = i + 1;
        }
        i += 1;
    }
    token(&c[start.min(c.len())..], out);
}

fn is_sep(b: u8) -> bool {
    matches!(b, b'.' | b'-' | b'_' | b'+' | b'@' | b':' | b',' | b'=')
}

/// A UUID (8-4-4-4-12 hex digits) starting at `i`.
fn is_uuid_at(b: &[u8], i: usize) -> bool {
    if b.len() < i + 36 {
        return false;
    }
    let s = &b[i..i + 36];
    s.iter().enumerate().all(|(j, c)| match j {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    }) && b.get(i + 36).is_none_or(|c| is_sep(*c))
}

/// One token: a hex id (8+ hex digits with a digit in it), a random-looking run (6+ letters
/// and digits mixed, or mixed case past the first letter), or else each run of digits as `#`.
fn token(t: &str, out: &mut String) {
    let b = t.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let alnum = digits + letters == b.len();
    if b.len() >= 8 && alnum && digits > 0 && letters > 0 && b.iter().all(u8::is_ascii_hexdigit) {
        out.push_str("{hex}");
        return;
    }
    let inner_upper = b.iter().skip(1).any(u8::is_ascii_uppercase);
    let lower = b.iter().any(u8::is_ascii_lowercase);
    // Words with a version number (python3, lib64) keep their letters: a random suffix has
    // its digits spread through it.
    let digit_runs = b
        .windows(2)
        .filter(|w| w[1].is_ascii_digit() && !w[0].is_ascii_digit())
        .count()
        + usize::from(b.first().is_some_and(u8::is_ascii_digit));
    let mixed_digits = letters > 0 && digits > 0 && digit_runs >= 2;
    if b.len() >= 6 && alnum && (mixed_digits || (inner_upper && lower && digits > 0)) {
        out.push_str("{rand}");
        return;
    }
    let mut in_digits = false;
    for ch in t.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(ch);
        }
    }
}

/// The directory of a pattern and its last component (`/a/b` → `/a`, `b`).
pub fn split_dir(p: &str) -> Option<(&str, &str)> {
    let i = p.rfind('/')?;
    Some((if i == 0 { "/" } else { &p[..i] }, &p[i + 1..]))
}

/// `dir/*`: what a directory with many distinct names becomes.
pub fn dir_wildcard(dir: &str) -> String {
    if dir == "/" {
        "/*".to_owned()
    } else {
        format!("{dir}/*")
    }
}

/// Multi-call binaries: the applet is part of what ran.
const MULTI_CALL: &[&str] = &["busybox", "coreutils", "toybox", "busybox.static"];

fn basename(p: &[u8]) -> &[u8] {
    p.rsplit(|c| *c == b'/').next().unwrap_or(p)
}

/// The executable as learned: `exe`, with `[applet]` for a multi-call binary (argv[0]'s
/// basename; argv[1] when it was called by its own name, as in `busybox nc`; else comm).
pub fn executable(exe: &[u8], args: &[Vec<u8>], comm: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(exe).into_owned();
    let base = basename(exe);
    if MULTI_CALL.iter().any(|m| m.as_bytes() == base) {
        let a0 = args.first().map(|a| basename(a));
        let applet = match a0 {
            Some(a) if a == base || a.is_empty() => {
                args.get(1).map(|a| basename(a)).filter(|a| !a.is_empty())
            }
            Some(a) => Some(a),
            None => Some(comm).filter(|c| !c.is_empty()),
        };
        if let Some(a) = applet {
            s.push('[');
            s.push_str(&String::from_utf8_lossy(a));
            s.push(']');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_parts_of_paths_collapse_and_words_stay() {
        for (p, want) in [
            ("/tmp/job-1234.log", "/tmp/job-#.log"),
            ("/tmp/job-7.log", "/tmp/job-#.log"),
            ("/etc/resolv.conf", "/etc/resolv.conf"),
            ("/usr/lib/python3.11/os.py", "/usr/lib/python#.#/os.py"),
            ("/proc/4242/stat", "/proc/#/stat"),
            (
                "/run/containerd/0f3a9c2e-1b2c-4d5e-8f90-a1b2c3d4e5f6/log",
                "/run/containerd/{uuid}/log",
            ),
            (
                "/var/lib/x/3f2a9c0d1e4b5a6c7d8e9f00112233445566778899aabbccddeeff0011223344",
                "/var/lib/x/{hex}",
            ),
            ("/tmp/tmp.Xa81bQz09c", "/tmp/tmp.{rand}"),
            ("/tmp/sh-thd.aB3kQ9", "/tmp/sh-thd.{rand}"),
            ("/home/u/.cache/MyConfig", "/home/u/.cache/MyConfig"),
            ("/var/log/nginx/access.log", "/var/log/nginx/access.log"),
            ("/dev/pts/3", "/dev/pts/#"),
            ("/lib64/ld-linux-x86-64.so.2", "/lib#/ld-linux-x#-#.so.#"),
            ("relative/0a1b2c3d4e", "relative/{hex}"),
        ] {
            assert_eq!(path_pattern(p), want, "{p}");
        }
    }

    #[test]
    fn the_applet_of_a_multi_call_binary_is_part_of_the_executable() {
        let a = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(
            executable(b"/bin/busybox", &a(&["nc", "-w", "1"]), b"nc"),
            "/bin/busybox[nc]"
        );
        assert_eq!(
            executable(b"/bin/busybox", &a(&["busybox", "date"]), b"busybox"),
            "/bin/busybox[date]"
        );
        assert_eq!(
            executable(b"/bin/busybox", &a(&["/bin/sh", "-c", "x"]), b"sh"),
            "/bin/busybox[sh]"
        );
        assert_eq!(
            executable(b"/bin/busybox", &[], b"wget"),
            "/bin/busybox[wget]"
        );
        assert_eq!(
            executable(b"/usr/bin/date", &a(&["date"]), b"date"),
            "/usr/bin/date"
        );
    }

    #[test]
    fn dirs_split_and_wildcards() {
        assert_eq!(split_dir("/a/b"), Some(("/a", "b")));
        assert_eq!(split_dir("/b"), Some(("/", "b")));
        assert_eq!(dir_wildcard("/a"), "/a/*");
        assert_eq!(dir_wildcard("/"), "/*");
    }
}
