//! `koordinator DIR`: copy this executable into a shared volume, so the other
//! containers of the pod can use it as their entrypoint, and create the
//! state directory beside it (SPEC §7.2).
//!
//! The copy is written to a temporary file in DIR, fsynced, made 0755,
//! checked (size and mode) and only then renamed over `DIR/koordinator`: a
//! container that starts while the copy runs sees either no file or the
//! whole binary, never half of one.

use crate::sources::state_dir;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct InstallError {
    what: String,
    err: io::Error,
    /// What to do about it, when the error code alone does not say.
    hint: Option<String>,
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match (&self.hint, self.err.raw_os_error()) {
            (Some(h), _) => format!(" ({h})"),
            (None, Some(libc::ENOSPC)) => {
                " (the volume is full: give the emptyDir more room)".into()
            }
            (None, Some(libc::EROFS)) => {
                " (the directory is read-only: mount a writable emptyDir there)".into()
            }
            (None, Some(libc::EACCES | libc::EPERM)) => {
                " (the directory is not writable by this user: use an emptyDir, or set fsGroup)"
                    .into()
            }
            (None, Some(libc::ENOENT)) => {
                " (mount a volume there, e.g. an emptyDir shared with the other containers)".into()
            }
            _ => String::new(),
        };
        write!(f, "install failed: {}: {}{hint}", self.what, self.err)
    }
}

fn context<T>(result: io::Result<T>, what: impl FnOnce() -> String) -> Result<T, InstallError> {
    result.map_err(|err| InstallError {
        what: what(),
        err,
        hint: None,
    })
}

fn statvfs(path: &Path) -> Option<libc::statvfs> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut s) == 0).then_some(s)
    }
}

/// Checks that `dir` can hold a binary that other containers run.
fn check_dir(dir: &Path) -> Result<(), InstallError> {
    let meta = context(fs::metadata(dir), || {
        format!("{} is not usable", dir.display())
    })?;
    if !meta.is_dir() {
        return Err(InstallError {
            what: format!("{} is not a directory", dir.display()),
            err: io::Error::from_raw_os_error(libc::ENOTDIR),
            hint: None,
        });
    }
    if statvfs(dir).is_some_and(|s| s.f_flag & libc::ST_NOEXEC != 0) {
        return Err(InstallError {
            what: format!("{} is on a file system mounted noexec", dir.display()),
            err: io::Error::from_raw_os_error(libc::EACCES),
            hint: Some("the other containers could not run koordinator from it (\"permission denied\" at their start): install into an emptyDir that allows exec; on nodes that mount the kubelet's directory noexec, use `emptyDir: {medium: Memory}`".into()),
        });
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let writable = {
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: access only reads the path.
        unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
    };
    if !writable
        && statvfs(dir).is_some_and(|s| s.f_flag & libc::ST_RDONLY == 0)
        && meta.uid() != me
    {
        return Err(InstallError {
            what: format!("{} is not writable by uid {me} (this container's user)", dir.display()),
            err: io::Error::from_raw_os_error(libc::EACCES),
            hint: Some(format!(
                "it belongs to uid {} with mode {:o}: set fsGroup in the pod's securityContext so the volume is group-writable, run the init container as uid {}, or use an emptyDir (writable by all)",
                meta.uid(),
                meta.mode() & 0o7777,
                meta.uid()
            )),
        });
    }
    Ok(())
}

/// Copies the running executable to `dir/koordinator`, creates the state
/// directory, and returns the binary's path. `argv0` is the fallback source
/// when /proc is not mounted (a bare chroot).
pub fn install(dir: &Path, argv0: &Path) -> Result<PathBuf, InstallError> {
    check_dir(dir)?;
    let mut source = match File::open("/proc/self/exe") {
        Ok(f) => f,
        Err(e) if argv0.is_absolute() => {
            log::debug!("/proc/self/exe: {e}; reading {} instead", argv0.display());
            context(File::open(argv0), || {
                format!("cannot read this executable ({})", argv0.display())
            })?
        }
        Err(e) => {
            return Err(InstallError {
                what: "cannot read this executable through /proc/self/exe (mount /proc, or run it by its absolute path)".into(),
                err: e,
                hint: None,
            })
        }
    };
    let size = context(source.metadata(), || "cannot read this executable".into())?.len();
    let target = dir.join("koordinator");
    // SAFETY: getpid cannot fail.
    let temp = dir.join(format!(".koordinator.{}.tmp", unsafe { libc::getpid() }));
    let result = write_copy(&mut source, &temp, size).and_then(|()| {
        context(fs::rename(&temp, &target), || {
            format!("cannot rename into {}", target.display())
        })
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    let states = dir.join(state_dir::DIR_NAME);
    context(state_dir::create(&states), || {
        format!("cannot create the state directory {}", states.display())
    })?;
    // Make the renames durable; a failure here does not undo the install.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

fn write_copy(source: &mut File, temp: &Path, size: u64) -> Result<(), InstallError> {
    let at = || format!("cannot write {}", temp.display());
    let mut out = context(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .custom_flags(libc::O_CLOEXEC)
            .open(temp),
        at,
    )?;
    context(io::copy(source, &mut out), at)?;
    context(out.flush(), at)?;
    // The mode given to open is reduced by the umask; the binary must be 0755.
    context(out.set_permissions(fs::Permissions::from_mode(0o755)), at)?;
    context(out.sync_all(), at)?;
    // What is renamed into place must be the whole binary, executable.
    let written = context(out.metadata(), at)?;
    if written.len() != size || written.mode() & 0o111 != 0o111 {
        return Err(InstallError {
            what: format!(
                "the copy {} is {} bytes with mode {:o}, not {size} bytes with mode 755",
                temp.display(),
                written.len(),
                written.mode() & 0o777
            ),
            err: io::Error::from_raw_os_error(libc::EIO),
            hint: Some("the volume did not keep what was written: try another volume type".into()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_named_with_a_hint() {
        let err = install(Path::new("/nonexistent/koordinator-test"), Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/koordinator-test"), "{err}");
        assert!(err.contains("mount a volume"), "{err}");
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let err = install(Path::new("/proc/self/exe"), Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
