//! The event loop: one thread, one mio poll over a signalfd, a waker for the
//! other threads (the API source, probes, an HTTP quit), and the state
//! directory's inotify descriptor.
//!
//! It only translates: readable fds and expired deadlines become coordinator
//! events, coordinator actions become system calls. Every rule lives in
//! `rules/coordinator.rs`.

use crate::init::child::{self, Inherited};
use crate::rules::coordinator::{Action, Coordinator, Event, Published};
use crate::rules::spec::HttpQuit;
use crate::sources::state_dir::{Publisher, Reader};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::ffi::OsString;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const SIGNALS: Token = Token(0);
const WAKER: Token = Token(1);
const STATE_DIR: Token = Token(2);

/// Events from other threads, waiting for the loop. `None` once the loop
/// is gone. (A mutex and a vector: the few senders never contend, and it is
/// much less code on the init's path than a channel.)
type Queue = Arc<Mutex<Option<Vec<Event>>>>;

/// How other threads (the API source, probes, an HTTP quit) hand events to the loop.
#[derive(Clone)]
pub struct Notifier {
    queue: Queue,
    waker: Arc<Waker>,
}

impl Notifier {
    /// Queues an event and wakes the loop. Returns false once the loop is gone.
    pub fn send(&self, event: Event) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match queue.as_mut() {
            Some(events) => events.push(event),
            None => return false,
        }
        drop(queue);
        self.waker.wake().is_ok()
    }
}

/// What the loop needs besides the coordinator.
pub struct Setup {
    pub command: Vec<OsString>,
    pub kill_group: bool,
    pub inherited: Inherited,
    /// Where `Action::Report` lines go.
    pub termination_log: Option<TerminationLog>,
    /// The state directory, when there is one: where `Action::Publish` goes.
    pub state_dir: Option<PathBuf>,
    /// Follows the records of the containers this one depends on.
    pub reader: Option<Reader>,
}

struct Loop {
    setup: Setup,
    child: Option<i32>,
    draining: bool,
    notifier: Notifier,
    publisher: Option<Publisher>,
    /// Publishing failed once; it is not tried again.
    publish_failed: bool,
}

/// Runs until the coordinator exits; returns the exit code.
/// `start_sources` is called once, after the signals are blocked and the
/// notifier exists, to start the threads of the API and probe sources.
pub fn run(
    coordinator: (Coordinator, Vec<Action>),
    setup: Setup,
    start_sources: impl FnOnce(Notifier) -> io::Result<()>,
) -> io::Result<i32> {
    let mut poll = Poll::new()?;
    let mut signal_fd = SignalFd::with_flags(
        &crate::init::signals::handled_set(),
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    poll.registry().register(
        &mut SourceFd(&signal_fd.as_raw_fd()),
        SIGNALS,
        Interest::READABLE,
    )?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    if let Some(fd) = setup.reader.as_ref().and_then(Reader::fd) {
        poll.registry()
            .register(&mut SourceFd(&fd), STATE_DIR, Interest::READABLE)?;
    }
    let queue: Queue = Arc::new(Mutex::new(Some(Vec::new())));
    let notifier = Notifier {
        queue: queue.clone(),
        waker,
    };
    start_sources(notifier.clone())?;

    let (mut coordinator, initial) = coordinator;
    let mut lp = Loop {
        setup,
        child: None,
        draining: false,
        notifier,
        publisher: None,
        publish_failed: false,
    };
    let result = lp.run(&mut coordinator, initial, &mut poll, &mut signal_fd, &queue);
    // Senders learn that nobody listens any more.
    *queue.lock().unwrap_or_else(|e| e.into_inner()) = None;
    Ok(result)
}

impl Loop {
    fn run(
        &mut self,
        coordinator: &mut Coordinator,
        initial: Vec<Action>,
        poll: &mut Poll,
        signal_fd: &mut SignalFd,
        queue: &Queue,
    ) -> i32 {
        if let ControlFlow::Break(code) = self.perform(coordinator, initial) {
            return code;
        }
        let mut events = Events::with_capacity(8);
        let handled = crate::init::signals::handled_set();
        loop {
            let mut timeout = coordinator
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            // A state directory followed without inotify is looked at
            // every so often (each turn reads it).
            if let Some(every) = self.setup.reader.as_ref().and_then(Reader::poll_interval) {
                timeout = Some(timeout.map_or(every, |t| t.min(every)));
            }
            if self.signals_only(queue) {
                // Nothing but a signal can bring news: take it straight from
                // the kernel, as tini does, one system call between the
                // signal and its action instead of a poll and a read.
                if let Some(signal) = wait_signal(&handled, timeout) {
                    let step = if signal == libc::SIGCHLD {
                        self.reap(coordinator)
                    } else {
                        self.feed(coordinator, Event::Signal(signal))
                    };
                    if let ControlFlow::Break(code) = step {
                        return code;
                    }
                }
            } else if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::warn!("poll: {e}");
                }
            }
            if let ControlFlow::Break(code) = self.turn(coordinator, signal_fd, queue) {
                return code;
            }
        }
    }

    /// True when only a signal can bring news: no state directory to follow,
    /// no other thread holding a notifier (the API source, probes, an HTTP
    /// quit), and nothing queued by one that has finished.
    fn signals_only(&self, queue: &Queue) -> bool {
        if self.setup.reader.is_some() || Arc::strong_count(&self.notifier.waker) > 1 {
            return false;
        }
        // Pairs with the release in the last other notifier's drop: what it
        // queued before it went is visible below.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(true, Vec::is_empty)
    }

    /// One pass over everything that may be pending; fds are edge-triggered,
    /// so each source is drained completely.
    fn turn(
        &mut self,
        c: &mut Coordinator,
        signal_fd: &SignalFd,
        queue: &Queue,
    ) -> ControlFlow<i32> {
        let mut child_changed = false;
        // Up to 16 signals a read: a storm of signals costs few system calls.
        // SAFETY: signalfd_siginfo is plain data; all zeroes is a valid value.
        let mut infos: [libc::signalfd_siginfo; 16] = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: read fills whole signalfd_siginfo records into the array.
            let n = unsafe {
                libc::read(
                    signal_fd.as_raw_fd(),
                    infos.as_mut_ptr().cast(),
                    std::mem::size_of_val(&infos),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => break,
                    _ => {
                        log::warn!("reading signals: {e}");
                        break;
                    }
                }
            }
            let count = n as usize / std::mem::size_of::<libc::signalfd_siginfo>();
            for info in &infos[..count] {
                let signal = info.ssi_signo as i32;
                if signal == libc::SIGCHLD {
                    child_changed = true;
                } else {
                    self.feed(c, Event::Signal(signal))?;
                }
            }
            if count < infos.len() {
                break;
            }
        }
        if child_changed {
            self.reap(c)?;
        }
        if let Some(reader) = &mut self.setup.reader {
            for (name, observation) in reader.read() {
                self.feed(c, Event::Record(name, observation))?;
            }
        }
        let events = queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for event in events {
            self.feed(c, event)?;
        }
        if c.next_deadline().is_some_and(|d| d <= Instant::now()) {
            self.feed(c, Event::Timer)?;
        }
        ControlFlow::Continue(())
    }

    fn reap(&mut self, c: &mut Coordinator) -> ControlFlow<i32> {
        let mut exited = None;
        let none_left = child::reap(|pid, code| {
            if Some(pid) == self.child {
                exited = Some(code);
            }
        });
        if let Some(code) = exited {
            self.child = None;
            self.feed(c, Event::ChildExited(code))?;
        }
        if self.draining && none_left {
            self.feed(c, Event::OrphansGone)?;
        }
        ControlFlow::Continue(())
    }

    fn feed(&mut self, c: &mut Coordinator, event: Event) -> ControlFlow<i32> {
        let actions = c.step(event, Instant::now());
        self.perform(c, actions)
    }

    /// Carries out actions; breaks with the exit code once one says to exit.
    fn perform(&mut self, c: &mut Coordinator, actions: Vec<Action>) -> ControlFlow<i32> {
        for action in actions {
            match action {
                Action::Spawn => match child::spawn(&self.setup.command, self.setup.inherited) {
                    Ok(pid) => {
                        log::debug!("started {:?} as pid {pid}", self.setup.command[0]);
                        self.child = Some(pid);
                    }
                    Err(e) => {
                        log::error!("{e}");
                        self.report(&e.to_string());
                        let code = e.exit_code();
                        if let Some(p) = &mut self.publisher {
                            let _ = p.publish(Published::Exited(code));
                        }
                        return ControlFlow::Break(code);
                    }
                },
                Action::Signal(signal) => {
                    if let Some(pid) = self.child {
                        child::signal(pid, self.setup.kill_group, signal);
                    }
                }
                Action::SignalOrphans(signal) => {
                    self.draining = true;
                    signal_orphans(signal);
                    self.reap(c)?;
                }
                Action::HttpQuit(quit) => {
                    let notifier = self.notifier.clone();
                    // Off the loop: the request may take up to its timeout.
                    let spawned =
                        std::thread::Builder::new()
                            .name("http-quit".into())
                            .spawn(move || {
                                notifier.send(Event::HttpQuitDone(http_quit(&quit)));
                            });
                    if let Err(e) = spawned {
                        self.feed(
                            c,
                            Event::HttpQuitDone(Err(format!("cannot start a thread: {e}"))),
                        )?;
                    }
                }
                Action::Report(line) => self.report(&line),
                Action::Log(level, message) => log::log!(level, "{message}"),
                Action::Publish(name, state) => self.publish(&name, state),
                Action::Exit(code) => return ControlFlow::Break(code),
            }
        }
        ControlFlow::Continue(())
    }

    fn report(&self, line: &str) {
        if let Some(log) = &self.setup.termination_log {
            log.write(line);
        }
    }

    /// Publishes this container's state; the lock is taken at the first
    /// record. A failure is logged once and never ends koordinator.
    fn publish(&mut self, name: &str, state: Published) {
        let Some(dir) = &self.setup.state_dir else {
            return;
        };
        if self.publish_failed {
            return;
        }
        if !matches!(&self.publisher, Some(p) if p.name() == name) {
            match Publisher::open(dir, name) {
                Ok(p) => {
                    log::debug!(
                        "publishing the state of container {name:?} in {} (restart {})",
                        dir.display(),
                        p.restart()
                    );
                    self.publisher = Some(p);
                }
                Err(e) => {
                    self.publish_failed = true;
                    log::warn!("cannot publish this container's state: {e}; containers that follow it through the state directory will not see it");
                    return;
                }
            }
        }
        if let Some(p) = &mut self.publisher {
            if let Err(e) = p.publish(state) {
                self.publish_failed = true;
                log::warn!(
                    "{e}; containers that follow it through the state directory will not see it"
                );
            }
        }
    }
}

/// Waits for one of the handled (blocked) signals, at most `timeout`, and
/// dequeues it. `None` on timeout or interruption.
fn wait_signal(
    set: &nix::sys::signal::SigSet,
    timeout: Option<std::time::Duration>,
) -> Option<i32> {
    let ts = timeout.map(nix::sys::time::TimeSpec::from_duration);
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| {
        AsRef::<libc::timespec>::as_ref(t) as *const _
    });
    // SAFETY: the set and the timespec outlive the call; no siginfo is asked for.
    let signal = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts_ptr) };
    (signal > 0).then_some(signal)
}

/// The file the kubelet shows as the container's termination message.
pub struct TerminationLog {
    pub path: PathBuf,
    /// False for the Kubernetes default: written only where the kubelet has
    /// mounted it (looked at when there is something to write, not before).
    pub create: bool,
}

impl TerminationLog {
    /// Writes the termination message; silently skipped when the file cannot
    /// be written (outside Kubernetes there usually is none).
    pub fn write(&self, line: &str) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(self.create)
            .truncate(true)
            .open(&self.path);
        if let Ok(mut f) = file {
            let _ = writeln!(f, "koordinator: {}", crate::logger::redact(line));
        }
    }
}

/// Asks the processes left behind by the command to stop. As PID 1 every
/// other process in the namespace is ours to stop; as a subreaper only our
/// own children are, and their children come back to us when they die.
fn signal_orphans(signal: i32) {
    // SAFETY: getpid and kill have no memory effects.
    unsafe {
        if libc::getpid() == 1 {
            libc::kill(-1, signal);
        } else {
            for pid in child::children() {
                libc::kill(pid, signal);
            }
        }
    }
}

/// `whenStopDepExited.http`: a request to the sidecar on 127.0.0.1.
fn http_quit(quit: &HttpQuit) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{}{}", quit.port, quit.path);
    log::info!("sending {} {url}", quit.method);
    match crate::client::http::plain_request(
        &quit.method,
        "127.0.0.1",
        quit.port,
        &quit.path,
        quit.timeout,
    ) {
        Ok(status) if (200..300).contains(&status) => Ok(()),
        Ok(status) => Err(format!("{} {url} answered {status}", quit.method)),
        Err(e) => Err(format!(
            "{} {url}: {}",
            quit.method,
            crate::sources::probes::describe(&e, quit.timeout)
        )),
    }
}
