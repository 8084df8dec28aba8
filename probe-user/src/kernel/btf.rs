//! Just enough of a BTF reader to find struct member offsets in `/sys/kernel/btf/vmlinux`.
//!
//! aya keeps its BTF accessors private and the one BTF crate on crates.io is LGPL, so the
//! ~150 lines needed to walk types and members live here. Offsets found this way make the
//! probe portable across kernels without CO-RE support in the Rust eBPF toolchain.
use std::{collections::HashMap, path::Path};

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a BTF blob: {0}")]
    Format(&'static str),
    #[error("struct {0} not found in kernel BTF")]
    NoStruct(String),
    #[error("member {member} not found in struct {strukt}")]
    NoMember { strukt: String, member: String },
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name_off: u32,
    kind: u32,
    /// Size for structs, referenced type for modifiers.
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed kernel BTF: types and string table.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Format("truncated"))
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != 0xeb9f {
            return Err(BtfError::Format(
                "bad magic (only little-endian BTF is supported)",
            ));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let tstart = hdr_len + type_off;
        let tsec = data
            .get(tstart..tstart + type_len)
            .ok_or(BtfError::Format("type section out of range"))?;
        let sstart = hdr_len + str_off;
        let strings = data
            .get(sstart..sstart + str_len)
            .ok_or(BtfError::Format("string section out of range"))?
            .to_vec();

        // Type id 0 is void.
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            size_or_type: 0,
            members: Vec::new(),
        }];
        let mut p = 0usize;
        while p < tsec.len() {
            let name_off = u32_at(tsec, p)?;
            let info = u32_at(tsec, p + 4)?;
            let size_or_type = u32_at(tsec, p + 8)?;
            p += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kflag = info >> 31 == 1;
            let mut members = Vec::new();
            p += match kind {
                1 | 14 | 17 => 4,     // INT, VAR, DECL_TAG
                3 => 12,              // ARRAY
                6 | 13 => 8 * vlen,   // ENUM, FUNC_PROTO
                15 | 19 => 12 * vlen, // DATASEC, ENUM64
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = p + 12 * i;
                        let off = u32_at(tsec, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(tsec, m)?,
                            type_id: u32_at(tsec, m + 4)?,
                            bit_offset: if kflag { off & 0xff_ffff } else { off },
                        });
                    }
                    12 * vlen
                }
                2 | 7 | 8..=12 | 16 | 18 => 0,
                _ => return Err(BtfError::Format("unknown type kind")),
            };
            types.push(Type {
                name_off,
                kind,
                size_or_type,
                members,
            });
        }
        let mut btf = Btf {
            types,
            strings,
            structs_by_name: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && t.name_off != 0 {
                let name = btf.name(t.name_off).to_owned();
                btf.structs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    /// Follows typedef/const/volatile chains to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// Bit offset of `member` within type `id`, searching anonymous struct/union members too.
    fn find_member(&self, id: u32, member: &str) -> Option<u32> {
        let t = self.types.get(id as usize)?;
        for m in &t.members {
            if m.name_off != 0 && self.name(m.name_off) == member {
                return Some(m.bit_offset);
            }
        }
        for m in t.members.iter().filter(|m| m.name_off == 0) {
            let inner = self.resolve(m.type_id);
            let k = self.types.get(inner as usize).map(|t| t.kind);
            if matches!(k, Some(KIND_STRUCT | KIND_UNION)) {
                if let Some(off) = self.find_member(inner, member) {
                    return Some(m.bit_offset + off);
                }
            }
        }
        None
    }

    /// Byte size of `struct strukt`.
    pub fn struct_size(&self, strukt: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        Ok(self.types[id as usize].size_or_type)
    }

    /// Byte offset of `strukt.member`.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        self.find_member(id, member)
            .map(|bits| bits / 8)
            .ok_or_else(|| BtfError::NoMember {
                strukt: strukt.to_owned(),
                member: member.to_owned(),
            })
    }
}

impl Btf {
    /// Bit offset of `strukt.member` (for bitfields such as `task_struct.in_execve`).
    pub fn member_bit_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        self.find_member(id, member)
            .ok_or_else(|| BtfError::NoMember {
                strukt: strukt.to_owned(),
                member: member.to_owned(),
            })
    }
}

/// Reads the offsets the programs need from the running kernel's BTF.
pub fn kernel_offsets(btf: &Btf) -> Result<probe_common::KernelOffsets, BtfError> {
    let t = |m| btf.member_offset("task_struct", m);
    // `struct sock` starts with `struct sock_common __sk_common`.
    let skc_base = btf.member_offset("sock", "__sk_common")?;
    let skc = |m| btf.member_offset("sock_common", m).map(|o| skc_base + o);
    Ok(probe_common::KernelOffsets {
        task_pid: t("pid")?,
        task_tgid: t("tgid")?,
        task_real_parent: t("real_parent")?,
        task_group_leader: t("group_leader")?,
        task_start_boottime: t("start_boottime")?,
        task_exit_code: t("exit_code")?,
        task_signal: t("signal")?,
        task_mm: t("mm")?,
        signal_live: btf.member_offset("signal_struct", "live")?,
        mm_arg_start: btf.member_offset("mm_struct", "arg_start")?,
        mm_arg_end: btf.member_offset("mm_struct", "arg_end")?,
        bprm_filename: btf.member_offset("linux_binprm", "filename")?,
        bprm_interp: btf.member_offset("linux_binprm", "interp")?,
        task_files: t("files")?,
        files_fdt: btf.member_offset("files_struct", "fdt")?,
        fdt_max_fds: btf.member_offset("fdtable", "max_fds")?,
        fdt_fd: btf.member_offset("fdtable", "fd")?,
        file_f_inode: btf.member_offset("file", "f_inode")?,
        file_private_data: btf.member_offset("file", "private_data")?,
        inode_i_mode: btf.member_offset("inode", "i_mode")?,
        socket_type: btf.member_offset("socket", "type")?,
        socket_sk: btf.member_offset("socket", "sk")?,
        sk_family: skc("skc_family")?,
        // A plain u16 since Linux 5.6 (a bitfield before).
        sk_protocol: btf.member_offset("sock", "sk_protocol")?,
        sk_num: skc("skc_num")?,
        sk_dport: skc("skc_dport")?,
        sk_rcv_saddr: skc("skc_rcv_saddr")?,
        sk_daddr: skc("skc_daddr")?,
        sk_v6_rcv_saddr: skc("skc_v6_rcv_saddr")?,
        sk_v6_daddr: skc("skc_v6_daddr")?,
        unix_addr: btf.member_offset("unix_sock", "addr")?,
        unix_address_len: btf.member_offset("unix_address", "len")?,
        unix_address_name: btf.member_offset("unix_address", "name")?,
        inet_sport: btf.member_offset("inet_sock", "inet_sport")?,
        _pad0: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made BTF blob: struct outer { int a; union { int b; long c; }; }.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0c\0long\0".to_vec();
        // offsets: int=1 outer=5 a=11 b=13 c=15 long=17
        let mut types = Vec::new();
        let mut push = |v: &[u32]| {
            v.iter()
                .for_each(|x| types.extend_from_slice(&x.to_le_bytes()))
        };
        push(&[1, 1 << 24, 4, 32]); // 1: int
        push(&[17, 1 << 24, 8, 64]); // 2: long
        push(&[0, (KIND_UNION << 24) | 2, 8, 13, 1, 0, 15, 2, 0]); // 3: anon union
        push(&[5, (KIND_STRUCT << 24) | 2, 16, 11, 1, 0, 0, 3, 64]); // 4: outer
        let mut b = Vec::new();
        for v in [0xeb9f_u16.to_le_bytes().to_vec(), vec![1, 0]] {
            b.extend(v);
        }
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend(v.to_le_bytes());
        }
        b.extend(types);
        b.extend(strings);
        b
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "c").unwrap(), 8);
        assert!(matches!(
            btf.member_offset("outer", "zz"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("nope", "a"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, not at all").is_err());
        let mut b = blob();
        b.truncate(40);
        assert!(Btf::parse(&b).is_err());
    }

    #[test]
    fn running_kernel_has_every_offset() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("skipped: no kernel BTF on this machine");
            return;
        }
        let off = kernel_offsets(&Btf::from_file(path).unwrap()).unwrap();
        assert!(off.task_tgid > off.task_pid || off.task_pid > 0);
        assert!(off.mm_arg_end > off.mm_arg_start);
        assert!(off.sk_dport != off.sk_num && off.sk_v6_daddr > off.sk_daddr);
    }
}
