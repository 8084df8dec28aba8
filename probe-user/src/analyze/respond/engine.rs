//! The stage itself: the config checked, alerts and execs turned into actions, every action
//! into its event.

use std::{
    collections::HashMap,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
};

use probe_common::EventKind;

use super::{actions, config, deny, held, isolate, safety};
use crate::event::{
    process::{HashOutcome, ProcessInfo},
    response::{Action, Response, Target, Trigger},
    Alert, Body, Event,
};
use actions::{Proc, Procs};
use config::{Binding, RespondConfig, RuleMatch};
use held::{Held, HeldKind};

#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error(transparent)]
    Config(#[from] config::RespondConfigError),
    #[error(transparent)]
    Deny(#[from] deny::DenyError),
    #[error(transparent)]
    Isolate(#[from] isolate::IsolateError),
    #[error("control socket {0}: {1}")]
    Socket(PathBuf, std::io::Error),
}

/// Counters for `probe.stop`.
#[derive(Debug, Default)]
pub struct RespondStats {
    pub actions: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub dry_run: AtomicU64,
    pub in_kernel: AtomicU64,
}

/// What a process the stage saw is (for console requests by entity id).
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) proc: Proc,
    pub(super) exe: Option<Vec<u8>>,
    pub(super) container: Option<(String, Option<String>)>,
    pub(super) cgroup_id: u64,
}

/// The container an action is aimed at.
#[derive(Clone, Copy, Debug)]
struct Ctr<'a> {
    id: &'a str,
    name: Option<&'a str>,
    cgroup_id: u64,
}

pub struct Responder {
    pub(super) cfg: RespondConfig,
    pub(super) procs: Procs,
    pub(super) guard: safety::Guard,
    pub(super) limiter: safety::Limiter,
    pub(super) deny: deny::DenyList,
    pub(super) held: Held,
    pub(super) isolator: Option<isolate::Isolator>,
    pub(super) seen: HashMap<String, Seen>,
    pub(super) control: Option<super::control::Server>,
    pub stats: Arc<RespondStats>,
}

/// The action's time since the triggering event, in µs (0 when the clock went back).
fn latency_us(ts_ns: u64) -> u64 {
    crate::clock::BootClock::now_boot_ns().saturating_sub(ts_ns) / 1000
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn target_of(p: Option<&ProcessInfo>, pid: u32) -> Target {
    Target {
        pid: Some(pid),
        exe: p.and_then(|p| p.exe.as_deref()).map(lossy),
        entity_id: p.map(|p| p.entity_id.clone()),
        ..Default::default()
    }
}

fn sha256_of(p: &ProcessInfo) -> Option<&str> {
    match p.hash.as_deref()?.get()? {
        HashOutcome::Sha256(h) => Some(h),
        _ => None,
    }
}

impl Responder {
    /// Checks the config and resolves the deny list; `deny_map` is the kernel's (written unless
    /// this is a dry run), `ebpf_obj` loads the isolate programs when a binding may isolate.
    pub fn start(
        cfg: RespondConfig,
        proc_root: PathBuf,
        deny_map: Option<aya::maps::Map>,
    ) -> Result<Responder, RespondError> {
        let procs = Procs::new(proc_root);
        let map = match deny_map {
            Some(m) if !cfg.dry_run && !cfg.deny.is_empty() => {
                Some(aya::maps::HashMap::try_from(m).map_err(deny::DenyError::Map)?)
            }
            _ => None,
        };
        let deny = deny::DenyList::new(&cfg.deny, map)?;
        let isolator = if cfg.may_isolate() && !cfg.dry_run {
            Some(isolate::Isolator::load(&cfg.allow)?)
        } else {
            None
        };
        let guard = safety::Guard::new(&procs, cfg.protect.clone());
        let limiter = safety::Limiter::new(cfg.rate, cfg.rate_global);
        Ok(Responder {
            cfg,
            procs,
            guard,
            limiter,
            deny,
            held: Held::default(),
            isolator,
            seen: HashMap::new(),
            control: None,
            stats: Default::default(),
        })
    }

    /// Starts the control socket when configured; `wake` nudges the pipeline thread (which
    /// answers the requests) with an empty batch.
    pub fn serve(
        &mut self,
        wake: tokio::sync::mpsc::WeakSender<Vec<Event>>,
    ) -> Result<(), RespondError> {
        if let Some(path) = self.cfg.socket.clone() {
            self.control = Some(
                super::control::Server::start(&path, wake)
                    .map_err(|e| RespondError::Socket(path.clone(), e))?,
            );
        }
        Ok(())
    }

    /// The kinds the stage needs from the kernel whatever `--events` shows.
    pub fn kinds(&self) -> Vec<EventKind> {
        if self.deny.is_empty() {
            Vec::new()
        } else {
            vec![EventKind::ProcessExec]
        }
    }

    /// For `probe.start`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "bindings": self.cfg.bindings.iter().map(|b| b.spec.clone()).collect::<Vec<_>>(),
            "deny_exec": self.deny.entries.len(),
            "deny_exec_kernel_entries": self.deny.kernel_entries(),
            "dry_run": self.cfg.dry_run,
            "protect": self.cfg.protect,
            "isolate_allow": self.cfg.allow.len(),
            "control_socket": self.cfg.socket,
        })
    }

    /// For `probe.stop`.
    pub fn report(&self) -> serde_json::Value {
        let s = &self.stats;
        serde_json::json!({
            "actions": s.actions.load(Relaxed),
            "refused": s.refused.load(Relaxed),
            "rate_limited": self.limiter.refused,
            "failed": s.failed.load(Relaxed),
            "dry_run": s.dry_run.load(Relaxed),
            "in_kernel": s.in_kernel.load(Relaxed),
            "deny_exec_kernel_entries": self.deny.kernel_entries(),
            "deny_exec_insert_failed": self.deny.insert_failed,
            "held": self.held.len(),
        })
    }

    /// An event that carries the target's process context and `r`.
    pub(super) fn event(&self, from: Option<&Event>, mut r: Response) -> Event {
        let stats = &self.stats;
        stats.actions.fetch_add(1, Relaxed);
        let outcome = if r.dry_run {
            stats.dry_run.fetch_add(1, Relaxed);
            "dry_run"
        } else if r.reason.is_some() && r.error.is_none() && !r.ok {
            stats.refused.fetch_add(1, Relaxed);
            "refused"
        } else if !r.ok {
            stats.failed.fetch_add(1, Relaxed);
            "failed"
        } else {
            "done"
        };
        crate::service::prom::counter(
            "tprobe_responses",
            "Actions of the respond stage, by action and outcome (done, refused, failed, dry_run)",
            &[("action", r.action.as_str()), ("outcome", outcome)],
        )
        .inc();
        if r.in_kernel {
            stats.in_kernel.fetch_add(1, Relaxed);
        }
        // A kill in the kernel happened at the event; every other action now.
        let now = match from {
            Some(e) if r.in_kernel => e.ts_ns,
            _ => crate::clock::BootClock::now_boot_ns(),
        };
        if r.latency_us.is_none() {
            r.latency_us = from.map(|e| latency_us(e.ts_ns));
        }
        let body = Body::Response(Box::new(r));
        match from {
            Some(e) => Event {
                ts_ns: now,
                task: e.task.clone(),
                body,
                process: e.process.clone(),
                parent: e.parent.clone(),
                ancestors: e.ancestors.clone(),
                user: e.user.clone(),
                container: e.container.clone(),
            },
            None => Event::probe(now, body),
        }
    }

    /// Every event after analysis: denied execs (in the kernel or not yet).
    pub fn on_event(&mut self, ev: &Event, out: &mut Vec<Event>) {
        let Body::Exec(x) = &ev.body else {
            return;
        };
        self.remember(ev);
        if self.deny.is_empty() {
            return;
        }
        let (Some(t), p) = (&ev.task, ev.process.as_deref()) else {
            return;
        };
        let sha = p.and_then(sha256_of);
        let entry = self.deny.matches(Some(&x.exe), sha);
        let rule_id = entry
            .and_then(|i| self.deny.entry(i))
            .map(|e| e.rule_id())
            .unwrap_or_else(|| "deny-exec".into());
        let trigger = Trigger {
            rule_id,
            alert_seq: None,
        };
        let target = target_of(p, t.pid);
        if x.kernel_deny == Some(true) {
            let mut r = Response::new(Action::Kill, target, trigger, false);
            r.ok = true;
            r.in_kernel = true;
            // The signal was sent in the exec tracepoint that made the event.
            r.latency_us = Some(0);
            r.reason = Some("exec denied at sched_process_exec".into());
            out.push(self.event(Some(ev), r));
            return;
        }
        let Some(entry) = entry else {
            return;
        };
        // Hashed (or replaced since start): from now on the kernel knows this file.
        if let (Some(ino), false) = (x.inode.filter(|i| i.ino != 0), self.cfg.dry_run) {
            if let Err(e) = self.deny.learn(ino.dev, ino.ino, entry) {
                log::warn!("deny-exec: cannot add a file to the kernel map: {e}");
            }
        }
        let mut r = Response::new(Action::Kill, target, trigger, self.cfg.dry_run);
        if x.kernel_deny == Some(false) {
            r.reason =
                Some("bpf_send_signal failed in the exec hook; killed from userspace".into());
        }
        let exe = p
            .and_then(|p| p.exe.as_deref())
            .map(std::ffi::OsStr::from_bytes);
        let proc = Proc {
            pid: t.pid,
            start_ns: t.start_ns,
        };
        let r = self.do_kill(r, proc, exe.map(Path::new), false);
        out.push(self.event(Some(ev), r));
    }

    /// Whether a binding answers this alert.
    fn bound(b: &Binding, a: &Alert) -> bool {
        use crate::event::alert::AlertSource;
        match &b.rule {
            RuleMatch::Id(id) => a.rule.id == *id || (id == "ioc" && a.source == AlertSource::Ioc),
            RuleMatch::Baseline => a.source == AlertSource::Baseline,
            RuleMatch::BaselineWorkload(w) => {
                a.source == AlertSource::Baseline && held::alert_workload(a) == Some(w.as_str())
            }
        }
    }

    /// An alert as written (`seq`): the actions bound to its rule.
    pub fn on_alert(&mut self, ev: &Event, seq: Option<u64>, out: &mut Vec<Event>) {
        let Body::Alert(a) = &ev.body else {
            return;
        };
        self.remember(ev);
        let bound: Vec<Binding> = self
            .cfg
            .bindings
            .iter()
            .filter(|b| Self::bound(b, a))
            .cloned()
            .collect();
        for b in bound {
            let trigger = Trigger {
                rule_id: a.rule.id.clone(),
                alert_seq: seq,
            };
            let r = self.act(b.action, &b.spec, ev, trigger);
            out.push(self.event(Some(ev), r));
        }
    }

    /// One bound action on the process (or container) of `ev`.
    fn act(&mut self, action: Action, spec: &str, ev: &Event, trigger: Trigger) -> Response {
        let p = ev.process.as_deref();
        let Some(t) = &ev.task else {
            return Response::new(action, Target::default(), trigger, self.cfg.dry_run)
                .refused("the alert names no process");
        };
        let proc = Proc {
            pid: t.pid,
            start_ns: t.start_ns,
        };
        let container = ev.container.as_deref().map(|c| Ctr {
            id: c.id.as_str(),
            name: c.name.as_deref(),
            cgroup_id: t.cgroup_id,
        });
        let mut target = target_of(p, t.pid);
        if matches!(action, Action::Freeze | Action::Isolate) {
            if let Some(c) = container {
                target = Target {
                    container: Some(c.id.to_owned()),
                    ..Default::default()
                };
            }
        }
        let r = Response::new(action, target, trigger, self.cfg.dry_run);
        if let Some(why) = self.limiter.take(spec) {
            return r.refused(why);
        }
        let exe = p
            .and_then(|p| p.exe.as_deref())
            .map(|e| Path::new(std::ffi::OsStr::from_bytes(e)));
        match action {
            Action::Kill => self.do_kill(r, proc, exe, false),
            Action::KillTree => self.do_kill(r, proc, exe, true),
            Action::Freeze => self.do_freeze(r, proc, exe, container),
            Action::Isolate => self.do_isolate(r, proc, exe, container),
            Action::Release => {
                r.refused("release is asked for on the console, not bound to a rule")
            }
        }
    }

    pub(super) fn fail(mut r: Response, f: actions::Failure) -> Response {
        r.ok = false;
        r.error = Some(f.name());
        r.reason = Some(f.reason);
        r
    }

    pub(super) fn do_kill(
        &mut self,
        r: Response,
        p: Proc,
        exe: Option<&Path>,
        tree: bool,
    ) -> Response {
        let mut r = r;
        if tree {
            r.action = Action::KillTree;
        }
        if let Some(why) = self.guard.refuse_process(&self.procs, p.pid, exe) {
            return r.refused(why);
        }
        if r.dry_run {
            // Nothing is done; a process already gone is still reported as such.
            return match self.procs.open(p) {
                Ok(_) => {
                    r.ok = true;
                    r
                }
                Err(f) => Self::fail(r, f),
            };
        }
        let done = if tree {
            let (guard, procs) = (&self.guard, &self.procs);
            actions::kill_tree(&self.procs, p, &|pid| {
                guard.refuse_process(procs, pid, None)
            })
            .map(|pids| r.pids = pids)
        } else {
            actions::kill(&self.procs, p)
        };
        match done {
            Ok(()) => {
                r.ok = true;
                r
            }
            Err(f) => Self::fail(r, f),
        }
    }

    /// Checks common to freeze and isolate; the key the hold is kept under.
    fn hold_key(&self, p: Proc, exe: Option<&Path>, c: Option<Ctr>) -> Result<held::Key, String> {
        match c {
            Some(c) => {
                if let Some(why) = self.guard.refuse_container(c.name) {
                    return Err(why);
                }
                Ok(held::Key::Container(c.id.to_owned()))
            }
            None => {
                if let Some(why) = self.guard.refuse_process(&self.procs, p.pid, exe) {
                    return Err(why);
                }
                Ok(held::Key::Process(p.pid, p.start_ns))
            }
        }
    }

    /// A container: its whole cgroup through `cgroup.freeze` (found by the event's cgroup id,
    /// so a process that alerted and exited still names it). A host process: SIGSTOP.
    fn do_freeze(
        &mut self,
        mut r: Response,
        p: Proc,
        exe: Option<&Path>,
        c: Option<Ctr>,
    ) -> Response {
        let key = match self.hold_key(p, exe, c) {
            Ok(k) => k,
            Err(why) => return r.refused(why),
        };
        if self.held.get(&key, HeldKind::Freeze).is_some() {
            return r.refused("already frozen");
        }
        let how = match c {
            Some(c) => {
                let dir = match actions::cgroup_by_id(c.cgroup_id) {
                    Ok(d) => d,
                    Err(f) => return Self::fail(r, f),
                };
                if let Some(why) = self.guard.refuse_cgroup(&dir) {
                    return r.refused(why);
                }
                if r.dry_run {
                    r.ok = true;
                    return r;
                }
                if let Err(f) = actions::set_frozen(&dir, true) {
                    return Self::fail(r, f);
                }
                held::How::Cgroup(dir)
            }
            None => {
                // Opened (and checked) even in a dry run: a process already gone says so.
                let fd = match self.procs.open(p) {
                    Ok(fd) => fd,
                    Err(f) => return Self::fail(r, f),
                };
                if r.dry_run {
                    r.ok = true;
                    return r;
                }
                if let Err(f) = actions::signal(&fd, rustix::process::Signal::STOP) {
                    return Self::fail(r, f);
                }
                held::How::Stopped(fd)
            }
        };
        self.held.add(key, HeldKind::Freeze, r.target.clone(), how);
        r.ok = true;
        r
    }

    fn do_isolate(
        &mut self,
        mut r: Response,
        p: Proc,
        exe: Option<&Path>,
        c: Option<Ctr>,
    ) -> Response {
        let key = match self.hold_key(p, exe, c) {
            Ok(k) => k,
            Err(why) => return r.refused(why),
        };
        if self.held.get(&key, HeldKind::Isolate).is_some() {
            return r.refused("already isolated");
        }
        // A container's namespace is found through any process left in its cgroup.
        let pid = match c {
            Some(c) => match actions::cgroup_by_id(c.cgroup_id)
                .and_then(|d| actions::member_of(&d).ok_or_else(actions::Failure::gone))
            {
                Ok(pid) => pid,
                Err(f) => return Self::fail(r, f),
            },
            None => match self.procs.open(p) {
                Ok(_) => p.pid,
                Err(f) => return Self::fail(r, f),
            },
        };
        let link = match isolate::host_side(&self.procs, pid) {
            Ok(l) => l,
            Err(isolate::Refusal::Refused(why)) => return r.refused(why),
            Err(isolate::Refusal::Failed(f)) => return Self::fail(r, f),
        };
        r.target.iface = Some(link.name.clone());
        if r.dry_run {
            r.ok = true;
            return r;
        }
        let Some(iso) = &mut self.isolator else {
            return r.refused("the isolate programs are not loaded");
        };
        match iso.isolate(&link) {
            Ok(()) => {
                self.held.add(
                    key,
                    HeldKind::Isolate,
                    r.target.clone(),
                    held::How::Iface(link),
                );
                r.ok = true;
                r
            }
            Err(f) => Self::fail(r, f),
        }
    }
}
