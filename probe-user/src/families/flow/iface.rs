//! Network interfaces named by the user (`--iface` of the flow hooks): a missing one is a
//! friendly error with its own exit code, not a failed attach deep in the loader.

/// The interface does not exist on this host.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("network interface {name:?} not found (interfaces here: {known}); pick one from `ip link`")]
pub struct InterfaceNotFound {
    pub name: String,
    pub known: String,
}

/// The interface index of `name`, or [`InterfaceNotFound`] listing the interfaces there are.
pub fn require_interface(name: &str) -> Result<u32, InterfaceNotFound> {
    let idx = std::ffi::CString::new(name)
        .ok()
        // SAFETY: a valid NUL-terminated string.
        .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) })
        .unwrap_or(0);
    if idx != 0 {
        return Ok(idx);
    }
    let mut known: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    Err(InterfaceNotFound {
        name: name.to_owned(),
        known: known.join(", "),
    })
}

/// Index of a named interface (0 when there is none).
pub fn ifindex(name: &str) -> u32 {
    std::ffi::CString::new(name)
        .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) })
        .unwrap_or(0)
}

pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_exists_and_nonsense_does_not() {
        assert_eq!(require_interface("lo"), Ok(1));
        let e = require_interface("no-such-if0").unwrap_err();
        assert!(e.to_string().contains("\"no-such-if0\" not found") && e.known.contains("lo"));
        assert!(require_interface("bad\0name").is_err());
    }
}
