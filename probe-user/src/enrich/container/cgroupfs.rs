//! The cgroup2 mount, opened once: a cgroup id becomes its path through a file handle, and a
//! vanished cgroup can be told from a live one.
use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::PathBuf,
};

/// The cgroup2 mount, opened once: cgroup ids become paths through file handles.
pub struct CgroupFs {
    pub mount: PathBuf,
    fd: OwnedFd,
}

/// `FILEID_KERNFS`: a kernfs node id (the cgroup id) as a file handle.
const FILEID_KERNFS: i32 = 0xfe;

#[repr(C)]
struct KernfsHandle {
    handle_bytes: u32,
    handle_type: i32,
    id: u64,
}

impl CgroupFs {
    pub fn find() -> Option<CgroupFs> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = info.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split(' ').next()? == "cgroup2")
                .then(|| pre.split(' ').nth(4).map(PathBuf::from))?
        })?;
        let file = std::fs::File::open(&mount).ok()?;
        Some(CgroupFs {
            mount,
            fd: file.into(),
        })
    }

    pub fn open(&self, id: u64) -> std::io::Result<OwnedFd> {
        let mut h = KernfsHandle {
            handle_bytes: 8,
            handle_type: FILEID_KERNFS,
            id,
        };
        // SAFETY: `h` is a valid `struct file_handle` with 8 bytes of handle data.
        let fd = unsafe {
            libc::open_by_handle_at(
                self.fd.as_raw_fd(),
                (&mut h as *mut KernfsHandle).cast(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The cgroup path (as in `/proc/<pid>/cgroup`) of a cgroup id.
    pub fn path(&self, id: u64) -> Option<String> {
        let fd = self.open(id).ok()?;
        let full = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let rel = full.strip_prefix(&self.mount).ok()?;
        Some(format!("/{}", rel.to_string_lossy()))
    }

    pub fn exists(&self, id: u64) -> bool {
        !matches!(self.open(id), Err(e) if e.raw_os_error() == Some(libc::ESTALE) || e.raw_os_error() == Some(libc::ENOENT))
    }
}
