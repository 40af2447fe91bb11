//! Facts about a file that become attributes: owner and group names, permissions.

use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;

/// The user name of a uid, if the system knows it.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf` (whose length we pass) and sets
    // `result` to `&pwd` on success; we read pw_name only then, while `buf` is alive.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The group name of a gid, if the system knows it.
pub(crate) fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as for getpwuid_r above.
    let rc = unsafe {
        libc::getgrgid_r(
            gid,
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success gr_name points to a NUL-terminated string inside `buf`.
    Some(
        unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Permission bits in octal, as `ls -l` shows them numerically (e.g. `644`).
pub(crate) fn permissions(meta: &std::fs::Metadata) -> String {
    format!("{:o}", meta.mode() & 0o7777)
}

/// Takes a shared advisory lock for as long as the guard lives (`acquire_fs_lock`), so a
/// writer that locks exclusively while rewriting a file is not read mid-write.
pub(crate) struct SharedLock<'a>(&'a std::fs::File);

impl<'a> SharedLock<'a> {
    pub fn acquire(file: &'a std::fs::File) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own for the lifetime of the guard.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SharedLock(file))
    }
}

impl Drop for SharedLock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: releases the lock taken in `acquire` on the same descriptor.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_known() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(user_name(u32::MAX - 7), None);
    }

    #[test]
    fn permissions_are_octal() {
        use std::os::unix::fs::PermissionsExt;
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(permissions(&f.path().metadata().unwrap()), "640");
        let _lock = SharedLock::acquire(f.as_file()).unwrap();
    }
}
