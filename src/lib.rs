//! koordinator: a PID-1 init (tini-class) that also starts and stops the
//! containers of one Kubernetes pod in order.
//!
//! The file list is the architecture:
//!
//! | file | concern |
//! |---|---|
//! | `main.rs` | process entry: block signals first, then [`entry`] |
//! | `cli.rs` | the command line and its modes |
//! | `logger.rs` | stderr logging, text or JSON |
//! | `signals.rs` | signal names, the blocked mask, rewrite rules |
//! | `child.rs` | starting, signalling and reaping processes |
//! | `install.rs` | `koordinator DIR`: atomic self-copy into a volume |
//! | `spec.rs` | `KOORDINATOR_SPEC`: parsing and validation |
//! | `pod.rs` | the Pod fields we read and what they mean for a dependency |
//! | `coordinator.rs` | every lifecycle rule, as a pure state machine |
//! | `runtime.rs` | the event loop that feeds the coordinator |
//! | `kube.rs` | pod identity and the API client |
//! | `watcher.rs` | the list/watch thread |
//! | `check.rs` | `koordinator --check` |
//!
//! Exit codes are decided in one place, [`entry`]: the command's own code
//! (128+N for signal N), 2 for configuration and usage errors, 1 for a
//! start that can never happen (timeout, failed dependency, refused API),
//! 126/127 when the command cannot be executed or found.

pub mod check;
pub mod child;
pub mod cli;
pub mod coordinator;
pub mod install;
pub mod kube;
pub mod logger;
pub mod pod;
pub mod runtime;
pub mod signals;
pub mod spec;
pub mod watcher;

use cli::{Invocation, RunOptions};
use coordinator::{Config, Coordinator};
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
        Invocation::Install(dir) => match install::install(
            &dir,
            Path::new(argv.first().map_or(OsStr::new(""), |a| a.as_os_str())),
        ) {
            Ok(path) => {
                println!("installed koordinator {VERSION} to {}", path.display());
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
        Invocation::Check => check::run(),
        Invocation::Run(options) => run(options, inherited),
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
/// Kubernetes default only when the kubelet has mounted it.
fn termination_log() -> Option<PathBuf> {
    match env("KOORDINATOR_TERMINATION_LOG") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let default = PathBuf::from("/dev/termination-log");
            default.is_file().then_some(default)
        }
    }
}

fn run(options: RunOptions, inherited: child::Inherited) -> i32 {
    let termination_log = termination_log();
    let fail = |code: i32, message: String| {
        log::error!("{message}");
        if let Some(path) = &termination_log {
            runtime::write_termination_log(path, &message);
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
    let target = if spec.uses_api() {
        match kube::Target::from_env() {
            Ok(t) => Some(t),
            Err(e) => return fail(EXIT_USAGE, e.to_string()),
        }
    } else {
        None
    };
    let watch_timeout = match env_str("KOORDINATOR_WATCH_TIMEOUT") {
        None => watcher::DEFAULT_WATCH_TIMEOUT,
        Some(v) => match humantime::parse_duration(v.trim()) {
            Ok(d) if d >= std::time::Duration::from_secs(1) => d,
            _ => {
                return fail(
                    EXIT_USAGE,
                    format!(
                    "KOORDINATOR_WATCH_TIMEOUT={v:?} is not a duration of at least 1s, e.g. \"5m\""
                ),
                )
            }
        },
    };

    let mut rewrites = spec.rewrite_signals.clone();
    for (from, to) in options.rewrites.iter() {
        rewrites.insert(*from, *to);
    }
    let config = Config {
        success_codes: [options.success_codes.as_slice(), &spec.success_exit_codes].concat(),
        rewrites,
        spec,
        spec_text,
        orphan_grace: options.orphan_grace,
        log_level: log::max_level(),
    };
    let setup = runtime::Setup {
        command: options.command,
        kill_group,
        inherited,
        termination_log,
    };
    let coordinator = Coordinator::new(config, Instant::now());
    let result = runtime::run(coordinator, setup, |notifier| match target {
        Some(target) => watcher::start(target, notifier, watch_timeout),
        None => Ok(()),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "koordinator: cannot set up the event loop: {e} (epoll, signalfd or eventfd was refused: does a seccomp profile block them?)"
            );
            EXIT_FAILURE
        }
    }
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
