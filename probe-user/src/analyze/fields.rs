//! Sigma's logsource categories and field names, mapped onto tprobe's events. This table is
//! the contract documented in docs/detection.md: keep the two in step.
use probe_common::EventKind;

use crate::event::{file::FileRecord, Body, Event};

/// A Sigma category and the kinds that feed it.
pub struct Category {
    pub name: &'static str,
    pub kinds: &'static [EventKind],
    /// Sigma field names a rule of this category may use (besides the process fields and
    /// tprobe's own dotted names).
    pub fields: &'static [&'static str],
}

/// Fields of the acting process, valid in every category.
pub const PROCESS_FIELDS: &[&str] = &[
    "Image",
    "CommandLine",
    "CurrentDirectory",
    "User",
    "LogonId",
    "ProcessId",
    "ParentImage",
    "ParentCommandLine",
    "ParentProcessId",
    "Hashes",
    "sha256",
];

pub const FILE_FIELDS: &[&str] = &["TargetFilename"];
pub const NET_FIELDS: &[&str] = &[
    "DestinationIp",
    "DestinationPort",
    "DestinationHostname",
    "SourceIp",
    "SourcePort",
    "Initiated",
    "Protocol",
];
pub const DNS_FIELDS: &[&str] = &["QueryName", "QueryType", "QueryResults"];
/// process_access (ptrace, process_vm_writev): the acting process is the source.
pub const ACCESS_FIELDS: &[&str] = &[
    "SourceImage",
    "SourceProcessId",
    "TargetImage",
    "TargetProcessId",
];
/// driver_load: the module's file (finit_module) or name.
pub const MODULE_FIELDS: &[&str] = &["ImageLoaded"];

/// Sigma categories with a source here (product `linux`, or none).
pub const CATEGORIES: &[Category] = &[
    Category {
        name: "process_creation",
        kinds: &[EventKind::ProcessExec],
        fields: &[],
    },
    Category {
        name: "file_event",
        kinds: &[
            EventKind::FileCreate,
            EventKind::FileRename,
            EventKind::FileLink,
            EventKind::FileSymlink,
        ],
        fields: FILE_FIELDS,
    },
    Category {
        name: "file_delete",
        kinds: &[EventKind::FileUnlink, EventKind::FileRmdir],
        fields: FILE_FIELDS,
    },
    Category {
        name: "file_rename",
        kinds: &[EventKind::FileRename],
        fields: FILE_FIELDS,
    },
    // An open with O_CREAT is `file.create` whether or not the file existed (the kernel's
    // flags cannot tell), so it counts as a change too.
    Category {
        name: "file_change",
        kinds: &[
            EventKind::FileOpen,
            EventKind::FileCreate,
            EventKind::FileChmod,
            EventKind::FileChown,
            EventKind::FileTruncate,
            EventKind::FileUtime,
        ],
        fields: FILE_FIELDS,
    },
    Category {
        name: "network_connection",
        kinds: &[EventKind::NetConnect, EventKind::NetAccept],
        fields: NET_FIELDS,
    },
    Category {
        name: "dns_query",
        kinds: &[EventKind::NetDns],
        fields: DNS_FIELDS,
    },
    // Sigma's names for these from other products: another process's memory, a kernel driver.
    Category {
        name: "process_access",
        kinds: &[EventKind::ProcessPtrace, EventKind::ProcessVmWrite],
        fields: ACCESS_FIELDS,
    },
    Category {
        name: "driver_load",
        kinds: &[EventKind::KernelModuleLoad],
        fields: MODULE_FIELDS,
    },
];

/// The product of rules written against tprobe's own kinds: `logsource: {product: tprobe,
/// category: process.exec}` matches that kind, with tprobe's dotted field names.
pub const OWN_PRODUCT: &str = "tprobe";

pub fn category(name: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.name == name)
}

/// The Sigma categories an event of `kind` may feed (a rename is both a rename and a new file
/// at its target); [`belongs`] says whether one event does.
pub fn categories_of(kind: EventKind) -> impl Iterator<Item = &'static str> {
    CATEGORIES
        .iter()
        .filter(move |c| c.kinds.contains(&kind))
        .map(|c| c.name)
}

/// Whether `ev` of a kind `category` takes belongs to it: an open is a `file_change` only
/// with write access.
pub fn belongs(ev: &Event, category: &str) -> bool {
    match (&ev.body, category) {
        (Body::File(f), "file_change") if f.is_open() => opens_to_write(f),
        _ => true,
    }
}

/// Write access (or truncation) asked for by an open.
pub fn opens_to_write(f: &FileRecord) -> bool {
    let acc = f.flags & libc::O_ACCMODE as u32;
    acc == libc::O_WRONLY as u32
        || acc == libc::O_RDWR as u32
        || f.flags & libc::O_TRUNC as u32 != 0
}

/// Whether a Sigma field name may be used in a rule of `category`.
pub fn sigma_field_ok(category: &Category, field: &str) -> bool {
    PROCESS_FIELDS.contains(&field) || category.fields.contains(&field)
}
