//! Runs of the coordinator driven by arbitrary bytes, and the invariants
//! every run must keep. The property tests (`make test`, stable) feed it
//! seeded random bytes; the fuzz target `coordinator` feeds it what
//! libFuzzer finds. The binary never calls it; the linker drops it.
//!
//! Invariants, checked after every step:
//! - the command is spawned at most once, never after a stop decision or an exit;
//! - signals go only to a command that runs;
//! - exactly one exit, and no action after it; an exited command means an
//!   exit at once (without `--orphan-grace`);
//! - a stop-dependency stop ends with the configured exit code;
//! - this container's exit is published, with the same code, before the exit;
//! - a deadline that has come is never still due after its timer (no busy loop).

use crate::rules::coordinator::{Action, Config, Coordinator, Event, Published};
use crate::rules::facts::{Observation, Stage};
use crate::rules::pod::Pod;
use crate::rules::spec;
use log::LevelFilter;
use serde_json::json;
use std::time::{Duration, Instant};

/// Choices read from a byte string; zeroes once it is used up.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, at: 0 }
    }

    pub fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// A number in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (usize::from(self.byte()) << 8 | usize::from(self.byte())) % n.max(1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Specs that exercise every rule; a run picks one.
pub const SPECS: &[&str] = &[
    r#"{"name":"me","startDeps":["proxy"],"stopDelay":"2s"}"#,
    r#"{"name":"me","stopDeps":["main"]}"#,
    r#"{"stopDeps":["main","proxy"],"stopOn":"all","termTimeout":"3s"}"#,
    r#"{"startDeps":[{"name":"migrate","condition":"completed"},{"name":"proxy","condition":"started"}],"startTimeout":"5s"}"#,
    r#"{"name":"me","startDeps":[{"tcp":"127.0.0.1:1"},{"http":"http://127.0.0.1:2/"}],"stopDeps":["main"],"startTimeout":"4s"}"#,
    r#"{"stopDeps":["main"],"whenStopDepExited":{"http":{"port":15020}},"termSignal":"SIGQUIT","killedByStopDepExitCode":9}"#,
    r#"{"stopDeps":["main"],"terminatedByStopDepExitCode":-1,"termWaitsForStopDeps":false,"stopDelay":"1s"}"#,
    r#"{"stopDeps":["main"],"restartPolicy":"OnFailure","successExitCodes":[3]}"#,
    r#"{"rewriteSignals":{"TERM":"QUIT"},"stopDelay":"1s","termSignal":"SIGQUIT"}"#,
    "{}",
];

const NAMES: &[&str] = &["main", "proxy", "migrate", "me", "other"];
/// Outside signals, as the signalfd delivers them (never SIGKILL or SIGSTOP).
const SIGNALS: &[i32] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGTTIN,
    libc::SIGWINCH,
];

fn stage(b: &mut Bytes) -> Stage {
    match b.below(4) {
        0 => Stage::Waiting,
        1 => Stage::Running {
            ready: b.byte() % 2 == 0,
        },
        2 => Stage::Exited {
            code: b.pick(&[0, 1, 2, 137, 143]),
            abrupt: false,
        },
        _ => Stage::Exited {
            code: 137,
            abrupt: true,
        },
    }
}

fn observation(b: &mut Bytes) -> Observation {
    Observation {
        restart: b.below(3) as u32,
        stage: stage(b),
    }
}

/// A pod with random statuses for a few containers, sometimes finished or
/// being deleted. The container `me` carries the run's spec.
fn pod(b: &mut Bytes, spec_text: &str) -> Pod {
    let mut statuses = Vec::new();
    for name in NAMES {
        let state = match stage(b) {
            Stage::Waiting => json!({"waiting": {"reason": "ContainerCreating"}}),
            Stage::Running { .. } => json!({"running": {}}),
            Stage::Exited { code, .. } => json!({"terminated": {"exitCode": code}}),
        };
        if b.byte() % 4 != 0 {
            statuses.push(json!({"name": name, "ready": b.byte() % 2 == 0, "restartCount": b.below(3), "state": state}));
        }
    }
    let mut value = json!({
        "metadata": {"name": "pod", "namespace": "ns", "uid": "u", "resourceVersion": "1"},
        "spec": {"restartPolicy": b.pick(&["Never", "OnFailure", "Always"]),
                 "terminationGracePeriodSeconds": b.below(40),
                 "containers": NAMES.iter().map(|n| if *n == "me" {
                     json!({"name": n, "env": [{"name": "KOORDINATOR_SPEC", "value": spec_text}]})
                 } else {
                     json!({"name": n})
                 }).collect::<Vec<_>>()},
        "status": {"phase": b.pick(&["Pending", "Running", "Succeeded", "Failed"]), "containerStatuses": statuses}
    });
    if b.byte() % 5 == 0 {
        value["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        value["metadata"]["deletionGracePeriodSeconds"] = json!(b.below(10));
    }
    serde_json::from_value(value).unwrap_or_default()
}

/// What a run has done so far, for the invariants.
#[derive(Default)]
struct Seen {
    spawned: bool,
    child_alive: bool,
    child_code: Option<i32>,
    stop_decided: bool,
    killed: bool,
    exited: Option<i32>,
    published_exit: Option<i32>,
    decided_without_start: bool,
}

/// One run driven by `data`. `Err` names the invariant broken and the step.
pub fn run(data: &[u8]) -> Result<(), String> {
    let mut b = Bytes::new(data);
    let spec_text = b.pick(SPECS);
    let spec = spec::parse(spec_text).map_err(|e| e.to_string())?;
    let api = !spec.named_deps().is_empty() && b.byte() % 2 == 0;
    let publish = b.byte() % 2 == 0;
    let orphan_grace = if b.byte() % 4 == 0 {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let config = Config {
        rewrites: spec.rewrite_signals.clone(),
        success_codes: spec.success_exit_codes.clone(),
        api,
        spec: spec.clone(),
        spec_text: spec_text.to_string(),
        orphan_grace,
        log_level: if b.byte() % 2 == 0 {
            LevelFilter::Trace
        } else {
            LevelFilter::Off
        },
        publish,
    };
    let t0 = Instant::now();
    let mut now = t0;
    let records = (0..b.below(3))
        .map(|_| (b.pick(NAMES).to_string(), observation(&mut b)))
        .collect();
    let (mut c, actions) = Coordinator::new(config, now, records);
    let mut seen = Seen::default();
    check(&spec, &actions, &mut seen, "start")?;
    let mut step = 0;
    while !b.done() && seen.exited.is_none() {
        step += 1;
        let event = match b.below(11) {
            0 | 1 => Event::Pod(Box::new(pod(&mut b, spec_text))),
            2 | 3 => Event::Record(b.pick(NAMES).to_string(), observation(&mut b)),
            4 => Event::Probe(
                b.below(3),
                if b.byte() % 2 == 0 {
                    Ok(())
                } else {
                    Err("connection refused".into())
                },
            ),
            5 => Event::ApiRefused("403 Forbidden".into()),
            6 => Event::Signal(b.pick(SIGNALS)),
            7 if seen.child_alive => {
                let code = b.pick(&[0, 1, 3, 130, 137, 143]);
                seen.child_alive = false;
                seen.child_code = Some(code);
                Event::ChildExited(code)
            }
            8 if seen.child_code.is_some() => Event::OrphansGone,
            9 => Event::HttpQuitDone(if b.byte() % 2 == 0 {
                Ok(())
            } else {
                Err("refused".into())
            }),
            _ => {
                // Time passes: to the next deadline, or a little.
                now = match c.next_deadline() {
                    Some(d) if b.byte() % 2 == 0 => d.max(now),
                    _ => now + Duration::from_millis(b.below(3000) as u64),
                };
                Event::Timer
            }
        };
        let is_timer = matches!(event, Event::Timer);
        let actions = c.step(event, now);
        check(&spec, &actions, &mut seen, &format!("step {step}"))?;
        if is_timer && seen.exited.is_none() && c.next_deadline().is_some_and(|d| d <= now) {
            // A deadline that stays due would spin the event loop.
            let again = c.step(Event::Timer, now);
            check(
                &spec,
                &again,
                &mut seen,
                &format!("step {step}, timer again"),
            )?;
            if seen.exited.is_none() && c.next_deadline().is_some_and(|d| d <= now) {
                return Err(format!(
                    "step {step}: the deadline {:?} is still due after two timers",
                    c.next_deadline().map(|d| d - t0)
                ));
            }
        }
    }
    Ok(())
}

fn check(spec: &spec::Spec, actions: &[Action], seen: &mut Seen, at: &str) -> Result<(), String> {
    let fail = |what: String| Err(format!("{at}: {what}; actions {actions:?}"));
    for (i, action) in actions.iter().enumerate() {
        if seen.exited.is_some() {
            return fail(format!("action {action:?} after the exit"));
        }
        match action {
            Action::Spawn => {
                if seen.spawned {
                    return fail("spawned twice".into());
                }
                if seen.decided_without_start {
                    return fail("spawned after deciding not to start".into());
                }
                seen.spawned = true;
                seen.child_alive = true;
            }
            Action::Signal(_) | Action::HttpQuit(_) if !seen.child_alive => {
                return fail(format!("{action:?} with no command running"));
            }
            Action::Signal(libc::SIGKILL) if seen.stop_decided => seen.killed = true,
            Action::Report(line) => {
                if line.contains("; stopping the command") {
                    seen.stop_decided = true;
                }
                if !seen.spawned {
                    seen.decided_without_start = true;
                }
            }
            Action::Publish(_, Published::Exited(code)) => seen.published_exit = Some(*code),
            Action::Exit(code) => {
                if i + 1 != actions.len() {
                    return fail("actions after the exit".into());
                }
                if spec.name.is_some() || seen.published_exit.is_some() {
                    if let Some(published) = seen.published_exit {
                        if published != *code {
                            return fail(format!("published exit {published}, exited {code}"));
                        }
                    }
                }
                if seen.stop_decided && seen.child_code.is_some() {
                    let want = if seen.killed {
                        spec.killed_by_stop_dep_exit_code
                    } else if spec.terminated_by_stop_dep_exit_code >= 0 {
                        spec.terminated_by_stop_dep_exit_code
                    } else {
                        *code
                    };
                    if *code != want {
                        return fail(format!("a stop-dependency stop exited {code}, not {want}"));
                    }
                }
                seen.exited = Some(*code);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift: seeded, so a failure names the seed that reproduces it.
    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_runs_keep_every_invariant() {
        for seed in 0..20_000u64 {
            let data = random_bytes(seed, 64 + (seed % 512) as usize);
            if let Err(e) = run(&data) {
                panic!("seed {seed}: {e}");
            }
        }
    }

    #[test]
    fn every_spec_of_the_runs_parses() {
        for s in SPECS {
            spec::parse(s).unwrap();
        }
    }
}
