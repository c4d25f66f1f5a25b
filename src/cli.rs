//! The command line: which of the multi-call modes runs, and the init options.
//!
//! Hand-written, getopt-style (`-gv`, `-e143`, `-e 143`), because the set is
//! small and an argument-parsing crate would cost more than it saves.

use crate::init::signals::{self, Rewrites};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const HELP: &str = "\
koordinator: a PID-1 init that starts and stops the containers of a Kubernetes pod in order

Usage:
  koordinator [OPTIONS] [--] COMMAND [ARG...]  run COMMAND under init and coordination
  koordinator DIR | --install DIR              copy this binary to DIR/koordinator
  copy DIR                                     the same, when invoked as `copy`
  koordinator --validate                       check the spec in KOORDINATOR_SPEC, print it as JSON
  koordinator --check                          diagnose spec, pod identity, API access and RBAC
  koordinator --version | --help

Options:
  -g                      signal the command's whole process group
  -e CODE                 exit 0 when the command exits with CODE (repeatable)
  -r FROM:TO              rewrite signal FROM to TO before forwarding (repeatable)
  -p SIGNAL               receive SIGNAL when koordinator's parent dies
  -s                      accepted for tini compatibility (subreaping is automatic)
  -v / -q                 more log output (repeatable) / errors only
  --orphan-grace DURATION when the command exits, SIGTERM the processes left and
                          wait up to DURATION for them (default 0)

The pod coordination is configured with KOORDINATOR_SPEC (JSON); see the README.
";

#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    Run(RunOptions),
    Install(PathBuf),
    Validate,
    Check,
    Version,
    Help,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub kill_group: bool,
    pub success_codes: Vec<i32>,
    pub rewrites: Rewrites,
    pub parent_death_signal: Option<i32>,
    pub verbose: u8,
    pub quiet: bool,
    pub orphan_grace: Duration,
    pub command: Vec<OsString>,
}

/// A usage error: one line, printed with a hint to `--help`, exit 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Parses the full argv, program name included.
pub fn parse(argv: &[OsString]) -> Result<Invocation, UsageError> {
    // The last component of argv[0] (bytes: no path machinery at start).
    let invoked_as = argv
        .first()
        .and_then(|a| a.as_bytes().rsplit(|&b| b == b'/').next())
        .unwrap_or_default();
    let args = argv.get(1..).unwrap_or_default();

    if invoked_as == b"copy" {
        return match args {
            [dir] => Ok(Invocation::Install(dir.into())),
            _ => Err(UsageError(
                "usage: copy DIR (one directory to install koordinator into)".into(),
            )),
        };
    }
    match args {
        [] => return Err(UsageError("no command given".into())),
        [a] if a == "--help" || a == "-h" => return Ok(Invocation::Help),
        [a] if a == "--version" || a == "-V" => return Ok(Invocation::Version),
        [a] if a == "--validate" => return Ok(Invocation::Validate),
        [a] if a == "--check" => return Ok(Invocation::Check),
        [a, dir] if a == "--install" => return Ok(Invocation::Install(dir.into())),
        [a, ..] if a == "--install" => {
            return Err(UsageError("--install takes exactly one directory".into()))
        }
        // The original project's init-container pattern: `args: [/koordinator]`.
        [dir] if Path::new(dir).is_dir() => return Ok(Invocation::Install(dir.into())),
        _ => {}
    }
    parse_run(args).map(Invocation::Run)
}

fn parse_run(args: &[OsString]) -> Result<RunOptions, UsageError> {
    let mut opts = RunOptions::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        if arg == b"--" {
            break;
        }
        if arg.starts_with(b"--") {
            let text = String::from_utf8_lossy(arg);
            let (name, inline) = match text.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (text.to_string(), None),
            };
            match name.as_str() {
                "--orphan-grace" => {
                    let value = match inline {
                        Some(v) => v,
                        None => take_value(args, &mut i, "--orphan-grace")?,
                    };
                    opts.orphan_grace = humantime::parse_duration(&value).map_err(|e| {
                        UsageError(format!(
                            "--orphan-grace: {value:?} is not a duration ({e}); use e.g. \"5s\" or \"500ms\""
                        ))
                    })?;
                }
                "--help" | "--version" | "--validate" | "--check" | "--install" => {
                    return Err(UsageError(format!("{name} must be the only argument")))
                }
                _ => return Err(UsageError(format!("unknown option {name}"))),
            }
            continue;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            i -= 1; // the command starts here
            break;
        }
        // A cluster of short options: flags, then at most one that takes a value.
        let mut k = 1;
        while k < arg.len() {
            let flag = arg[k] as char;
            k += 1;
            match flag {
                'g' => opts.kill_group = true,
                's' => {}
                'v' => opts.verbose = opts.verbose.saturating_add(1),
                'q' => opts.quiet = true,
                'e' | 'r' | 'p' => {
                    let value = if k < arg.len() {
                        String::from_utf8_lossy(&arg[k..]).into_owned()
                    } else {
                        take_value(args, &mut i, &format!("-{flag}"))?
                    };
                    k = arg.len();
                    apply_valued(&mut opts, flag, &value)?;
                }
                _ => return Err(UsageError(format!("unknown option -{flag}"))),
            }
        }
    }
    opts.command = args[i..].to_vec();
    if opts.command.is_empty() {
        return Err(UsageError("no command given".into()));
    }
    Ok(opts)
}

fn take_value(args: &[OsString], i: &mut usize, option: &str) -> Result<String, UsageError> {
    let value = args
        .get(*i)
        .ok_or_else(|| UsageError(format!("{option} needs a value")))?;
    *i += 1;
    Ok(value.to_string_lossy().into_owned())
}

fn apply_valued(opts: &mut RunOptions, flag: char, value: &str) -> Result<(), UsageError> {
    match flag {
        'e' => {
            let code = value
                .parse::<i32>()
                .ok()
                .filter(|c| (0..=255).contains(c))
                .ok_or_else(|| UsageError(format!("-e: {value:?} is not an exit code (0-255)")))?;
            opts.success_codes.push(code);
        }
        'r' => {
            let (from, to) = signals::parse_rewrite(value).ok_or_else(|| {
                UsageError(format!(
                    "-r: {value:?} is not FROM:TO with two signals, e.g. TERM:QUIT"
                ))
            })?;
            opts.rewrites.insert(from, to);
        }
        'p' => {
            let signal = signals::parse(value)
                .ok_or_else(|| UsageError(format!("-p: unknown signal {value:?}")))?;
            opts.parent_death_signal = Some(signal);
        }
        _ => unreachable!("only valued flags reach here"),
    }
    Ok(())
}

/// True for the environment's spelling of "on" (`1`, `true`, `yes`).
pub fn env_flag(value: Option<&OsStr>) -> bool {
    matches!(
        value
            .map(|v| v.to_string_lossy().trim().to_ascii_lowercase())
            .as_deref(),
        Some("1" | "true" | "yes" | "on")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("koordinator")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn run(args: &[&str]) -> RunOptions {
        match parse(&argv(args)) {
            Ok(Invocation::Run(o)) => o,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn options_end_at_the_first_non_option() {
        let o = run(&["-g", "sh", "-c", "-e"]);
        assert!(o.kill_group);
        assert_eq!(o.command, ["sh", "-c", "-e"]);
    }

    #[test]
    fn double_dash_ends_options() {
        let o = run(&["-v", "--", "-weird-command", "--", "x"]);
        assert_eq!(o.verbose, 1);
        assert_eq!(o.command, ["-weird-command", "--", "x"]);
    }

    #[test]
    fn valued_options_take_attached_or_separate_values() {
        let o = run(&[
            "-e143",
            "-e",
            "2",
            "-r",
            "TERM:QUIT",
            "-pKILL",
            "-vv",
            "true",
        ]);
        assert_eq!(o.success_codes, [143, 2]);
        assert_eq!(o.rewrites.apply(15), 3);
        assert_eq!(o.parent_death_signal, Some(9));
        assert_eq!(o.verbose, 2);
    }

    #[test]
    fn orphan_grace_takes_a_duration_in_both_spellings() {
        assert_eq!(
            run(&["--orphan-grace", "2s", "x"]).orphan_grace,
            Duration::from_secs(2)
        );
        assert_eq!(
            run(&["--orphan-grace=250ms", "x"]).orphan_grace,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        let err = |a: &[&str]| parse(&argv(a)).unwrap_err().0;
        assert_eq!(err(&[]), "no command given");
        assert_eq!(err(&["-g"]), "no command given");
        assert_eq!(err(&["-x", "true"]), "unknown option -x");
        assert_eq!(err(&["--bogus", "true"]), "unknown option --bogus");
        assert_eq!(err(&["-e"]), "-e needs a value");
        assert!(err(&["-e", "300", "true"]).contains("not an exit code"));
        assert!(err(&["-r", "TERM", "true"]).contains("FROM:TO"));
        assert!(err(&["-p", "NOPE", "true"]).contains("unknown signal"));
        assert!(err(&["--orphan-grace", "soon", "true"]).contains("not a duration"));
    }

    #[test]
    fn modes_are_recognised() {
        assert_eq!(parse(&argv(&["--version"])), Ok(Invocation::Version));
        assert_eq!(parse(&argv(&["--validate"])), Ok(Invocation::Validate));
        assert_eq!(parse(&argv(&["--check"])), Ok(Invocation::Check));
        assert_eq!(
            parse(&argv(&["--install", "/x"])),
            Ok(Invocation::Install("/x".into()))
        );
        assert_eq!(parse(&argv(&["/"])), Ok(Invocation::Install("/".into())));
        let copy: Vec<OsString> = ["/bin/copy", "/dest"].iter().map(OsString::from).collect();
        assert_eq!(parse(&copy), Ok(Invocation::Install("/dest".into())));
    }
}
