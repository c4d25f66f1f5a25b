//! The state directory source: each koordinator publishes its container's
//! lifecycle in a directory that the pod's containers share, and follows the
//! containers it depends on there (SPEC §7.2).
//!
//! Layout, per container NAME:
//! - `NAME.json`: one JSON object, replaced atomically (written to a
//!   temporary file, then renamed): `waiting`, `running`, or `exited` with
//!   the exit code, and a restart number.
//! - `NAME.lock`: held with an exclusive `flock` by the living koordinator,
//!   from before its first record until it dies. The kernel releases it
//!   when the process dies in any way, SIGKILL and OOM kills included.
//!
//! Reading needs no thread: an inotify watch on the directory reports a
//! record being renamed into place (`IN_MOVED_TO`) and, because the owner
//! holds its lock file open for writing, the owner's death too: the kernel
//! closes the file and reports `IN_CLOSE_WRITE`. A record that says
//! `waiting` or `running` while its lock can be taken belongs to a
//! koordinator that died without saying how: an abrupt exit (137). The
//! lock is tested while holding it shared, so a restarting owner cannot
//! write a new record in between (it takes the lock before it writes).
//!
//! The directory is sticky and writable by all (like /tmp), so containers
//! running as different users can each publish, and none can remove or
//! replace another user's record. Records carry the pod's network namespace,
//! so a directory that outlives its pod (a misused persistent volume) cannot
//! feed an old pod's records to a new one.

use crate::rules::coordinator::Published;
use crate::rules::facts::{Observation, Stage};
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The name `koordinator DIR` gives the state directory inside DIR.
pub const DIR_NAME: &str = "koordinator-state";
/// Records are small; a larger file is not a record.
const MAX_RECORD: u64 = 4096;

/// What identifies this pod among pods that could share a directory: its
/// network namespace, which all of a pod's containers share.
pub fn pod_identity() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// A record as published.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Record {
    pub container: String,
    pub state: String,
    pub restart: u32,
    pub code: Option<i32>,
    pub pod: String,
}

impl Record {
    /// What the record says about its container; `None` for a record that
    /// makes no sense (an unknown state, an exit without a code).
    pub fn observation(&self) -> Option<Observation> {
        let stage = match (self.state.as_str(), self.code) {
            ("waiting", _) => Stage::Waiting,
            ("running", _) => Stage::Running { ready: false },
            ("exited", Some(code)) => Stage::Exited {
                code,
                abrupt: false,
            },
            _ => return None,
        };
        Some(Observation {
            restart: self.restart,
            stage,
        })
    }

    fn alive(&self) -> bool {
        self.state == "waiting" || self.state == "running"
    }
}

/// Parses a record file. Pure: a fuzz target drives it with any bytes.
pub fn parse_record(bytes: &[u8]) -> Result<Record, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not a state record: {e}"))
}

fn render(name: &str, state: Published, restart: u32, pod: &str) -> String {
    let (state, code) = match state {
        Published::Waiting => ("waiting", "null".to_string()),
        Published::Running => ("running", "null".to_string()),
        Published::Exited(code) => ("exited", code.to_string()),
    };
    let at = humantime::format_rfc3339_millis(SystemTime::now());
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    format!(
        "{{\"container\":{},\"state\":\"{state}\",\"restart\":{restart},\"code\":{code},\"pod\":{},\"pid\":{pid},\"at\":\"{at}\"}}\n",
        json_string(name),
        json_string(pod)
    )
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// This container's side: its lock, held for life, and its records.
pub struct Publisher {
    dir: PathBuf,
    name: String,
    restart: u32,
    pod: String,
    /// Held open (and locked) until the process ends; never inherited.
    _lock: File,
}

impl Publisher {
    /// Takes this container's lock and reads its previous record, if any,
    /// for the restart number.
    pub fn open(dir: &Path, name: &str) -> io::Result<Publisher> {
        let lock_path = dir.join(format!("{name}.lock"));
        // Open the existing file without O_CREAT first: in a sticky directory
        // (fs.protected_regular) O_CREAT on another user's file is refused.
        let lock = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&lock_path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&lock_path)?;
                // Dependents open it to test the lock: readable whatever the umask.
                let _ = f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
                f
            }
            Err(e) => return Err(e),
        };
        // A dependent holds the lock shared for microseconds at a time; a
        // previous run of this container is dead. Never wait long.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match flock(&lock, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot lock {}: {e} (is another container publishing under the name {name:?}?)", lock_path.display()),
                    ))
                }
            }
        }
        let pod = pod_identity();
        let restart = read_record(&dir.join(format!("{name}.json")))
            .ok()
            .flatten()
            .filter(|r| r.container == name && r.pod == pod)
            .map_or(0, |r| r.restart.saturating_add(1));
        Ok(Publisher {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            restart,
            pod,
            _lock: lock,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn restart(&self) -> u32 {
        self.restart
    }

    /// Replaces this container's record atomically.
    pub fn publish(&mut self, state: Published) -> io::Result<()> {
        // SAFETY: getpid cannot fail.
        let pid = unsafe { libc::getpid() };
        let temp = self.dir.join(format!(".{}.json.{pid}.tmp", self.name));
        let target = self.dir.join(format!("{}.json", self.name));
        let text = render(&self.name, state, self.restart, &self.pod);
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(&temp)?;
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            f.write_all(text.as_bytes())?;
            std::fs::rename(&temp, &target)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                format!(" ({} belongs to another user: is another container publishing under the name {:?}?)", target.display(), self.name)
            } else {
                String::new()
            };
            return Err(io::Error::new(
                e.kind(),
                format!("cannot publish to {}: {e}{hint}", target.display()),
            ));
        }
        Ok(())
    }
}

/// Reads a record file; `Ok(None)` when there is none.
fn read_record(path: &Path) -> io::Result<Option<Record>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RECORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than a record",
        ));
    }
    parse_record(&bytes)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// How often the directory is looked at when inotify is not available.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The dependents' side: follows the records of the named containers.
pub struct Reader {
    dir: PathBuf,
    names: Vec<String>,
    pod: String,
    /// `None` when the kernel refused an inotify instance or watch (its
    /// per-user limits are shared by every container of that user on the
    /// node): the directory is then looked at every `POLL_INTERVAL`.
    inotify: Option<OwnedFd>,
    /// What was last reported, when polling: only changes are reported.
    reported: Vec<(String, Observation)>,
    /// Names whose record was refused, so that each is logged once.
    warned: Vec<String>,
}

/// An inotify instance watching `dir` for records renamed into place and
/// lock files closed.
fn watch(dir: &Path) -> io::Result<OwnedFd> {
    // SAFETY: inotify_init1 returns a new descriptor or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
    let mask = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_ONLYDIR;
    // SAFETY: a valid descriptor and a NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(inotify)
}

impl Reader {
    /// Watches `dir` for the containers in `names`; returns the reader and
    /// what the directory holds about them now.
    pub fn open(dir: &Path, names: &[&str]) -> io::Result<(Reader, Vec<(String, Observation)>)> {
        let inotify = match watch(dir) {
            Ok(fd) => Some(fd),
            Err(e) => {
                let why = match e.raw_os_error() {
                    // inotify_init1: the per-user instance limit, shared by
                    // every container of this user on the node, or this
                    // process's open-file limit.
                    Some(libc::EMFILE) => "the node's limit on inotify instances for this user is reached: raise fs.inotify.max_user_instances (or the container's open-file limit, ulimit -n)",
                    // inotify_add_watch: the per-user watch limit.
                    Some(libc::ENOSPC) => "the node's limit on inotify watches for this user is reached: raise fs.inotify.max_user_watches",
                    Some(libc::ENFILE | libc::ENOMEM) => "the node is out of file descriptors or memory",
                    _ => return Err(e),
                };
                log::warn!(
                    "cannot watch {} with inotify: {e} ({why}); looking at it every {} ms instead",
                    dir.display(),
                    POLL_INTERVAL.as_millis()
                );
                None
            }
        };
        let mut reader = Reader {
            dir: dir.to_path_buf(),
            names: names.iter().map(|n| n.to_string()).collect(),
            pod: pod_identity(),
            inotify,
            reported: Vec::new(),
            warned: Vec::new(),
        };
        let names = reader.names.clone();
        let seen: Vec<_> = names.iter().filter_map(|n| reader.look(n)).collect();
        if reader.inotify.is_none() {
            reader.reported.clone_from(&seen);
        }
        Ok((reader, seen))
    }

    /// The inotify descriptor to wait on; `None` when polling.
    pub fn fd(&self) -> Option<RawFd> {
        self.inotify.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// How often to call `read` when there is no descriptor to wait on.
    pub fn poll_interval(&self) -> Option<std::time::Duration> {
        self.inotify.is_none().then_some(POLL_INTERVAL)
    }

    /// Drains the inotify queue (or, when polling, looks at every followed
    /// container); returns what changed for them.
    pub fn read(&mut self) -> Vec<(String, Observation)> {
        let Some(fd) = self.fd() else {
            let names = self.names.clone();
            let now: Vec<_> = names.iter().filter_map(|n| self.look(n)).collect();
            let changed = now
                .iter()
                .filter(|seen| !self.reported.contains(seen))
                .cloned()
                .collect();
            self.reported = now;
            return changed;
        };
        let mut changed: Vec<String> = Vec::new();
        let mut buf = [0u64; 512]; // aligned for inotify_event
        loop {
            // SAFETY: read into a buffer of the given size.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), std::mem::size_of_val(&buf)) };
            if n <= 0 {
                break;
            }
            // SAFETY: the kernel wrote n bytes of whole events into buf.
            let bytes =
                unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= bytes.len() {
                // SAFETY: a whole event header lies at `at` (read_unaligned: any alignment).
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(bytes[at..].as_ptr().cast()) };
                let name_bytes =
                    &bytes[at + header..(at + header + event.len as usize).min(bytes.len())];
                at += header + event.len as usize;
                if event.mask & libc::IN_Q_OVERFLOW != 0 {
                    // Events were lost: look at everything again.
                    changed.clone_from(&self.names);
                    continue;
                }
                let name = name_bytes.split(|b| *b == 0).next().unwrap_or_default();
                let name = String::from_utf8_lossy(name);
                let container = name
                    .strip_suffix(".json")
                    .or_else(|| name.strip_suffix(".lock"));
                if let Some(c) = container {
                    if self.names.iter().any(|n| n == c) && !changed.iter().any(|n| n == c) {
                        changed.push(c.to_string());
                    }
                }
            }
        }
        changed.iter().filter_map(|name| self.look(name)).collect()
    }

    /// What the directory says about `name` now.
    fn look(&mut self, name: &str) -> Option<(String, Observation)> {
        let path = self.dir.join(format!("{name}.json"));
        let record = match read_record(&path) {
            Ok(r) => r?,
            Err(e) => {
                self.warn_once(name, &format!("ignoring {}: {e}", path.display()));
                return None;
            }
        };
        if record.container != name {
            self.warn_once(
                name,
                &format!(
                    "ignoring {}: it is the record of {:?}",
                    path.display(),
                    record.container
                ),
            );
            return None;
        }
        if !self.pod.is_empty() && !record.pod.is_empty() && record.pod != self.pod {
            self.warn_once(name, &format!(
                "ignoring {}: it was written by another pod; the state directory must be a volume of this pod only (an emptyDir)",
                path.display()
            ));
            return None;
        }
        let mut observation = record.observation()?;
        if record.alive() {
            if let Some(dead) = self.dead_owner(name) {
                observation = dead;
            }
        }
        Some((name.to_string(), observation))
    }

    /// When `name`'s lock is free, its koordinator is dead: the record read
    /// under the lock, with a `waiting` or `running` one turned into an
    /// abrupt exit. `None` while the owner lives.
    fn dead_owner(&mut self, name: &str) -> Option<Observation> {
        let lock = File::open(self.dir.join(format!("{name}.lock"))).ok()?;
        flock(&lock, libc::LOCK_SH | libc::LOCK_NB).ok()?;
        let record = read_record(&self.dir.join(format!("{name}.json")))
            .ok()
            .flatten();
        let _ = flock(&lock, libc::LOCK_UN);
        let record = record?;
        let observation = record.observation()?;
        if !record.alive() {
            return Some(observation);
        }
        Some(Observation {
            restart: record.restart,
            stage: Stage::Exited {
                code: 137,
                abrupt: true,
            },
        })
    }

    fn warn_once(&mut self, name: &str, message: &str) {
        if !self.warned.iter().any(|n| n == name) {
            self.warned.push(name.to_string());
            log::warn!("{message}");
        }
    }
}

/// The state directory in effect: `KOORDINATOR_STATE_DIR` (empty: none), else
/// the one `koordinator DIR` made beside this very binary, when it exists.
/// A koordinator run from an image path never writes beside itself.
pub fn locate(env_value: Option<&std::ffi::OsStr>, exe: Option<&Path>) -> Option<PathBuf> {
    match env_value {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => {
            let dir = exe?.parent()?.join(DIR_NAME);
            dir.is_dir().then_some(dir)
        }
    }
}

/// Creates a state directory (sticky, writable by all) if it is missing.
pub fn create(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    // The mode given to mkdir is reduced by the umask: set it afterwards.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("koordinator-state-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        create(&d).unwrap();
        d
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let r =
            parse_record(render("main", Published::Exited(3), 2, "net:[1]").as_bytes()).unwrap();
        assert_eq!(
            (
                r.container.as_str(),
                r.state.as_str(),
                r.restart,
                r.code,
                r.pod.as_str()
            ),
            ("main", "exited", 2, Some(3), "net:[1]")
        );
        assert_eq!(
            r.observation(),
            Some(Observation {
                restart: 2,
                stage: Stage::Exited {
                    code: 3,
                    abrupt: false
                }
            })
        );
        assert!(parse_record(b"nope").is_err());
        assert_eq!(
            parse_record(br#"{"state":"exited"}"#)
                .unwrap()
                .observation(),
            None
        );
        assert_eq!(
            parse_record(br#"{"state":"sleeping"}"#)
                .unwrap()
                .observation(),
            None
        );
    }

    #[test]
    fn a_publisher_is_followed_and_its_death_reads_as_an_abrupt_exit() {
        let dir = temp_dir("follow");
        let (mut reader, seen) = Reader::open(&dir, &["main"]).unwrap();
        assert!(seen.is_empty(), "nothing published yet");
        // A publisher in a child process, so that its death can be real.
        // SAFETY: the child only publishes, then waits to be killed.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let mut p = Publisher::open(&dir, "main").unwrap();
            p.publish(Published::Running).unwrap();
            std::thread::sleep(Duration::from_secs(30));
            unsafe { libc::_exit(0) };
        }
        let running = wait_for(&mut reader, |o| matches!(o.stage, Stage::Running { .. }));
        assert_eq!(running.restart, 0);
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        let dead = wait_for(&mut reader, |o| o.exited().is_some());
        assert_eq!(
            dead.stage,
            Stage::Exited {
                code: 137,
                abrupt: true
            }
        );
        // A restart publishes again with the next number.
        let mut p = Publisher::open(&dir, "main").unwrap();
        assert_eq!(p.restart(), 1);
        p.publish(Published::Exited(0)).unwrap();
        let done = wait_for(&mut reader, |o| o.exited() == Some(0));
        assert_eq!(done.restart, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn wait_for(reader: &mut Reader, want: impl Fn(&Observation) -> bool) -> Observation {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some((_, o)) = reader.read().into_iter().find(|(_, o)| want(o)) {
                return o;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("no such observation within 10 s");
    }

    #[test]
    fn a_record_of_another_pod_or_name_is_ignored() {
        let dir = temp_dir("foreign");
        std::fs::write(
            dir.join("main.json"),
            r#"{"container":"main","state":"exited","code":0,"pod":"net:[1]"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("side.json"),
            r#"{"container":"main","state":"exited","code":0}"#,
        )
        .unwrap();
        let (_, seen) = Reader::open(&dir, &["main", "side"]).unwrap();
        assert!(seen.is_empty(), "{seen:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_directory_is_found_beside_the_installed_binary_only() {
        let dir = temp_dir("locate");
        let exe = dir.join("koordinator");
        assert_eq!(
            locate(None, Some(&exe)),
            None,
            "no state directory beside it"
        );
        create(&dir.join(DIR_NAME)).unwrap();
        assert_eq!(locate(None, Some(&exe)), Some(dir.join(DIR_NAME)));
        assert_eq!(
            locate(Some("".as_ref()), Some(&exe)),
            None,
            "empty turns it off"
        );
        assert_eq!(locate(Some("/x".as_ref()), Some(&exe)), Some("/x".into()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(DIR_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
