//! The kernel's share of the path prefix filters: an LPM trie lookup for clean absolute paths.
use aya_ebpf::{
    macros::map,
    maps::{
        lpm_trie::{Key, LpmTrie},
        PerCpuArray,
    },
};
use probe_common::{
    FileConfig, FILE_CFG_INCLUDE, FILE_CFG_PREFIXES, PREFIX_EXCLUDE, PREFIX_INCLUDE, PREFIX_KEY_LEN,
};

use crate::common::bound;

/// Include/exclude path prefixes (stored with a trailing `/`); the longest match wins.
#[map]
static FILE_PREFIXES: LpmTrie<[u8; PREFIX_KEY_LEN], u8> = LpmTrie::with_max_entries(256, 0);

/// Scratch for the trie lookup key.
#[map]
static FILE_KEY: PerCpuArray<Key<[u8; PREFIX_KEY_LEN]>> = PerCpuArray::with_max_entries(1, 0);

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// 0x80 in each byte of `w` equal to `c`, 0 elsewhere (exact, no carries between bytes).
#[inline(always)]
fn bytes_equal(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * c as u64);
    let t = ((x & !HIGHS) + !HIGHS) | x;
    !t & HIGHS
}

/// Whether the prefix trie may judge `len` bytes at `p` (8-byte aligned, readable for 256
/// bytes): absolute, short enough to sit whole in a trie key (longer ones are judged in
/// userspace), and no `//` or `/.` anywhere, so its lexical prefix is its place
/// (`/dev/pts/../../etc/passwd` must not match `/dev/pts`). Eight bytes a step, no helper.
#[inline(always)]
fn is_clean_absolute(p: *const u8, len: u32) -> bool {
    if len == 0 || len as usize >= PREFIX_KEY_LEN || unsafe { *p } != b'/' {
        return false;
    }
    let words = p as *const u64;
    let mut carry = 0u64; // the previous word ended in '/'
    for k in 0..PREFIX_KEY_LEN / 8 {
        let start = (k * 8) as u32;
        if start >= len {
            break;
        }
        // SAFETY: k < 32 words of the 256 readable, aligned bytes.
        let w = unsafe { words.add(k).read() };
        let left = len - start;
        let valid = if left >= 8 {
            HIGHS
        } else {
            HIGHS & ((1u64 << (left * 8)) - 1)
        };
        let slash = bytes_equal(w, b'/') & valid;
        let next = (slash | bytes_equal(w, b'.')) & valid;
        // Little endian: byte j+1 of the word sits 8 bits above byte j.
        if (next >> 8) & slash != 0 || (carry != 0 && next & 0x80 != 0) {
            return false;
        }
        carry = slash >> 63;
    }
    true
}

/// Whether a path passes the prefix filters, as far as the kernel can tell. `buf` is 8-byte
/// aligned with 256 readable bytes.
#[inline(never)]
pub(super) fn prefix_keeps(cfg: &FileConfig, buf: *const u8, len: u32) -> bool {
    if cfg.flags & FILE_CFG_PREFIXES == 0 {
        return true; // no prefixes at all: nothing to look up
    }
    if !is_clean_absolute(buf, len) {
        return true; // userspace decides after resolving and normalising it
    }
    let Some(key) = FILE_KEY.get_ptr_mut(0) else {
        return true;
    };
    let key = unsafe { &mut *key };
    let data = key.data.as_mut_ptr();
    // Volatile so the mask survives: the compiler knows n < 256, the verifier must see it.
    let n = bound(len, PREFIX_KEY_LEN as u32 - 1);
    // Four bytes a step (the key's data sits 4-aligned after its length), no helper call:
    // both sides are map memory the verifier bounds.
    let words = (n as usize).div_ceil(4);
    let (src, dst) = (buf as *const u32, data as *mut u32);
    for k in 0..PREFIX_KEY_LEN / 4 {
        if k >= words {
            break;
        }
        // SAFETY: k < 64 words of the 256 bytes on each side.
        unsafe { dst.add(k).write(src.add(k).read()) };
    }
    // The key is the path plus `/`, so `/etc` matches the stored `/etc/` but `/etcx` does not.
    unsafe { *data.add(n as usize & (PREFIX_KEY_LEN - 1)) = b'/' };
    key.prefix_len = (n + 1) * 8;
    match FILE_PREFIXES.get(&*key) {
        Some(&PREFIX_EXCLUDE) => false,
        Some(&PREFIX_INCLUDE) => true,
        _ => cfg.flags & FILE_CFG_INCLUDE == 0,
    }
}
