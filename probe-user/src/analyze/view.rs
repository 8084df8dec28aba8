//! One event as the Sigma engine sees it: Sigma's field names and tprobe's dotted ones, read
//! straight from the [`Event`] for the fields rules use most, and from the event's native JSON
//! (rendered once, only when a rule asks for something else) for the rest.
use std::{borrow::Cow, cell::OnceCell};

use rsigma_eval::event::{Event as SigmaEvent, EventValue, JsonEvent};
use serde_json::Value;

use crate::event::{file::FileRecord, net::Direction, process::HashOutcome, Body, Event};

/// Renders an event as native JSON for the fields read through it.
pub trait Render {
    fn render(&self, ev: &Event) -> Value;
}

pub struct View<'a> {
    pub ev: &'a Event,
    /// The logsource the event is evaluated as (`linux` + a Sigma category, or `tprobe` + kind).
    pub product: &'static str,
    pub category: &'static str,
    /// The seq the event will be written with; `None` when it is analysed but not emitted.
    pub seq: Option<u64>,
    pub render: &'a dyn Render,
    made: &'a Made,
    /// The top-level names to offer the engine's index, from [`probe_keys`].
    keys: &'a ProbeKeys,
}

/// What a view tells the engine's index to probe for one body class.
#[derive(Debug, Default)]
pub struct ProbeKeys {
    /// The top-level names an event of the class can answer that some rule reads.
    pub names: Vec<&'static str>,
    /// The class answers every name the rules read: the index then walks its own fields,
    /// the same set, with no hash lookup per name (its maps hash with SipHash).
    pub whole: bool,
}

/// For a class no engine has a table entry for: nothing to offer.
pub static NO_KEYS: ProbeKeys = ProbeKeys {
    names: Vec::new(),
    whole: false,
};

/// The top-level names an event of body class `class` (`event::objects::body_class`) can
/// answer, kept to those in `used` (the top-level names the loaded rules read). A superset is
/// safe; a name left out is a rule that never matches.
pub fn probe_keys(class: usize, used: &std::collections::BTreeSet<String>) -> ProbeKeys {
    use super::fields::{
        ACCESS_FIELDS, DNS_FIELDS, FILE_FIELDS, MODULE_FIELDS, NET_FIELDS, PROCESS_FIELDS,
    };
    use crate::event::objects::{class_objects, COMMON_OBJECTS};
    let flat: &[&[&'static str]] = match (class, class_objects(class)) {
        (_, None) => &[
            PROCESS_FIELDS,
            FILE_FIELDS,
            NET_FIELDS,
            DNS_FIELDS,
            ACCESS_FIELDS,
            MODULE_FIELDS,
        ],
        (_, Some(o)) if o.contains(&"file") => &[PROCESS_FIELDS, FILE_FIELDS],
        (_, Some(o)) if o.contains(&"net") => &[PROCESS_FIELDS, NET_FIELDS, DNS_FIELDS],
        _ => &[PROCESS_FIELDS],
    };
    let objects: Vec<&'static str> = match class_objects(class) {
        Some(o) => o.to_vec(),
        None => crate::schema::top_level_objects()
            .iter()
            .map(String::as_str)
            .collect(),
    };
    let names: Vec<&'static str> = flat
        .iter()
        .copied()
        .flatten()
        .copied()
        .chain(["product", "category", "kind"])
        .chain(COMMON_OBJECTS.iter().copied())
        .chain(objects)
        .filter(|k| used.contains(*k))
        .collect();
    let whole = used.iter().all(|u| names.contains(&u.as_str()));
    ProbeKeys { names, whole }
}

/// What the views of one event make on first use and share: the event is evaluated once per
/// logsource it belongs to, and most of them read the same few fields.
#[derive(Default)]
pub struct Made {
    /// The native record (rendered only for a field the fast path leaves out).
    json: OnceCell<Value>,
    /// argv joined: many rules read `CommandLine`.
    command_line: OnceCell<String>,
    parent_command_line: OnceCell<String>,
}

impl<'a> View<'a> {
    pub fn new(
        ev: &'a Event,
        product: &'static str,
        category: &'static str,
        seq: Option<u64>,
        render: &'a dyn Render,
        made: &'a Made,
        keys: &'a ProbeKeys,
    ) -> Self {
        View {
            ev,
            product,
            category,
            seq,
            render,
            made,
            keys,
        }
    }

    fn json(&self) -> &Value {
        self.made.json.get_or_init(|| {
            let mut v = self.render.render(self.ev);
            // Correlations remember their events by `event_id`: the seq they are written with.
            if let (Some(o), Some(seq)) = (v.as_object_mut(), self.seq) {
                o.insert("seq".into(), seq.into());
                o.insert("event_id".into(), seq.into());
            }
            // The list the fast path trusts must cover what the encoder writes.
            debug_assert!(
                v.as_object().is_none_or(|o| o
                    .keys()
                    .all(|k| crate::event::objects::may_have(&self.ev.body, k))),
                "native record of {} has objects outside body_objects: {:?}",
                self.ev.kind_name(),
                v.as_object().map(|o| o.keys().collect::<Vec<_>>())
            );
            v
        })
    }

    fn json_field(&self, path: &str) -> Option<EventValue<'_>> {
        let j = JsonEvent::borrow(self.json());
        let v = j.get_field(path)?;
        Some(own(v))
    }
}

/// Detaches a value from the temporary [`JsonEvent`] it was read through.
fn own(v: EventValue<'_>) -> EventValue<'static> {
    match v {
        EventValue::Str(s) => EventValue::Str(Cow::Owned(s.into_owned())),
        EventValue::Int(i) => EventValue::Int(i),
        EventValue::Float(f) => EventValue::Float(f),
        EventValue::Bool(b) => EventValue::Bool(b),
        EventValue::Null => EventValue::Null,
        EventValue::Array(a) => EventValue::Array(a.into_iter().map(own).collect()),
        EventValue::Map(m) => EventValue::Map(
            m.into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), own(v)))
                .collect(),
        ),
    }
}

fn text(b: &[u8]) -> EventValue<'_> {
    EventValue::Str(String::from_utf8_lossy(b))
}

/// argv joined by spaces, as Sigma's `CommandLine` expects.
fn command_line(args: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&String::from_utf8_lossy(a));
    }
    s
}

/// `TargetFilename`: the file a call made or changed; the new name of a rename or link.
fn target_filename(f: &FileRecord) -> &[u8] {
    match (f.target_is_place(), &f.target) {
        (true, Some(t)) => t,
        _ => &f.path,
    }
}

/// Appends a scalar's text to `out`, as rsigma's string matchers see it (correlation keys,
/// anchor lookups); `false` (and nothing appended) for anything else.
pub fn push_text(out: &mut String, v: &EventValue) -> bool {
    use std::fmt::Write;
    match v {
        EventValue::Str(s) => out.push_str(s),
        // The hot case (a port, a pid): no formatting machinery.
        EventValue::Int(n) => out.push_str(itoa::Buffer::new().format(*n)),
        EventValue::Float(f) => {
            let _ = write!(out, "{f}");
        }
        EventValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        _ => return false,
    }
    true
}

/// A field the view reads straight from the event, resolved from its name once (when a rule
/// is loaded) rather than at every read; `Other` goes through the native record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Product,
    Category,
    EventId,
    Kind,
    Image,
    CommandLine,
    Cwd,
    ProcessId,
    TargetImage,
    TargetProcessId,
    ImageLoaded,
    User,
    Uid,
    Comm,
    EntityId,
    NetFamily,
    ParentImage,
    ParentCommandLine,
    ParentProcessId,
    TargetFilename,
    FilePath,
    FileMode,
    DstIp,
    DstPort,
    SrcIp,
    SrcPort,
    Initiated,
    Protocol,
    QueryName,
    QueryType,
    ExecFileless,
    ContainerId,
    LogonId,
    Sha256,
    Hashes,
    DstDomain,
    QueryResults,
    Other,
}

impl Field {
    pub fn of(path: &str) -> Field {
        use Field::*;
        match path {
            "product" => Product,
            "category" => Category,
            "event_id" => EventId,
            "kind" => Kind,
            "Image" | "SourceImage" | "process.exe" => Image,
            "CommandLine" | "process.command_line" => CommandLine,
            "CurrentDirectory" | "process.cwd" => Cwd,
            "ProcessId" | "SourceProcessId" | "process.pid" => ProcessId,
            "TargetImage" => TargetImage,
            "TargetProcessId" => TargetProcessId,
            "ImageLoaded" => ImageLoaded,
            "User" | "process.user" => User,
            "process.uid" => Uid,
            "process.comm" => Comm,
            "process.entity_id" => EntityId,
            "net.family" => NetFamily,
            "ParentImage" | "parent.exe" => ParentImage,
            "ParentCommandLine" | "parent.command_line" => ParentCommandLine,
            "ParentProcessId" | "parent.pid" | "process.ppid" => ParentProcessId,
            "TargetFilename" => TargetFilename,
            "file.path" => FilePath,
            "file.mode" => FileMode,
            "DestinationIp" | "net.dst.ip" => DstIp,
            "DestinationPort" | "net.dst.port" => DstPort,
            "SourceIp" | "net.src.ip" => SrcIp,
            "SourcePort" | "net.src.port" => SrcPort,
            "Initiated" => Initiated,
            "Protocol" | "net.transport" => Protocol,
            "QueryName" | "dns.query" => QueryName,
            "QueryType" | "dns.qtype" => QueryType,
            "exec.fileless" => ExecFileless,
            "container.id" => ContainerId,
            "LogonId" | "process.auid" => LogonId,
            "sha256" | "process.hash.sha256" => Sha256,
            "Hashes" => Hashes,
            "DestinationHostname" | "net.dst.domain" => DstDomain,
            "QueryResults" => QueryResults,
            _ => Other,
        }
    }
}

/// A field name with its [`Field`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRef {
    pub path: String,
    pub id: Field,
}

impl FieldRef {
    pub fn new(path: &str) -> FieldRef {
        FieldRef {
            path: path.to_owned(),
            id: Field::of(path),
        }
    }
}

/// Reads a field by its resolved [`FieldRef`]: the view skips matching the name; any other
/// event reads it by name.
pub trait Fields: SigmaEvent {
    fn field(&self, f: &FieldRef) -> Option<EventValue<'_>> {
        self.get_field(&f.path)
    }
}

impl Fields for JsonEvent<'_> {}

impl Fields for View<'_> {
    fn field(&self, f: &FieldRef) -> Option<EventValue<'_>> {
        self.get_at(f.id, &f.path)
    }
}

impl View<'_> {
    fn get_at(&self, field: Field, path: &str) -> Option<EventValue<'_>> {
        use Field as F;
        let ev = self.ev;
        let p = ev.process.as_deref();
        let parent = ev.parent.as_deref();
        let task = ev.task.as_ref();
        let net = match &ev.body {
            Body::Net(n) => Some(&**n),
            _ => None,
        };
        let file = match &ev.body {
            Body::File(f) => Some(&**f),
            _ => None,
        };
        let ip = |a: Option<std::net::SocketAddr>| {
            a.map(|a| EventValue::Str(Cow::Owned(a.ip().to_string())))
        };
        let port = |a: Option<std::net::SocketAddr>| a.map(|a| EventValue::Int(a.port().into()));
        // Only the address fields read them.
        let src = || net.and_then(|n| n.src_dst().0);
        let dst = || net.and_then(|n| n.src_dst().1);
        Some(match field {
            F::Product => EventValue::Str(Cow::Borrowed(self.product)),
            F::Category => EventValue::Str(Cow::Borrowed(self.category)),
            // Lets correlation alerts name the events that made them.
            F::EventId => EventValue::Int(self.seq? as i64),
            F::Kind => EventValue::Str(Cow::Borrowed(ev.kind_name())),
            F::Image => text(p?.exe.as_deref()?),
            F::CommandLine => {
                let args = &p?.args;
                EventValue::Str(Cow::Borrowed(
                    self.made.command_line.get_or_init(|| command_line(args)),
                ))
            }
            F::Cwd => text(p?.cwd.as_deref()?),
            F::ProcessId => EventValue::Int(task?.pid.into()),
            // ptrace names its target inside `ptrace`, process_vm_writev at the top.
            F::TargetImage => {
                return self
                    .json_field("target.exe")
                    .or_else(|| self.json_field("ptrace.target.exe"))
            }
            F::TargetProcessId => {
                return self
                    .json_field("target.pid")
                    .or_else(|| self.json_field("ptrace.target.pid"))
            }
            F::ImageLoaded => {
                return self
                    .json_field("module.path")
                    .or_else(|| self.json_field("module.name"))
            }
            F::User => match &ev.user {
                Some(u) => EventValue::Str(Cow::Borrowed(u)),
                None => EventValue::Str(Cow::Owned(task?.uid.to_string())),
            },
            F::Uid => EventValue::Int(task?.uid.into()),
            F::Comm => text(&task?.comm),
            // The pack's port scan groups by it, and the engine's index probes what any rule
            // reads: without these two every connect rendered its whole native record.
            F::EntityId => EventValue::Str(Cow::Borrowed(&p?.entity_id)),
            // A net.socket record (a security body) names its family in its own way.
            F::NetFamily if net.is_some() => EventValue::Str(Cow::Borrowed(net?.family_name())),
            F::ParentImage => text(parent?.exe.as_deref()?),
            F::ParentCommandLine => {
                let args = &parent?.args;
                EventValue::Str(Cow::Borrowed(
                    self.made
                        .parent_command_line
                        .get_or_init(|| command_line(args)),
                ))
            }
            F::ParentProcessId => EventValue::Int(task?.ppid.into()),
            F::TargetFilename => text(target_filename(file?)),
            F::FilePath => text(&file?.path),
            // As the native record writes them (the pack's setuid and timestomp rules read
            // them, so the engine's index probes them on every file event).
            F::FileMode => EventValue::Str(Cow::Owned(file?.mode_text()?)),
            F::DstIp => ip(dst())?,
            F::DstPort => port(dst())?,
            F::SrcIp => ip(src())?,
            F::SrcPort => port(src())?,
            F::Initiated => EventValue::Str(Cow::Borrowed(match net?.direction? {
                Direction::Outbound => "true",
                Direction::Inbound => "false",
            })),
            F::Protocol => EventValue::Str(Cow::Borrowed(net?.transport())),
            F::QueryName => EventValue::Str(Cow::Borrowed(&net?.dns.as_ref()?.query)),
            F::QueryType => EventValue::Str(Cow::Borrowed(&net?.dns.as_ref()?.qtype)),
            // Written only when true, as in the native record.
            F::ExecFileless => match (&ev.body, p?.fileless) {
                (Body::Exec(_), true) => EventValue::Bool(true),
                _ => return None,
            },
            F::ContainerId => EventValue::Str(Cow::Borrowed(&ev.container.as_deref()?.id)),
            F::LogonId => EventValue::Int(task?.id.auid?.into()),
            F::Sha256 => match p?.hash.as_deref()?.get()? {
                HashOutcome::Sha256(h) => EventValue::Str(Cow::Borrowed(h)),
                _ => return None,
            },
            // Sigma writes hashes as `SHA256=<hex>` (several joined by commas).
            F::Hashes => match p?.hash.as_deref()?.get()? {
                HashOutcome::Sha256(h) => {
                    EventValue::Str(Cow::Owned(format!("SHA256={}", h.to_uppercase())))
                }
                _ => return None,
            },
            F::DstDomain => EventValue::Str(Cow::Borrowed(net?.remote_domain.as_deref()?)),
            F::QueryResults => EventValue::Array(
                net?.dns
                    .as_ref()?
                    .response
                    .as_ref()?
                    .answers
                    .iter()
                    .map(|a| EventValue::Str(Cow::Borrowed(a.data.as_str())))
                    .collect(),
            ),
            _ if path.starts_with("times.") && file.is_some_and(|f| f.times.is_none()) => {
                return None
            }
            // The native record is rendered only for a schema field the fast path leaves out
            // (rules are checked against the schema at load) that this kind's record can hold:
            // the engine probes every field its index knows (`bpf.command` on an exec) and names
            // of its own, such as timestamp and id fields, which are not ours and cost nothing.
            F::NetFamily | F::Other
                if path.contains('.')
                    && crate::event::objects::may_have(&ev.body, path)
                    && crate::schema::has_field(path) =>
            {
                return self.json_field(path)
            }
            F::NetFamily | F::Other => return None,
        })
    }
}

impl SigmaEvent for View<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.get_at(Field::of(path), path)
    }

    /// The names this event can answer that some rule reads (see [`probe_keys`]): the engine's
    /// index then probes only those, not every field it knows (`bpf.command` of an exec).
    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        if self.keys.whole {
            return false;
        }
        for k in &self.keys.names {
            visit(k);
        }
        true
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let j = JsonEvent::borrow(self.json());
        j.any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let j = JsonEvent::borrow(self.json());
        j.all_string_values()
            .into_iter()
            .map(|c| Cow::Owned(c.into_owned()))
            .collect()
    }

    /// The engine asks for it to remember a correlation's contributing events by their
    /// `event_id` (refs mode), at every event a correlation counts; nothing of ours reads a
    /// match's copy of the event. Rendering the whole record there cost a connect ~10 µs.
    fn to_json(&self) -> Value {
        match self.seq {
            Some(s) => serde_json::json!({ "event_id": s }),
            None => serde_json::json!({}),
        }
    }
}
