//! The process tree of a record, rebuilt from `entity_id` links: every process any line names
//! (as the actor, its `parent`, its `ancestors` or a forked `child`) is one node. Memory grows
//! with the number of processes, not of events.
use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::encode::json::{get, get_str};

/// Nanoseconds since the epoch of an RFC 3339 time.
pub fn ns(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Exit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub core_dumped: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// `namespace/name` of the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// An image the process ran before its last exec (e.g. the `sh` a child was forked as).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Image {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    pub args: Vec<String>,
    /// Until when it ran (the next exec).
    pub until: String,
    /// The parent's image, copied at fork (not worth showing to a person).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inherited: bool,
}

/// Where a node was learnt from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Seen {
    /// Lines of its own.
    Events,
    /// Only as another line's `parent` or `ancestors`.
    Ancestor,
    /// Only as a forked `child`.
    Forked,
}

/// Earlier images kept per process (a process exec'ing in a loop keeps a count beyond it).
const MAX_IMAGES: usize = 8;

#[derive(Debug, Clone, Serialize)]
pub struct Proc {
    pub entity_id: String,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// Entity id of the parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    #[serde(skip_serializing_if = "is_zero")]
    pub images_more: u64,
    pub seen: Seen,
    /// The image is the parent's, copied at fork, until an exec.
    #[serde(skip)]
    forked_image: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Proc {
    fn new(entity_id: &str, pid: u32, seen: Seen) -> Self {
        Proc {
            entity_id: entity_id.to_owned(),
            pid,
            ppid: None,
            parent: None,
            host: None,
            comm: None,
            exe: None,
            args: Vec::new(),
            cwd: None,
            user: None,
            uid: None,
            start: None,
            end: None,
            exit: None,
            container: None,
            images: Vec::new(),
            images_more: 0,
            seen,
            forked_image: false,
        }
    }

    pub fn start_ns(&self) -> Option<i64> {
        self.start.as_deref().and_then(ns)
    }

    pub fn end_ns(&self) -> Option<i64> {
        self.end.as_deref().and_then(ns)
    }

    /// Alive at `t`: started at or before it (or start unknown) and not ended before it.
    pub fn alive_at(&self, t: i64) -> bool {
        self.start_ns().is_none_or(|s| s <= t) && self.end_ns().is_none_or(|e| e >= t)
    }

    /// A short name: the exe's file name, else comm.
    pub fn name(&self) -> &str {
        self.exe
            .as_deref()
            .and_then(|e| e.rsplit('/').next())
            .filter(|s| !s.is_empty())
            .or(self.comm.as_deref())
            .unwrap_or("?")
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pid_of(v: &Value) -> u32 {
    v.get("pid")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0)
}

fn container_of(v: &Value) -> Option<Container> {
    let c = v.get("container")?;
    let id = get_str(c, "id")?.to_owned();
    let pod = match (get_str(c, "pod.namespace"), get_str(c, "pod.name")) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        (None, Some(n)) => Some(n.to_owned()),
        _ => None,
    };
    Some(Container {
        id,
        name: get_str(c, "name").map(str::to_owned),
        image: get_str(c, "image").map(str::to_owned),
        runtime: get_str(c, "runtime").map(str::to_owned),
        pod,
    })
}

#[derive(Default)]
pub struct Tree {
    pub nodes: Vec<Proc>,
    index: HashMap<String, usize>,
}

impl Tree {
    pub fn get(&self, entity: &str) -> Option<usize> {
        self.index.get(entity).copied()
    }

    /// Known first-hand (the quick pass's test, from raw bytes): a process seen only as a
    /// parent, an ancestor or a forked child still has its own first line read, which holds
    /// its cwd, user, container and start.
    pub fn knows(&self, entity: &[u8]) -> bool {
        std::str::from_utf8(entity)
            .ok()
            .and_then(|e| self.index.get(e))
            .is_some_and(|&i| self.nodes[i].seen == Seen::Events)
    }

    fn upsert(&mut self, entity: &str, pid: u32, seen: Seen) -> usize {
        if let Some(&i) = self.index.get(entity) {
            let n = &mut self.nodes[i];
            // A node learnt second-hand becomes first-hand when its own lines show up.
            if seen == Seen::Events {
                n.seen = Seen::Events;
            }
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(Proc::new(entity, pid, seen));
        self.index.insert(entity.to_owned(), i);
        i
    }

    fn link(&mut self, child: usize, parent: &str) {
        if self.nodes[child].parent.is_none() && self.nodes[child].entity_id != parent {
            self.nodes[child].parent = Some(parent.to_owned());
        }
    }

    /// Learns what a parsed native line says about processes.
    pub fn ingest(&mut self, v: &Value) {
        let kind = get_str(v, "kind").unwrap_or("");
        let ts = get_str(v, "ts").unwrap_or("");
        let host = get_str(v, "host.name");
        let Some(p) = v.get("process").filter(|p| p.is_object()) else {
            return;
        };
        let Some(eid) = get_str(p, "entity_id").filter(|e| !e.is_empty()) else {
            return;
        };
        let me = self.upsert(eid, pid_of(p), Seen::Events);
        let thread = p.get("tid").is_some_and(|t| t != &p["pid"]);
        {
            let exec = kind == "process.exec";
            let n = &mut self.nodes[me];
            if exec && (n.exe.is_some() || !n.args.is_empty()) {
                // (`forked_image` is cleared below, once the new image is in.)
                if n.images.len() < MAX_IMAGES {
                    n.images.push(Image {
                        exe: n.exe.take(),
                        args: std::mem::take(&mut n.args),
                        until: ts.to_owned(),
                        inherited: n.forked_image,
                    });
                } else {
                    n.images_more += 1;
                }
            }
            let fill = |slot: &mut Option<String>, key: &str| {
                if exec || slot.is_none() {
                    if let Some(s) = get_str(p, key) {
                        *slot = Some(s.to_owned());
                    }
                }
            };
            fill(&mut n.exe, "exe");
            fill(&mut n.comm, "comm");
            fill(&mut n.cwd, "cwd");
            fill(&mut n.user, "user");
            fill(&mut n.start, "start_time");
            if exec || n.args.is_empty() {
                let a = strings(p.get("args"));
                if !a.is_empty() {
                    n.args = a;
                }
            }
            if exec {
                n.forked_image = false;
            }
            if n.host.is_none() {
                n.host = host.map(str::to_owned);
            }
            if n.uid.is_none() {
                n.uid = p.get("uid").and_then(Value::as_u64);
            }
            if n.ppid.is_none() {
                n.ppid = p
                    .get("ppid")
                    .and_then(Value::as_u64)
                    .and_then(|x| u32::try_from(x).ok());
            }
            if n.container.is_none() {
                n.container = container_of(v);
            }
            if kind == "process.exit" && !thread {
                n.end = Some(ts.to_owned());
                n.exit = v.get("exit").map(|x| Exit {
                    code: x.get("code").and_then(Value::as_i64),
                    signal: x.get("signal").and_then(Value::as_i64),
                    core_dumped: x.get("core_dumped").and_then(Value::as_bool) == Some(true),
                });
            }
        }
        // The parent, then the ancestors beyond it, each linked to the next.
        if let Some(par) = v.get("parent").filter(|x| x.is_object()) {
            if let Some(pe) = get_str(par, "entity_id").filter(|e| !e.is_empty()) {
                let i = self.upsert(pe, pid_of(par), Seen::Ancestor);
                let n = &mut self.nodes[i];
                if n.exe.is_none() {
                    n.exe = get_str(par, "exe").map(str::to_owned);
                }
                if n.comm.is_none() {
                    n.comm = get_str(par, "comm").map(str::to_owned);
                }
                if n.args.is_empty() {
                    n.args = strings(par.get("args"));
                }
                self.link(me, pe);
            }
        }
        if let Some(anc) = p.get("ancestors").and_then(Value::as_array) {
            let mut prev = me;
            for a in anc {
                let Some(ae) = get_str(a, "entity_id").filter(|e| !e.is_empty()) else {
                    break;
                };
                let i = self.upsert(ae, pid_of(a), Seen::Ancestor);
                let n = &mut self.nodes[i];
                if n.exe.is_none() {
                    n.exe = get_str(a, "exe").map(str::to_owned);
                }
                if n.args.is_empty() {
                    n.args = strings(a.get("args"));
                }
                if n.start.is_none() {
                    n.start = get_str(a, "start_time").map(str::to_owned);
                }
                if n.host.is_none() {
                    n.host = host.map(str::to_owned);
                }
                self.link(prev, ae);
                prev = i;
            }
        }
        if kind == "process.fork" {
            let child = v.get("child");
            let is_thread =
                child.and_then(|c| c.get("thread")).and_then(Value::as_bool) == Some(true);
            if let (Some(c), false) = (child, is_thread) {
                if let Some(ce) = get_str(c, "entity_id").filter(|e| !e.is_empty()) {
                    let fresh = self.get(ce).is_none();
                    let i = self.upsert(ce, pid_of(c), Seen::Forked);
                    if fresh {
                        // A forked child runs its parent's image until it execs.
                        let (exe, args, comm, cwd, user, uid, container) = {
                            let n = &self.nodes[me];
                            (
                                n.exe.clone(),
                                n.args.clone(),
                                n.comm.clone(),
                                n.cwd.clone(),
                                n.user.clone(),
                                n.uid,
                                n.container.clone(),
                            )
                        };
                        let n = &mut self.nodes[i];
                        n.exe = exe;
                        n.args = args;
                        n.comm = comm;
                        n.cwd = cwd;
                        n.user = user;
                        n.uid = uid;
                        n.container = container;
                        n.start = Some(ts.to_owned());
                        n.host = host.map(str::to_owned);
                        n.forked_image = true;
                    }
                    self.link(i, eid);
                }
            }
        }
    }

    /// Children of every node (indices), in the order they were learnt.
    pub fn children(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(p) = n.parent.as_deref().and_then(|p| self.get(p)) {
                if p != i {
                    out[p].push(i);
                }
            }
        }
        out
    }

    /// Parent chain of `i`, nearest first, stopping at a loop.
    pub fn ancestors(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut cur = i;
        while let Some(p) = self.nodes[cur].parent.as_deref().and_then(|p| self.get(p)) {
            if p == i || out.contains(&p) {
                break;
            }
            out.push(p);
            cur = p;
        }
        out
    }

    /// Nodes with this pid (any host).
    pub fn with_pid(&self, pid: u32) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].pid == pid)
            .collect()
    }
}

/// The number at `path` of `v`, for callers that read objects of the schema.
pub fn num(v: &Value, path: &str) -> Option<u64> {
    get(v, path).and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn line(kind: &str, ts: &str, pid: u32, eid: &str, extra: Value) -> Value {
        let mut v = json!({
            "ts": ts, "kind": kind, "host": {"name": "h"},
            "process": {"pid": pid, "tid": pid, "exe": format!("/bin/p{pid}"), "args": [format!("p{pid}")],
                        "start_time": ts, "entity_id": eid, "user": "root", "uid": 0},
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                if k == "ancestors" {
                    o["process"]["ancestors"] = x.clone();
                } else {
                    o.insert(k.clone(), x.clone());
                }
            }
        }
        v
    }

    #[test]
    fn links_parents_ancestors_forks_and_execs() {
        let mut t = Tree::default();
        // The shell (ancestors: bash, init) forks a child that execs touch, which exits.
        t.ingest(&line(
            "process.fork",
            "2026-01-01T00:00:01Z",
            10,
            "sh",
            json!({"child": {"pid": 11, "entity_id": "kid", "thread": false},
                   "ancestors": [{"pid": 5, "exe": "/bin/bash", "args": ["bash"], "entity_id": "bash"},
                                 {"pid": 1, "exe": "/sbin/init", "args": ["init"], "entity_id": "init"}]}),
        ));
        let kid = t.get("kid").unwrap();
        assert_eq!(
            t.nodes[kid].exe.as_deref(),
            Some("/bin/p10"),
            "inherits the image"
        );
        assert_eq!(t.nodes[kid].seen, Seen::Forked);
        let mut exec = line("process.exec", "2026-01-01T00:00:02Z", 11, "kid", json!({}));
        exec["process"]["exe"] = "/usr/bin/touch".into();
        exec["process"]["args"] = json!(["touch", "-d", "2001-01-01", "/tmp/x"]);
        exec["parent"] = json!({"pid": 10, "entity_id": "sh"});
        t.ingest(&exec);
        let mut exit = line("process.exit", "2026-01-01T00:00:03Z", 11, "kid", json!({}));
        exit["exit"] = json!({"code": 0, "signal": null, "core_dumped": false});
        t.ingest(&exit);
        let n = &t.nodes[kid];
        assert_eq!(n.exe.as_deref(), Some("/usr/bin/touch"));
        assert_eq!(n.images.len(), 1);
        assert_eq!(n.images[0].exe.as_deref(), Some("/bin/p10"));
        assert!(n.images[0].inherited, "the image copied at fork");
        assert_eq!(n.end.as_deref(), Some("2026-01-01T00:00:03Z"));
        assert_eq!(n.exit.as_ref().unwrap().code, Some(0));
        assert_eq!(n.seen, Seen::Events);
        let names: Vec<&str> = t
            .ancestors(kid)
            .into_iter()
            .map(|i| t.nodes[i].entity_id.as_str())
            .collect();
        assert_eq!(names, ["sh", "bash", "init"]);
        let ch = t.children();
        assert_eq!(ch[t.get("sh").unwrap()], vec![kid]);
        assert!(n.alive_at(ns("2026-01-01T00:00:02.5Z").unwrap()));
        assert!(!n.alive_at(ns("2026-01-01T00:00:04Z").unwrap()));
    }

    #[test]
    fn a_loop_of_parents_ends() {
        let mut t = Tree::default();
        let mut a = line("file.open", "2026-01-01T00:00:01Z", 1, "a", json!({}));
        a["parent"] = json!({"pid": 2, "entity_id": "b"});
        t.ingest(&a);
        let mut b = line("file.open", "2026-01-01T00:00:01Z", 2, "b", json!({}));
        b["parent"] = json!({"pid": 1, "entity_id": "a"});
        t.ingest(&b);
        assert_eq!(t.ancestors(t.get("a").unwrap()).len(), 1);
    }
}
