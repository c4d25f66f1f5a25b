//! `koordinator DIR`: copy this executable into a shared volume, so the other
//! containers of the pod can use it as their entrypoint.
//!
//! The copy is written to a temporary file in DIR, fsynced, made 0755 and
//! renamed over `DIR/koordinator`: a container that starts while the copy runs
//! sees either no file or the whole binary, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct InstallError {
    what: String,
    err: io::Error,
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.err.raw_os_error() {
            Some(libc::ENOSPC) => " (the volume is full: give the emptyDir more room)",
            Some(libc::EROFS) => " (the directory is read-only: mount a writable emptyDir there)",
            Some(libc::EACCES) | Some(libc::EPERM) => {
                " (the directory is not writable by this user: use an emptyDir, or set fsGroup)"
            }
            Some(libc::ENOENT) => {
                " (mount a volume there, e.g. an emptyDir shared with the other containers)"
            }
            _ => "",
        };
        write!(f, "install failed: {}: {}{hint}", self.what, self.err)
    }
}

fn context<T>(result: io::Result<T>, what: impl FnOnce() -> String) -> Result<T, InstallError> {
    result.map_err(|err| InstallError { what: what(), err })
}

/// Copies the running executable to `dir/koordinator` and returns that path.
/// `argv0` is the fallback source when /proc is not mounted (a bare chroot).
pub fn install(dir: &Path, argv0: &Path) -> Result<PathBuf, InstallError> {
    let meta = context(fs::metadata(dir), || {
        format!("{} is not usable", dir.display())
    })?;
    if !meta.is_dir() {
        return Err(InstallError {
            what: format!("{} is not a directory", dir.display()),
            err: io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    let mut source = match File::open("/proc/self/exe") {
        Ok(f) => f,
        Err(e) if argv0.is_absolute() => {
            log::debug!("/proc/self/exe: {e}; reading {} instead", argv0.display());
            context(File::open(argv0), || format!("cannot read this executable ({})", argv0.display()))?
        }
        Err(e) => {
            return Err(InstallError {
                what: "cannot read this executable through /proc/self/exe (mount /proc, or run it by its absolute path)".into(),
                err: e,
            })
        }
    };
    let target = dir.join("koordinator");
    // SAFETY: getpid cannot fail.
    let temp = dir.join(format!(".koordinator.{}.tmp", unsafe { libc::getpid() }));
    let result = write_copy(&mut source, &temp).and_then(|()| {
        context(fs::rename(&temp, &target), || {
            format!("cannot rename into {}", target.display())
        })
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    // Make the rename itself durable; a failure here does not undo the install.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

fn write_copy(source: &mut File, temp: &Path) -> Result<(), InstallError> {
    let at = || format!("cannot write {}", temp.display());
    let mut out = context(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(temp),
        at,
    )?;
    context(io::copy(source, &mut out), at)?;
    context(out.flush(), at)?;
    // The mode given to open is reduced by the umask; the binary must be 0755.
    context(out.set_permissions(fs::Permissions::from_mode(0o755)), at)?;
    context(out.sync_all(), at)
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
