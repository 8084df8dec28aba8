//! The console's requests (list, release, kill by entity id or container id), answered on the
//! pipeline thread, and the processes remembered for them.
use std::{os::unix::ffi::OsStrExt as _, path::Path};

use super::{
    actions::{self, Proc},
    control,
    engine::{lossy, Responder, Seen},
    held,
};
use crate::event::{
    response::{Action, Response, Target, Trigger},
    Event,
};

/// Processes remembered for the console; the map starts over when full.
const SEEN_MAX: usize = 65_536;

impl Responder {
    /// Remembers the process of `ev` for console requests by entity id.
    pub(super) fn remember(&mut self, ev: &Event) {
        let (Some(t), Some(p)) = (&ev.task, ev.process.as_deref()) else {
            return;
        };
        if self.cfg.socket.is_none() || p.entity_id.is_empty() {
            return;
        }
        if self.seen.len() >= SEEN_MAX {
            self.seen.clear();
        }
        self.seen.insert(
            p.entity_id.clone(),
            Seen {
                proc: Proc {
                    pid: t.pid,
                    start_ns: t.start_ns,
                },
                exe: p.exe.clone(),
                container: ev
                    .container
                    .as_deref()
                    .map(|c| (c.id.clone(), c.name.clone())),
                cgroup_id: t.cgroup_id,
            },
        );
    }

    /// Lifts one hold: a thaw, a SIGCONT, or the end of an isolation.
    fn release(&mut self, item: held::Item) -> Response {
        let trigger = Trigger {
            rule_id: "console".into(),
            alert_seq: None,
        };
        let mut r = Response::new(
            Action::Release,
            item.target.clone(),
            trigger,
            self.cfg.dry_run,
        );
        let done = match &item.how {
            held::How::Cgroup(d) => actions::set_frozen(d, false),
            held::How::Stopped(fd) => actions::signal(fd, rustix::process::Signal::CONT),
            held::How::Iface(l) => match &mut self.isolator {
                Some(i) => i.release(l),
                None => Ok(()),
            },
        };
        match done {
            Ok(()) => {
                r.ok = true;
                r.reason = Some(format!("released {}", item.kind.as_str()));
                r
            }
            Err(f) => Self::fail(r, f),
        }
    }

    /// Answers the console's requests, if any came (pipeline thread, between batches).
    pub fn poll_control(&mut self, out: &mut Vec<Event>) {
        let reqs = match &self.control {
            Some(c) => c.pending(),
            None => return,
        };
        for (req, reply) in reqs {
            let answer = self.answer(req, out);
            let _ = reply.send(answer);
        }
    }

    fn answer(&mut self, req: control::Request, out: &mut Vec<Event>) -> control::Reply {
        match req {
            control::Request::List => control::Reply::ok(self.held.list()),
            control::Request::Release { target } => {
                let items = self.held.take_matching(&target);
                if items.is_empty() {
                    return control::Reply::err(format!(
                        "nothing is held for {target:?} (see `tprobe respond list`)"
                    ));
                }
                let mut done = Vec::new();
                for item in items {
                    let r = self.release(item);
                    done.push(serde_json::to_value(&r).unwrap_or_default());
                    out.push(self.event(None, r));
                }
                control::Reply::ok(done.into())
            }
            control::Request::Kill { target } => self.console_kill(&target, out),
        }
    }

    /// A kill asked for on the console: a process entity id (or `pid:N`), or a container id
    /// (every process of its cgroup, through `cgroup.kill`).
    fn console_kill(&mut self, target: &str, out: &mut Vec<Event>) -> control::Reply {
        let trigger = Trigger {
            rule_id: "console".into(),
            alert_seq: None,
        };
        let seen = self.seen.get(target).cloned().or_else(|| {
            let pid: u32 = target.strip_prefix("pid:")?.parse().ok()?;
            Some(Seen {
                proc: Proc {
                    pid,
                    start_ns: self.procs.start_ns(pid)?,
                },
                exe: None,
                container: None,
                cgroup_id: 0,
            })
        });
        if let Some(s) = seen {
            let t = Target {
                pid: Some(s.proc.pid),
                exe: s.exe.as_deref().map(lossy),
                entity_id: (!target.starts_with("pid:")).then(|| target.to_owned()),
                ..Default::default()
            };
            let exe = s
                .exe
                .as_deref()
                .map(|e| Path::new(std::ffi::OsStr::from_bytes(e)));
            let r = Response::new(Action::Kill, t, trigger, self.cfg.dry_run);
            let r = self.do_kill(r, s.proc, exe, false);
            let v = serde_json::to_value(&r).unwrap_or_default();
            let ok = r.ok;
            out.push(self.event(None, r));
            return if ok {
                control::Reply::ok(v)
            } else {
                control::Reply::err_with(v)
            };
        }
        // A container the stage saw: any member's cgroup.
        let member = self
            .seen
            .values()
            .find(|s| {
                s.container
                    .as_ref()
                    .is_some_and(|(id, _)| id.starts_with(target) && target.len() >= 12)
            })
            .cloned();
        let Some(m) = member else {
            return control::Reply::err(format!(
                "{target:?} is neither a process entity id nor a container the probe has seen"
            ));
        };
        let (id, name) = m.container.clone().unwrap_or_default();
        let t = Target {
            container: Some(id),
            ..Default::default()
        };
        let mut r = Response::new(Action::Kill, t, trigger, self.cfg.dry_run);
        let dir = actions::cgroup_by_id(m.cgroup_id);
        if let Some(why) = self.guard.refuse_container(name.as_deref()) {
            r = r.refused(why);
        } else if let Some(why) = dir.as_ref().ok().and_then(|d| self.guard.refuse_cgroup(d)) {
            r = r.refused(why);
        } else if !r.dry_run {
            let done = dir.and_then(|d| {
                std::fs::write(d.join("cgroup.kill"), "1").map_err(|e| {
                    actions::Failure::new(
                        e.raw_os_error().unwrap_or(libc::EIO),
                        format!("cgroup.kill: {e}"),
                    )
                })
            });
            r = match done {
                Ok(()) => Response { ok: true, ..r },
                Err(f) => Self::fail(r, f),
            };
        } else {
            r.ok = true;
        }
        let v = serde_json::to_value(&r).unwrap_or_default();
        let ok = r.ok;
        out.push(self.event(None, r));
        if ok {
            control::Reply::ok(v)
        } else {
            control::Reply::err_with(v)
        }
    }

    /// At shutdown: every hold is lifted (a frozen container must not stay frozen because
    /// the probe stopped), each with its event.
    pub fn release_all(&mut self, out: &mut Vec<Event>) {
        for item in self.held.take_all() {
            let r = self.release(item);
            out.push(self.event(None, r));
        }
    }
}
