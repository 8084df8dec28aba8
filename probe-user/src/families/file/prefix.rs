//! Path prefix rules, the same in userspace as in the kernel trie: lexical normalisation and
//! the longest-prefix include/exclude match.
/// Whether `normalize` would give `path` back unchanged: absolute, no empty, `.` or `..`
/// component, no trailing `/` (other than `/` itself).
pub fn is_normal(path: &[u8]) -> bool {
    if path == b"/" {
        return true;
    }
    path.first() == Some(&b'/')
        && path.last() != Some(&b'/')
        && !path
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

/// Lexical clean-up of an absolute path: `//` and `.` dropped, `..` pops a component. Used for
/// filtering only (symlinks are not followed, so it is not the real path).
pub fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Include/exclude prefixes, the same rule as the kernel trie: the longest matching prefix
/// decides; with no match, a path is kept unless include prefixes exist.
#[derive(Clone, Debug, Default)]
pub struct PathFilter {
    rules: Vec<(Vec<u8>, bool)>,
    has_include: bool,
}

impl PathFilter {
    /// From (normalised prefix, include?) pairs.
    pub fn new(prefixes: &[(Vec<u8>, bool)]) -> Self {
        PathFilter {
            rules: prefixes
                .iter()
                .map(|(p, inc)| {
                    let key = if p == b"/" {
                        p.clone()
                    } else {
                        [p.as_slice(), b"/"].concat()
                    };
                    (key, *inc)
                })
                .collect(),
            has_include: prefixes.iter().any(|(_, inc)| *inc),
        }
    }

    /// Whether an absolute path is kept. Relative (unresolved) paths are always kept.
    pub fn keeps(&self, path: &[u8]) -> bool {
        if path.first() != Some(&b'/') {
            return true;
        }
        if self.rules.is_empty() {
            return true;
        }
        // Nearly every path is already normal: match it as it is, with no copy.
        let normal;
        let p: &[u8] = if is_normal(path) {
            path
        } else {
            normal = normalize(path);
            &normal
        };
        // `p` plus a trailing `/` starts with the key (keys end in `/`; `/` is its own key).
        let under = |k: &[u8]| {
            if p == b"/" {
                return k == b"/";
            }
            let stem = &k[..k.len().saturating_sub(1)];
            p.starts_with(stem) && (p.len() == stem.len() || p[stem.len()] == b'/')
        };
        self.rules
            .iter()
            .filter(|(k, _)| under(k))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, inc)| *inc)
            .unwrap_or(!self.has_include)
    }
}
