//! koordinator: a PID-1 init (tini-class) that also starts and stops the
//! containers of one Kubernetes pod in order.
//!
//! The file list is the architecture, by layer:
//!
//! | file | concern |
//! |---|---|
//! | `main.rs` | process entry: block signals first, then [`entry`] |
//! | `cli.rs` | the command line and its modes |
//! | `logger.rs` | stderr logging, text or JSON, with secrets redacted |
//! | `check.rs` | `koordinator --check` |
//! | **init/** | **the PID-1 work** |
//! | `init/signals.rs` | signal names, the blocked mask, rewrite rules |
//! | `init/child.rs` | starting, signalling and reaping processes |
//! | `init/event_loop.rs` | the event loop: fds and deadlines in, actions out |
//! | `init/install.rs` | `koordinator DIR`: atomic self-copy into a volume |
//! | **rules/** | **pure: every decision, no I/O** |
//! | `rules/spec.rs` | `KOORDINATOR_SPEC`: parsing and validation |
//! | `rules/plan.rs` | which sources the dependencies are followed through |
//! | `rules/facts.rs` | what is known about each container depended on |
//! | `rules/pod.rs` | the Pod fields read from the API, and their checks |
//! | `rules/coordinator.rs` | every lifecycle rule, as a state machine |
//! | `rules/simulate.rs` | random runs of the coordinator and its invariants (tests, fuzzing) |
//! | **sources/** | **each turns the outside world into coordinator events** |
//! | `sources/api.rs` | the API server: list and watch our pod (a thread) |
//! | `sources/state_dir.rs` | the shared state directory: publish and follow records (on the loop) |
//! | `sources/probes.rs` | tcp, http and file probes (a thread each) |
//! | **client/** | **network plumbing** |
//! | `client/http.rs` | a small HTTP/1.1 client with one deadline per request |
//! | `client/tls.rs` | TLS trusting only the pod's CA |
//! | `client/kube.rs` | pod identity and the Kubernetes API requests |
//!
//! Exit codes are decided in one place, [`entry`]: the command's own code
//! (128+N for signal N), 2 for configuration and usage errors, 1 for a
//! start that can never happen (timeout, failed dependency, refused API),
//! 126/127 when the command cannot be executed or found.

pub mod check;
pub mod cli;
pub mod logger;

pub mod init {
    pub mod child;
    pub mod event_loop;
    pub mod install;
    pub mod signals;
}

pub mod rules {
    pub mod coordinator;
    pub mod facts;
    pub mod plan;
    pub mod pod;
    pub mod simulate;
    pub mod spec;
}

pub mod sources {
    pub mod api;
    pub mod probes;
    pub mod state_dir;
}

pub mod client {
    pub mod http;
    pub mod kube;
    pub mod tls;
}

use cli::{Invocation, RunOptions};
use client::kube;
use init::{child, event_loop, install};
use rules::coordinator::{Config, Coordinator};
use rules::{plan, spec};
use sources::state_dir;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exit code for configuration and usage errors.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a start that can never happen, or a failed install.
pub const EXIT_FAILURE: i32 = 1;

/// The target this binary was built for, e.g. `x86_64-unknown-linux-musl`.
pub fn target() -> String {
    let env = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "gnu"
    };
    format!("{}-unknown-linux-{env}", std::env::consts::ARCH)
}

fn env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

fn env_str(name: &str) -> Option<String> {
    env(name).map(|v| v.to_string_lossy().into_owned())
}

/// Everything after the signals are blocked. Returns the exit code.
pub fn entry(argv: Vec<OsString>, inherited: child::Inherited) -> i32 {
    let invocation = match cli::parse(&argv) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("koordinator: {}\nTry 'koordinator --help' for usage.", e.0);
            return EXIT_USAGE;
        }
    };
    let (verbose, quiet) = match &invocation {
        Invocation::Run(o) => (o.verbose, o.quiet),
        _ => (0, false),
    };
    init_logging(verbose, quiet);

    match invocation {
        Invocation::Help => {
            print!("{}", cli::HELP);
            0
        }
        Invocation::Version => {
            println!("koordinator {VERSION} ({})", target());
            0
        }
        Invocation::Install(dir) => match install::install(&dir, argv0(&argv)) {
            Ok(path) => {
                println!(
                    "installed koordinator {VERSION} to {} (state directory {})",
                    path.display(),
                    dir.join(state_dir::DIR_NAME).display()
                );
                0
            }
            Err(e) => {
                eprintln!("koordinator: {e}");
                EXIT_FAILURE
            }
        },
        Invocation::Validate => match load_spec() {
            Ok((spec, _)) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&spec.to_json()).unwrap_or_default()
                );
                0
            }
            Err(e) => {
                eprintln!("koordinator: {e}");
                EXIT_USAGE
            }
        },
        Invocation::Check => check::run(argv0(&argv)),
        Invocation::Run(options) => run(options, inherited, argv0(&argv)),
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let mut warnings = Vec::new();
    let level = match env_str("KOORDINATOR_LOG") {
        None => log::LevelFilter::Info,
        Some(v) => logger::parse_level(&v).unwrap_or_else(|| {
            warnings.push(format!(
                "KOORDINATOR_LOG={v:?} is not off, error, warn, info, debug or trace; using info"
            ));
            log::LevelFilter::Info
        }),
    };
    let format = match env_str("KOORDINATOR_LOG_FORMAT") {
        None => logger::Format::Text,
        Some(v) => logger::parse_format(&v).unwrap_or_else(|| {
            warnings.push(format!(
                "KOORDINATOR_LOG_FORMAT={v:?} is not text or json; using text"
            ));
            logger::Format::Text
        }),
    };
    logger::init(format, logger::adjust(level, verbose, quiet));
    for w in warnings {
        log::warn!("{w}");
    }
}

/// The spec from the environment (an empty spec when none is set), with its text.
pub fn load_spec() -> Result<(spec::Spec, String), spec::SpecError> {
    let text = |name: &str| -> Result<Option<String>, spec::SpecError> {
        match env(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| spec::SpecError(format!("{name} is not valid UTF-8"))),
        }
    };
    let primary = text(spec::ENV)?;
    let alias = text(spec::ENV_ALIAS)?;
    match spec::select(primary.as_deref(), alias.as_deref())? {
        None => Ok((spec::Spec::default(), String::new())),
        Some((text, from_alias)) => {
            if from_alias {
                log::warn!(
                    "{} is the original project's misspelling; it works, but please rename it to {}",
                    spec::ENV_ALIAS,
                    spec::ENV
                );
            }
            Ok((spec::parse(&text)?, text))
        }
    }
}

/// The termination log: the env path (created if need be), else the
/// Kubernetes default, written only when the kubelet has mounted it.
fn termination_log() -> Option<event_loop::TerminationLog> {
    match env("KOORDINATOR_TERMINATION_LOG") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(event_loop::TerminationLog {
            path: PathBuf::from(p),
            create: true,
        }),
        None => Some(event_loop::TerminationLog {
            path: PathBuf::from("/dev/termination-log"),
            create: false,
        }),
    }
}

fn argv0(argv: &[OsString]) -> &Path {
    Path::new(argv.first().map_or(OsStr::new(""), |a| a.as_os_str()))
}

/// This executable's path: /proc/self/exe, else argv[0] when absolute.
pub fn own_exe(argv0: &Path) -> Option<PathBuf> {
    std::fs::read_link("/proc/self/exe")
        .ok()
        .or_else(|| argv0.is_absolute().then(|| argv0.to_path_buf()))
}

/// The state directory in effect, created when named explicitly and missing.
pub fn state_dir_in_effect(argv0: &Path) -> Option<PathBuf> {
    let explicit = env("KOORDINATOR_STATE_DIR");
    let dir = state_dir::locate(explicit.as_deref(), own_exe(argv0).as_deref())?;
    if explicit.is_some() && !dir.is_dir() {
        if let Err(e) = state_dir::create(&dir) {
            log::warn!(
                "KOORDINATOR_STATE_DIR={}: cannot create it ({e}); going on without a state directory",
                dir.display()
            );
            return None;
        }
    }
    Some(dir)
}

fn run(options: RunOptions, inherited: child::Inherited, argv0: &Path) -> i32 {
    let termination_log = termination_log();
    let fail = |code: i32, message: String| {
        log::error!("{message}");
        if let Some(log) = &termination_log {
            log.write(&message);
        }
        code
    };
    let (spec, spec_text) = match load_spec() {
        Ok(s) => s,
        Err(e) => {
            return fail(
                EXIT_USAGE,
                format!("{e}; check it with `koordinator --validate`"),
            )
        }
    };
    if let Some(signal) = options.parent_death_signal {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) };
    }
    // SAFETY: getpid cannot fail; prctl with integer arguments.
    if unsafe { libc::getpid() } != 1 {
        // Orphans of the command are re-parented to us, not to the real PID 1
        // (e.g. the pause container under shareProcessNamespace).
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let kill_group =
        options.kill_group || cli::env_flag(env("KOORDINATOR_KILL_PROCESS_GROUP").as_deref());
    // A plain init touches nothing else: no state directory, no API.
    let coordinates = spec.coordinates() || spec.name.is_some();
    let state_dir = if coordinates {
        state_dir_in_effect(argv0)
    } else {
        None
    };
    let plan = if coordinates {
        match plan::plan(
            &spec,
            kube::credentials(&kube::ProcessEnvironment),
            state_dir,
        ) {
            Ok(p) => p,
            Err(e) => return fail(EXIT_USAGE, format!("configuration error: {e}")),
        }
    } else {
        plan::Plan {
            api: false,
            why: String::new(),
            state_dir: None,
        }
    };
    let target = if plan.api {
        match kube::Target::from_env() {
            Ok(t) => Some(t),
            Err(e) => return fail(EXIT_USAGE, e.to_string()),
        }
    } else {
        None
    };
    let watch_timeout = match env_str("KOORDINATOR_WATCH_TIMEOUT") {
        None => sources::api::DEFAULT_WATCH_TIMEOUT,
        Some(v) => match humantime::parse_duration(v.trim()) {
            Ok(d) if d >= std::time::Duration::from_secs(1) => d,
            _ => {
                return fail(
                    EXIT_USAGE,
                    format!(
                        "KOORDINATOR_WATCH_TIMEOUT={v:?} is not a duration of at least 1s, e.g. \"10m\""
                    ),
                )
            }
        },
    };
    // A plain init follows nothing: no plan to describe, no names to read.
    let named = if coordinates {
        for line in plan.describe(&spec) {
            log::info!("following {line}");
        }
        spec.named_deps()
    } else {
        Vec::new()
    };
    let (reader, records) = match (&plan.state_dir, named.is_empty()) {
        (Some(dir), false) => match state_dir::Reader::open(dir, &named) {
            Ok((reader, records)) => (Some(reader), records),
            Err(e) if plan.api => {
                log::warn!(
                    "cannot follow {}: {e}; following the API only",
                    dir.display()
                );
                (None, Vec::new())
            }
            Err(e) => {
                return fail(
                    EXIT_FAILURE,
                    format!("cannot follow the state directory {}: {e}", dir.display()),
                )
            }
        },
        _ => (None, Vec::new()),
    };

    let mut rewrites = spec.rewrite_signals.clone();
    for (from, to) in options.rewrites.iter() {
        rewrites.insert(*from, *to);
    }
    let probes: Vec<spec::Probe> = spec.probes().cloned().collect();
    let config = Config {
        success_codes: [options.success_codes.as_slice(), &spec.success_exit_codes].concat(),
        rewrites,
        api: plan.api,
        publish: plan.state_dir.is_some(),
        spec,
        spec_text: spec_text.clone(),
        orphan_grace: options.orphan_grace,
        log_level: log::max_level(),
    };
    let setup = event_loop::Setup {
        command: options.command,
        kill_group,
        inherited,
        termination_log,
        state_dir: plan.state_dir,
        reader,
    };
    let coordinator = Coordinator::new(config, Instant::now(), records);
    let result = event_loop::run(coordinator, setup, |notifier| {
        sources::probes::start(probes, &notifier)?;
        match target {
            Some(target) => sources::api::start(target, spec_text, notifier, watch_timeout),
            None => Ok(()),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "koordinator: cannot set up the event loop: {e} ({})",
                setup_hint(&e)
            );
            EXIT_FAILURE
        }
    }
}

/// What to do when the event loop (epoll, signalfd, eventfd, inotify) or a
/// source's thread cannot be set up.
fn setup_hint(e: &std::io::Error) -> &'static str {
    child::limit_hint(e).unwrap_or(match e.raw_os_error() {
        Some(libc::EAGAIN) => {
            "no thread could be started: is the container's process or thread limit (pids.max, ulimit -u) reached?"
        }
        _ => "epoll, signalfd, eventfd or inotify was refused: does a seccomp profile block them?",
    })
}

/// `argv` from the C `main`, byte for byte.
///
/// # Safety
/// `argv` must hold `argc` valid NUL-terminated strings, as given to `main`.
pub unsafe fn argv_from_c(argc: i32, argv: *const *const libc::c_char) -> Vec<OsString> {
    use std::os::unix::ffi::OsStrExt;
    (0..argc.max(0) as usize)
        .map(|i| {
            let arg = std::ffi::CStr::from_ptr(*argv.add(i));
            OsStr::from_bytes(arg.to_bytes()).to_owned()
        })
        .collect()
}
