//! IoC lists: SHA-256 hashes, IP addresses and CIDRs, domains. One indicator per line, or CSV
//! `indicator,name`; `#` starts a comment. Each lookup is a hash probe: hashes in a set,
//! networks in one set per prefix length, domains in a map probed at each label boundary.
use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use ipnet::IpNet;

use crate::event::alert::{IocHit, RuleInfo};

/// Largest IoC file read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IocError {
    #[error("IoC list {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("IoC list {0}: {1} bytes, more than {MAX_FILE_BYTES}")]
    TooLarge(PathBuf, u64),
}

/// A line that is no indicator; the others still load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub file: String,
    pub line: usize,
    pub text: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {:?} is neither a SHA-256 hash, an IP, a CIDR nor a domain",
            self.file, self.line, self.text
        )
    }
}

/// One indicator and where it came from.
#[derive(Clone, Debug)]
struct Entry {
    indicator: String,
    name: Option<String>,
    list: Arc<RuleInfo>,
}

#[derive(Default)]
pub struct IocSet {
    hashes: HashMap<String, Entry>,
    /// Prefix length -> networks of that length (address masked).
    nets: HashMap<u8, HashMap<IpNet, Entry>>,
    /// Prefix lengths in use, longest first (the most specific match wins).
    net_lens: Vec<u8>,
    domains: HashMap<String, Entry>,
    pub bad_lines: Vec<BadLine>,
    pub counts: BTreeSet<(String, usize)>,
}

impl IocSet {
    pub fn load(paths: &[PathBuf]) -> Result<IocSet, IocError> {
        let mut set = IocSet::default();
        for p in paths {
            set.load_file(p)?;
        }
        let mut lens: Vec<u8> = set.nets.keys().copied().collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        set.net_lens = lens;
        Ok(set)
    }

    fn load_file(&mut self, path: &Path) -> Result<(), IocError> {
        let size = std::fs::metadata(path)
            .map_err(|e| IocError::Io(path.into(), e))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(IocError::TooLarge(path.into(), size));
        }
        let text = std::fs::read_to_string(path).map_err(|e| IocError::Io(path.into(), e))?;
        let file = path.display().to_string();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let list = Arc::new(RuleInfo {
            id: format!("ioc.{stem}"),
            title: format!("Indicator of compromise from {stem}"),
            level: "high".into(),
            status: Some("stable".into()),
            description: Some(format!("A value of the event is listed in {file}.")),
            tags: Vec::new(),
            references: Vec::new(),
            tactics: Vec::new(),
            techniques: Vec::new(),
            file: Some(file.clone()),
        });
        let mut n = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (ind, name) = match line.split_once(',') {
                Some((a, b)) => (a.trim(), Some(b.trim().trim_matches('"').to_owned())),
                None => (line, None),
            };
            let entry = |indicator: String| Entry {
                indicator,
                name: name.clone().filter(|s| !s.is_empty()),
                list: list.clone(),
            };
            if is_sha256(ind) {
                self.hashes
                    .insert(ind.to_ascii_lowercase(), entry(ind.to_owned()));
            } else if let Some(net) = parse_net(ind) {
                self.nets
                    .entry(net.prefix_len())
                    .or_default()
                    .insert(net.trunc(), entry(ind.to_owned()));
            } else if is_domain(ind) {
                let d = ind.trim_end_matches('.').to_ascii_lowercase();
                self.domains.insert(d, entry(ind.to_owned()));
            } else {
                self.bad_lines.push(BadLine {
                    file: file.clone(),
                    line: i + 1,
                    text: ind.chars().take(120).collect(),
                });
                continue;
            }
            n += 1;
        }
        self.counts.insert((file, n));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.nets.is_empty() && self.domains.is_empty()
    }

    pub fn has_hashes(&self) -> bool {
        !self.hashes.is_empty()
    }

    pub fn has_addresses(&self) -> bool {
        !self.nets.is_empty()
    }

    pub fn has_domains(&self) -> bool {
        !self.domains.is_empty()
    }

    pub fn len(&self) -> usize {
        self.hashes.len() + self.nets.values().map(HashMap::len).sum::<usize>() + self.domains.len()
    }

    fn hit(
        e: &Entry,
        kind: &'static str,
        value: String,
        field: &'static str,
    ) -> (IocHit, Arc<RuleInfo>) {
        (
            IocHit {
                indicator: e.indicator.clone(),
                kind,
                value,
                field,
                list: e.list.file.clone().unwrap_or_default(),
                name: e.name.clone(),
            },
            e.list.clone(),
        )
    }

    pub fn match_hash(&self, hex: &str, field: &'static str) -> Option<(IocHit, Arc<RuleInfo>)> {
        let e = self.hashes.get(&hex.to_ascii_lowercase())?;
        Some(Self::hit(e, "sha256", hex.to_owned(), field))
    }

    pub fn match_ip(&self, ip: IpAddr, field: &'static str) -> Option<(IocHit, Arc<RuleInfo>)> {
        for &len in &self.net_lens {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if len > max {
                continue;
            }
            let Ok(net) = IpNet::new(ip, len) else {
                continue;
            };
            if let Some(e) = self.nets.get(&len).and_then(|m| m.get(&net.trunc())) {
                return Some(Self::hit(e, "ip", ip.to_string(), field));
            }
        }
        None
    }

    /// A listed domain or any parent of it (`evil.example` lists `a.evil.example`).
    pub fn match_domain(&self, name: &str, field: &'static str) -> Option<(IocHit, Arc<RuleInfo>)> {
        let d = name.trim_end_matches('.').to_ascii_lowercase();
        let mut rest = d.as_str();
        loop {
            if let Some(e) = self.domains.get(rest) {
                return Some(Self::hit(e, "domain", d.clone(), field));
            }
            match rest.split_once('.') {
                Some((_, parent)) if parent.contains('.') || !parent.is_empty() => rest = parent,
                _ => return None,
            }
        }
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

fn is_domain(s: &str) -> bool {
    let d = s.trim_end_matches('.');
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && !d.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> IocSet {
        let dir = std::env::temp_dir().join(format!("tprobe-ioc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("list-{}.txt", text.len()));
        std::fs::write(&p, text).unwrap();
        IocSet::load(&[p]).unwrap()
    }

    #[test]
    fn indicators_of_each_kind_match_and_bad_lines_are_reported() {
        let h = "a".repeat(64);
        let s = set(&format!(
            "# comment\n{h}\n10.1.0.0/16,lab net\n192.0.2.7\n2001:db8::/32\nevil.example\nnot an ioc\n999.1.1.1/8\n"
        ));
        assert_eq!(s.len(), 5);
        assert_eq!(s.bad_lines.len(), 2);
        assert_eq!(s.bad_lines[0].line, 7);
        assert!(s
            .match_hash(&h.to_uppercase(), "process.hash.sha256")
            .is_some());
        let (hit, _) = s
            .match_ip("10.1.200.3".parse().unwrap(), "net.dst.ip")
            .unwrap();
        assert_eq!(
            (hit.indicator.as_str(), hit.name.as_deref()),
            ("10.1.0.0/16", Some("lab net"))
        );
        assert!(s
            .match_ip("10.2.0.1".parse().unwrap(), "net.dst.ip")
            .is_none());
        assert!(s.match_ip("192.0.2.7".parse().unwrap(), "x").is_some());
        assert!(s.match_ip("2001:db8:1::9".parse().unwrap(), "x").is_some());
        assert!(s.match_domain("a.b.Evil.Example.", "dns.query").is_some());
        assert!(s.match_domain("notevil.example", "dns.query").is_none());
        assert!(s.match_domain("example", "dns.query").is_none());
    }
}
