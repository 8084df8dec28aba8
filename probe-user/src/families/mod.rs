//! The event families, one folder each, and their registry. The loader and the decoder walk
//! these tables and never name a family; adding one is a folder plus a line in each table.
pub mod file;
pub mod flow;
pub mod net;
pub mod process;
pub mod security;
pub mod wire;

use aya::{Ebpf, EbpfLoader};
use probe_common::{EventHeader, EventKind, FileOffsets, SecOffsets, TaskOffsets};

use crate::{
    event::Body,
    kernel::{
        btf::Btf,
        hook::{Hook, MapWriteError},
    },
};
use wire::DecodeError;

/// The tracepoint hooks of every family, in the order `probe.start` reports them.
const HOOKS: &[&[Hook]] = &[process::HOOKS, net::HOOKS, file::HOOKS, security::HOOKS];

pub fn hooks() -> impl Iterator<Item = &'static Hook> {
    HOOKS.iter().flat_map(|h| h.iter())
}

/// The options of the families that keep kernel maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyOptions {
    pub file: file::FileOptions,
    pub security: security::SecurityOptions,
}

/// Writes every family's maps into the loaded object (before any hook attaches).
pub fn write_maps(ebpf: &mut Ebpf, opts: &FamilyOptions) -> Result<(), MapWriteError> {
    file::write_maps(ebpf, &opts.file)?;
    security::write_maps(ebpf, &opts.security)
}

/// Read-only data the families' programs need from the running kernel's BTF.
pub struct Globals {
    file: FileOffsets,
    task: TaskOffsets,
    security: SecOffsets,
}

impl Globals {
    pub fn from_btf(btf: &Btf) -> Self {
        let mut missing = Vec::new();
        let task = process::task_offsets(btf, &mut missing);
        for m in missing {
            log::warn!("process context: {m}; that field reads as 0");
        }
        Globals {
            file: file::offsets(btf),
            task,
            security: security::offsets(btf),
        }
    }

    /// Patches the values into the object before it loads.
    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader.override_global("FILE_OFFSETS", &self.file, true);
        loader.override_global("TASK_OFFSETS", &self.task, true);
        loader.override_global("SEC_OFFSETS", &self.security, true);
    }
}

/// Why a tracepoint a family hooks can be missing on this kernel, if a family knows.
pub fn missing_hint(tracepoint: &str) -> Option<&'static str> {
    security::missing_hint(tracepoint)
}

/// The family whose decoder reads records of a kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decoder {
    Process,
    File,
    Net,
    Flow,
    Security,
}

fn decoder_of(kind: EventKind) -> Decoder {
    use EventKind as K;
    match kind {
        K::ProcessExec | K::ProcessFork | K::ProcessExit | K::ProcessExecFailed => Decoder::Process,
        K::FileOpen
        | K::FileCreate
        | K::FileUnlink
        | K::FileRename
        | K::FileMkdir
        | K::FileRmdir
        | K::FileChmod
        | K::FileChown
        | K::FileLink
        | K::FileSymlink
        | K::FileTruncate
        | K::FileUtime => Decoder::File,
        K::NetConnect
        | K::NetAccept
        | K::NetBind
        | K::NetListen
        | K::NetClose
        | K::NetDns
        | K::NetState
        | K::NetSend => Decoder::Net,
        K::FlowUpdate | K::FlowEnd | K::FlowNew => Decoder::Flow,
        K::ProcessSetuid
        | K::ProcessSetgid
        | K::ProcessCapset
        | K::ProcessPtrace
        | K::ProcessVmWrite
        | K::ProcessSignal
        | K::ProcessRename
        | K::ProcessMemfd
        | K::ProcessUnshare
        | K::ProcessSetns
        | K::ProcessDup
        | K::FileMount
        | K::FileUmount
        | K::NetSocket
        | K::KernelModuleLoad
        | K::KernelModuleUnload
        | K::BpfLoad => Decoder::Security,
    }
}

/// The [`body_class`](crate::event::objects::body_class) of the records [`decode`] makes of
/// `kind`: what the analyze stage checks a rule's dotted fields against.
pub fn body_class_of(kind: EventKind) -> usize {
    match (decoder_of(kind), kind) {
        (Decoder::Process, EventKind::ProcessExec) => 0,
        (Decoder::Process, EventKind::ProcessExecFailed) => 1,
        (Decoder::Process, EventKind::ProcessFork) => 2,
        (Decoder::Process, _) => 3,
        (Decoder::File, _) => 4,
        (Decoder::Net, _) => 5,
        (Decoder::Flow, _) => 6,
        (Decoder::Security, _) => 9,
    }
}

/// Decodes the payload of a record of `kind` whose header is `h`.
pub fn decode(kind: EventKind, h: &EventHeader, bytes: &[u8]) -> Result<Body, DecodeError> {
    match decoder_of(kind) {
        Decoder::Process => process::decode::decode(kind, h, bytes),
        Decoder::File => file::decode::decode_body(kind, bytes),
        Decoder::Net => Ok(Body::Net(Box::new(net::decode::decode(kind, bytes)?))),
        Decoder::Flow => flow::decode(kind, bytes),
        Decoder::Security => security::decode::decode(kind, bytes),
    }
}
