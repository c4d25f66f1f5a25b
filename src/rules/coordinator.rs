//! Every lifecycle rule of koordinator, as a pure state machine.
//!
//! `step(event, now)` returns the actions to take; it does no I/O, reads no
//! clock and touches no global, so each rule is a table test that runs in
//! microseconds. The event loop (`init/event_loop.rs`) turns file
//! descriptors into events and actions into system calls.
//!
//! The rules read facts about the containers this one depends on
//! (`facts.rs`), whichever source reported them: the API server's pod
//! status, or the records other koordinators publish in the shared state
//! directory. Probes report whether they have passed. Because each event is
//! evaluated in constant work and never waits on anything, no burst of
//! updates at any moment can block or deadlock it.

use crate::init::signals::{self, Rewrites};
use crate::rules::facts::{self, Observation, Source};
use crate::rules::pod::{self, Pod};
use crate::rules::spec::{Condition, Dependency, HttpQuit, Spec, StopAction, StopOn};
use log::{Level, LevelFilter};
use std::time::{Duration, Instant};

/// How long the API server may refuse us before the command has started.
pub const AUTH_FAILURE_LIMIT: Duration = Duration::from_secs(60);
/// How often a waiting koordinator says what it still waits for.
pub const WAIT_LOG_EVERY: Duration = Duration::from_secs(30);
/// A held `termSignal` is forwarded this long before the kubelet's SIGKILL
/// at the latest (half the grace period when that is shorter), so that the
/// command can still stop gracefully.
pub const HOLD_MARGIN: Duration = Duration::from_secs(5);

/// Everything the coordinator is told up front.
#[derive(Clone, Debug)]
pub struct Config {
    pub spec: Spec,
    /// This container's spec text, to find itself among the pod's containers.
    pub spec_text: String,
    /// `-r` rules merged over the spec's `rewriteSignals`.
    pub rewrites: Rewrites,
    /// `-e` codes plus the spec's `successExitCodes`.
    pub success_codes: Vec<i32>,
    pub orphan_grace: Duration,
    /// Messages above this level are not even formatted: signals and exits
    /// are the hot path of an init.
    pub log_level: LevelFilter,
    /// Named dependencies are followed through the API: the command starts
    /// only after the first pod snapshot has been checked.
    pub api: bool,
    /// A state directory exists: publish this container's state there.
    pub publish: bool,
}

#[derive(Debug)]
pub enum Event {
    /// A pod snapshot from the API server.
    Pod(Box<Pod>),
    /// A container's record in the state directory changed.
    Record(String, Observation),
    /// The probe `index` (among the spec's probes) passed, or failed with a reason.
    Probe(usize, Result<(), String>),
    /// The API server refused us: 401, 403, our pod not found.
    ApiRefused(String),
    /// A signal from outside, as received (before rewriting).
    Signal(i32),
    /// The command exited: its code, or 128+N for signal N.
    ChildExited(i32),
    /// No process is left to wait for after the command exited.
    OrphansGone,
    /// The deadline from `next_deadline` may have passed.
    Timer,
    HttpQuitDone(Result<(), String>),
}

/// This container's state, as published in the state directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Waiting,
    Running,
    Exited(i32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Spawn,
    /// Send a signal to the command (or its process group with `-g`).
    Signal(i32),
    /// Send a signal to every process left behind by the command.
    SignalOrphans(i32),
    HttpQuit(HttpQuit),
    /// One line for the termination log, saying why koordinator decided the outcome.
    Report(String),
    Log(Level, String),
    /// Publish this container's state, under its name, in the state directory.
    Publish(String, Published),
    Exit(i32),
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the start dependencies (or the first pod snapshot).
    Waiting,
    Running {
        /// `termSignal` from outside, to be forwarded at this time (`stopDelay`).
        delayed_term: Option<Instant>,
        /// `termSignal` from outside, held until the stop dependencies exit:
        /// when it arrived, and which signal it was.
        held_term: Option<(Instant, i32)>,
    },
    /// A stop-dependency stop is under way.
    Stopping {
        kill_at: Instant,
        killed: bool,
    },
    /// The command exited; its orphans get `--orphan-grace` to follow.
    Draining {
        code: i32,
        until: Instant,
    },
    Done,
}

#[derive(Debug, Default)]
struct ProbeState {
    passed: bool,
    last_error: Option<String>,
}

#[derive(Debug)]
pub struct Coordinator {
    config: Config,
    phase: Phase,
    validated: bool,
    /// The first pod snapshot has arrived (or the API is not used).
    api_seen: bool,
    pod_finished: bool,
    /// The kubelet's grace period for this pod, when the API told it.
    grace: Option<Duration>,
    containers: Vec<facts::Container>,
    probes: Vec<ProbeState>,
    /// This container's name, from the spec or learned from the pod.
    name: Option<String>,
    published: Published,
    start_deadline: Option<Instant>,
    next_wait_log: Option<Instant>,
    auth_failing_since: Option<Instant>,
    last_auth_error: String,
    /// What the last evaluation still waited for.
    missing: Vec<String>,
}

impl Coordinator {
    /// A coordinator, with what the state directory held at start-up.
    pub fn new(
        config: Config,
        now: Instant,
        records: Vec<(String, Observation)>,
    ) -> (Coordinator, Vec<Action>) {
        let policy = config.spec.local_restart_policy();
        let containers = config
            .spec
            .named_deps()
            .into_iter()
            .map(|n| facts::Container::new(n, policy))
            .collect();
        let probes = config
            .spec
            .probes()
            .map(|_| ProbeState::default())
            .collect();
        let waits = config.spec.coordinates();
        let mut c = Coordinator {
            api_seen: !config.api,
            name: config.spec.name.clone(),
            start_deadline: config.spec.start_timeout.map(|t| now + t),
            next_wait_log: waits.then_some(now + WAIT_LOG_EVERY),
            config,
            phase: Phase::Waiting,
            validated: false,
            pod_finished: false,
            grace: None,
            containers,
            probes,
            published: Published::Waiting,
            auth_failing_since: None,
            last_auth_error: String::new(),
            missing: Vec::new(),
        };
        let mut out = Vec::new();
        c.publish(Published::Waiting, &mut out);
        for (name, observation) in records {
            c.observe(Source::StateDir, &name, observation);
        }
        c.evaluate(now, &mut out);
        if matches!(c.phase, Phase::Waiting) && !c.missing.is_empty() {
            let missing = c.missing.join(", ");
            note(c.config.log_level, &mut out, Level::Info, || {
                format!("waiting for {missing}")
            });
        }
        (c, out)
    }

    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Pod(pod) => self.on_pod(&pod, now, &mut out),
            Event::Record(name, observation) => {
                if self.observe(Source::StateDir, &name, observation) {
                    self.evaluate(now, &mut out);
                }
            }
            Event::Probe(index, result) => self.on_probe(index, result, now, &mut out),
            Event::ApiRefused(message) => {
                if matches!(self.phase, Phase::Waiting) {
                    self.auth_failing_since.get_or_insert(now);
                    self.last_auth_error = message;
                }
            }
            Event::Signal(signal) => self.on_signal(signal, now, &mut out),
            Event::ChildExited(code) => self.on_child_exit(code, now, &mut out),
            Event::OrphansGone => {
                if let Phase::Draining { code, .. } = self.phase {
                    self.exit(code, &mut out);
                }
            }
            Event::Timer => self.on_timer(now, &mut out),
            Event::HttpQuitDone(result) => {
                if let (Phase::Stopping { .. }, Err(e)) = (&self.phase, result) {
                    let signal = self.config.spec.term_signal;
                    note(self.config.log_level, &mut out, Level::Warn, || {
                        format!(
                            "HTTP quit failed ({e}); sending {} instead",
                            signals::name(signal)
                        )
                    });
                    out.push(Action::Signal(signal));
                }
            }
        }
        out
    }

    /// The earliest time at which `Event::Timer` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting => {
                let auth = self.auth_failing_since.map(|t| t + AUTH_FAILURE_LIMIT);
                [self.start_deadline, auth, self.next_wait_log]
                    .into_iter()
                    .flatten()
                    .min()
            }
            Phase::Running {
                delayed_term,
                held_term,
            } => [
                delayed_term,
                held_term.and_then(|h| self.hold_deadline(h.0)),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Stopping { kill_at, killed } => (!killed).then_some(kill_at),
            Phase::Draining { until, .. } => Some(until),
            Phase::Done => None,
        }
    }

    /// When a `termSignal` held since `since` must be forwarded, so that the
    /// command can stop before the kubelet's SIGKILL; `None` when the grace
    /// period is unknown (no API).
    fn hold_deadline(&self, since: Instant) -> Option<Instant> {
        let grace = self.grace?;
        Some(since + grace - HOLD_MARGIN.min(grace / 2))
    }

    /// True once the command has been started (koordinator no longer bails out).
    fn started(&self) -> bool {
        !matches!(self.phase, Phase::Waiting)
    }

    fn publish(&mut self, state: Published, out: &mut Vec<Action>) {
        self.published = state;
        if let (true, Some(name)) = (self.config.publish, &self.name) {
            out.push(Action::Publish(name.clone(), state));
        }
    }

    fn start(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Running {
            delayed_term: None,
            held_term: None,
        };
        out.push(Action::Spawn);
        self.publish(Published::Running, out);
    }

    fn exit(&mut self, code: i32, out: &mut Vec<Action>) {
        self.phase = Phase::Done;
        self.publish(Published::Exited(code), out);
        out.push(Action::Exit(code));
    }

    /// Ends koordinator with a reason that also goes to the termination log.
    fn decide(&mut self, level: Level, reason: String, code: i32, out: &mut Vec<Action>) {
        out.push(Action::Report(reason.clone()));
        note(self.config.log_level, out, level, || reason);
        self.exit(code, out);
    }

    /// Records what a source saw of a container; returns whether it changed.
    fn observe(&mut self, source: Source, name: &str, observation: Observation) -> bool {
        match self.containers.iter_mut().find(|c| c.name == name) {
            Some(c) => c.observe(source, observation),
            None => false,
        }
    }

    fn container(&self, name: &str) -> Option<&facts::Container> {
        self.containers.iter().find(|c| c.name == name)
    }

    fn on_pod(&mut self, pod: &Pod, now: Instant, out: &mut Vec<Action>) {
        self.auth_failing_since = None;
        if !self.validated {
            self.validated = true;
            match pod::validate(pod, &self.config.spec, &self.config.spec_text) {
                Err(e) if !self.started() => {
                    return self.decide(Level::Error, format!("configuration error: {e}"), 2, out);
                }
                Err(_) => {}
                Ok(me) => {
                    if self.name.is_none() && me.is_some() {
                        self.name = me;
                        let state = self.published;
                        self.publish(state, out);
                    }
                }
            }
        }
        self.api_seen = true;
        self.pod_finished = pod.is_finished();
        self.grace = Some(pod.grace_period());
        for c in &mut self.containers {
            c.policy = pod.restart_policy(&c.name);
            if let Some(observation) = pod.observe(&c.name) {
                c.observe(Source::Api, observation);
            }
        }
        self.evaluate(now, out);
    }

    fn on_probe(
        &mut self,
        index: usize,
        result: Result<(), String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(probe) = self.probes.get_mut(index) else {
            return;
        };
        match result {
            Ok(()) => {
                if !probe.passed {
                    probe.passed = true;
                    self.evaluate(now, out);
                }
            }
            Err(e) => {
                probe.last_error = Some(e);
                self.evaluate(now, out);
            }
        }
    }

    /// Applies the rules to what is known now.
    fn evaluate(&mut self, now: Instant, out: &mut Vec<Action>) {
        let exited = self.exited_stop_deps();
        match self.phase {
            Phase::Waiting => {
                if let Some(names) = exited {
                    let code = self.config.spec.terminated_by_stop_dep_exit_code.max(0);
                    let reason = format!(
                        "not starting the command: stop dependency {names} has already exited"
                    );
                    return self.decide(Level::Info, reason, code, out);
                }
                for dep in &self.config.spec.start_deps {
                    let Some((name, Condition::Completed)) = dep.container() else {
                        continue;
                    };
                    let failed = self
                        .container(name)
                        .and_then(|c| c.failed_for_good(self.pod_finished));
                    if let Some(code) = failed {
                        let reason = format!(
                            "start dependency {name:?} terminated with exit code {code} and will not be restarted, so it can never complete; not starting the command"
                        );
                        return self.decide(Level::Error, reason, 1, out);
                    }
                }
                let missing = self.missing_start_deps();
                if missing != self.missing && !missing.is_empty() {
                    note(self.config.log_level, out, Level::Debug, || {
                        format!("waiting for {}", missing.join(", "))
                    });
                }
                self.missing = missing;
                if self.missing.is_empty() {
                    if self.config.spec.coordinates() {
                        note(self.config.log_level, out, Level::Info, || {
                            if self.config.spec.start_deps.is_empty() {
                                "starting the command".into()
                            } else {
                                "start dependencies hold; starting the command".into()
                            }
                        });
                    }
                    self.start(out);
                }
            }
            Phase::Running { .. } => {
                if let Some(names) = exited {
                    self.begin_stop(&names, now, out);
                }
            }
            Phase::Stopping { .. } | Phase::Draining { .. } | Phase::Done => {}
        }
    }

    /// The start dependencies that do not hold, described for the log.
    fn missing_start_deps(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if !self.api_seen {
            missing.push("the first pod snapshot".to_string());
        }
        let mut probe_index = 0;
        for dep in &self.config.spec.start_deps {
            match dep {
                Dependency::Container { name, condition } => {
                    let c = self.container(name);
                    if !c.is_some_and(|c| c.holds(*condition)) {
                        let now = c.map_or("nothing seen yet".into(), |c| c.describe());
                        missing.push(format!("{name} ({}; now {now})", condition.as_str()));
                    }
                }
                Dependency::Probe(p) => {
                    let state = &self.probes[probe_index];
                    probe_index += 1;
                    if !state.passed {
                        missing.push(match &state.last_error {
                            Some(e) => format!("{} (last attempt: {e})", p.target),
                            None => format!("{} (not tried yet)", p.target),
                        });
                    }
                }
            }
        }
        missing
    }

    /// The stop dependencies that have exited for good, when that is enough
    /// under `stopOn`; `None` while the command should keep running.
    fn exited_stop_deps(&self) -> Option<String> {
        let deps = &self.config.spec.stop_deps;
        let exited: Vec<&str> = deps
            .iter()
            .filter(|d| {
                self.container(d)
                    .is_some_and(|c| c.exited_for_good(self.pod_finished).is_some())
            })
            .map(String::as_str)
            .collect();
        let enough = match self.config.spec.stop_on {
            StopOn::Any => !exited.is_empty(),
            StopOn::All => !deps.is_empty() && exited.len() == deps.len(),
        };
        enough.then(|| exited.join(", "))
    }

    fn begin_stop(&mut self, names: &str, now: Instant, out: &mut Vec<Action>) {
        let reason = format!("stop dependency {names} exited; stopping the command");
        out.push(Action::Report(reason.clone()));
        note(self.config.log_level, out, Level::Info, || reason);
        out.push(match self.config.spec.stop_action() {
            StopAction::Signal(s) => Action::Signal(s),
            StopAction::Http(h) => Action::HttpQuit(h),
        });
        self.phase = Phase::Stopping {
            kill_at: now + self.config.spec.term_timeout,
            killed: false,
        };
    }

    fn forward(&self, signal: i32, out: &mut Vec<Action>) {
        if signal == libc::SIGTTIN || signal == libc::SIGTTOU {
            // Job-control stops meant for koordinator's own terminal use; a
            // container has no shell to resume the command, so drop them.
            return;
        }
        let to = self.config.rewrites.apply(signal);
        note(self.config.log_level, out, Level::Debug, || {
            format!("forwarding {}", signals::name(to))
        });
        out.push(Action::Signal(to));
    }

    fn on_signal(&mut self, signal: i32, now: Instant, out: &mut Vec<Action>) {
        let spec = &self.config.spec;
        // The term signal as received, or as rewritten (`-r TERM:QUIT` with
        // `termSignal: SIGQUIT`, for images whose stop signal is TERM).
        let is_term =
            signal == spec.term_signal || self.config.rewrites.apply(signal) == spec.term_signal;
        let grace = self.grace;
        match &mut self.phase {
            Phase::Waiting => {
                if is_term || signal == libc::SIGTERM || signal == libc::SIGINT {
                    note(self.config.log_level, out, Level::Info, || {
                        format!(
                            "received {} before the command started; exiting without starting it",
                            signals::name(signal)
                        )
                    });
                    self.exit(128 + signal, out);
                } else {
                    note(self.config.log_level, out, Level::Debug, || {
                        format!(
                            "ignoring {}: the command has not started",
                            signals::name(signal)
                        )
                    });
                }
            }
            Phase::Running {
                delayed_term,
                held_term,
            } if is_term => {
                if !spec.stop_deps.is_empty() && spec.term_waits_for_stop_deps {
                    if held_term.is_none() {
                        *held_term = Some((now, signal));
                        note(self.config.log_level, out, Level::Info, || {
                            let until = match grace {
                                Some(g) => format!(
                                    ", {} at most (the pod's grace period is {})",
                                    humantime::format_duration(g - HOLD_MARGIN.min(g / 2)),
                                    humantime::format_duration(g)
                                ),
                                None => String::new(),
                            };
                            format!(
                                "holding {} until stop dependencies {} have exited (termWaitsForStopDeps){until}",
                                signals::name(signal),
                                spec.stop_deps.join(", ")
                            )
                        });
                    }
                } else if !spec.stop_delay.is_zero() {
                    if delayed_term.is_none() {
                        *delayed_term = Some(now + spec.stop_delay);
                        note(self.config.log_level, out, Level::Info, || {
                            format!(
                                "delaying {} by {} (stopDelay)",
                                signals::name(signal),
                                humantime::format_duration(spec.stop_delay)
                            )
                        });
                    }
                } else {
                    self.forward(signal, out);
                }
            }
            Phase::Running { .. } | Phase::Stopping { .. } => self.forward(signal, out),
            Phase::Draining { .. } | Phase::Done => {}
        }
    }

    fn on_child_exit(&mut self, code: i32, now: Instant, out: &mut Vec<Action>) {
        let spec = &self.config.spec;
        let mapped = if self.config.success_codes.contains(&code) {
            0
        } else {
            code
        };
        let final_code = match self.phase {
            Phase::Stopping { killed: true, .. } => spec.killed_by_stop_dep_exit_code,
            Phase::Stopping { .. } if spec.terminated_by_stop_dep_exit_code >= 0 => {
                spec.terminated_by_stop_dep_exit_code
            }
            _ => mapped,
        };
        note(self.config.log_level, out, Level::Debug, || {
            format!("command exited with {code}; exiting with {final_code}")
        });
        if self.config.orphan_grace.is_zero() {
            return self.exit(final_code, out);
        }
        self.phase = Phase::Draining {
            code: final_code,
            until: now + self.config.orphan_grace,
        };
        out.push(Action::SignalOrphans(libc::SIGTERM));
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let hold_deadline = match self.phase {
            Phase::Running {
                held_term: Some((since, _)),
                ..
            } => self.hold_deadline(since),
            _ => None,
        };
        match &mut self.phase {
            Phase::Waiting if due(self.start_deadline) => {
                let timeout = self.config.spec.start_timeout.unwrap_or_default();
                let reason = format!(
                    "start dependencies did not hold within startTimeout {}: still waiting for {}; not starting the command",
                    humantime::format_duration(timeout),
                    self.missing.join(", ")
                );
                self.decide(Level::Error, reason, 1, out);
            }
            Phase::Waiting if due(self.auth_failing_since.map(|t| t + AUTH_FAILURE_LIMIT)) => {
                let reason = format!(
                    "the API server has refused access for {}s ({}); not starting the command",
                    AUTH_FAILURE_LIMIT.as_secs(),
                    self.last_auth_error
                );
                self.decide(Level::Error, reason, 1, out);
            }
            Phase::Waiting if due(self.next_wait_log) => {
                self.next_wait_log = Some(now + WAIT_LOG_EVERY);
                let missing = self.missing.join(", ");
                note(self.config.log_level, out, Level::Info, || {
                    format!("still waiting for {missing}")
                });
            }
            Phase::Running {
                held_term: held @ Some(_),
                ..
            } if due(hold_deadline) => {
                let (_, signal) = held.take().unwrap_or((now, self.config.spec.term_signal));
                let deps = self.config.spec.stop_deps.join(", ");
                note(self.config.log_level, out, Level::Warn, || {
                    format!(
                        "forwarding {} now: stop dependencies {deps} have not been seen exiting, and the kubelet's grace period ends soon",
                        signals::name(signal)
                    )
                });
                self.forward(signal, out);
            }
            Phase::Running { delayed_term, .. } if due(*delayed_term) => {
                *delayed_term = None;
                let signal = self.config.spec.term_signal;
                self.forward(signal, out);
            }
            Phase::Stopping { kill_at, killed } if !*killed && *kill_at <= now => {
                *killed = true;
                note(self.config.log_level, out, Level::Warn, || {
                    format!(
                        "the command did not exit within termTimeout {}; sending SIGKILL",
                        humantime::format_duration(self.config.spec.term_timeout)
                    )
                });
                out.push(Action::Signal(libc::SIGKILL));
            }
            Phase::Draining { code, until } if *until <= now => {
                let code = *code;
                note(self.config.log_level, out, Level::Warn, || {
                    "processes left by the command outlived --orphan-grace; exiting".into()
                });
                self.exit(code, out);
            }
            _ => {}
        }
    }
}

/// Adds a log action, formatting the message only when its level is enabled.
fn note(max: LevelFilter, out: &mut Vec<Action>, level: Level, message: impl FnOnce() -> String) {
    if level <= max {
        out.push(Action::Log(level, message()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::facts::Stage;
    use crate::rules::spec;
    use serde_json::json;
    use Action::*;

    /// A scenario: a coordinator for container "me", a clock, and a pod whose
    /// other containers the test moves through their states.
    struct Sim {
        c: Coordinator,
        t0: Instant,
        now: Instant,
        policy: &'static str,
        containers: Vec<(&'static str, serde_json::Value)>,
        spec_text: String,
    }

    /// Container states, as the kubelet reports them.
    fn waiting() -> serde_json::Value {
        json!({"ready": false, "state": {"waiting": {"reason": "ContainerCreating"}}})
    }
    fn running() -> serde_json::Value {
        json!({"ready": false, "started": true, "state": {"running": {}}})
    }
    fn ready() -> serde_json::Value {
        json!({"ready": true, "started": true, "state": {"running": {}}})
    }
    fn exited(code: i32) -> serde_json::Value {
        json!({"ready": false, "started": false, "state": {"terminated": {"exitCode": code}}})
    }

    impl Sim {
        fn new(spec_text: &str) -> Sim {
            Sim::with(spec_text, &[], Duration::ZERO)
        }

        fn with(spec_text: &str, cli_success: &[i32], orphan_grace: Duration) -> Sim {
            let spec = spec::parse(spec_text).unwrap();
            let config = Config {
                rewrites: spec.rewrite_signals.clone(),
                success_codes: [cli_success, &spec.success_exit_codes].concat(),
                api: !spec.named_deps().is_empty(),
                spec,
                spec_text: spec_text.to_string(),
                orphan_grace,
                log_level: LevelFilter::Trace,
                publish: false,
            };
            let t0 = Instant::now();
            let (c, mut initial) = Coordinator::new(config, t0, Vec::new());
            initial.retain(|a| !matches!(a, Log(..)));
            assert!(initial.is_empty() || initial == [Spawn], "{initial:?}");
            let mut sim = Sim {
                c,
                t0,
                now: t0,
                policy: "Never",
                containers: Vec::new(),
                spec_text: spec_text.to_string(),
            };
            if initial == [Spawn] {
                sim.now = t0; // a plain init: spawned at once
            }
            sim
        }

        /// A coordinator without the API, publishing its own state; with
        /// what the state directory held at start-up. Returns the initial actions.
        fn local(spec_text: &str, records: Vec<(String, Observation)>) -> (Sim, Vec<Action>) {
            let spec = spec::parse(spec_text).unwrap();
            let config = Config {
                rewrites: spec.rewrite_signals.clone(),
                success_codes: spec.success_exit_codes.clone(),
                api: false,
                spec,
                spec_text: spec_text.to_string(),
                orphan_grace: Duration::ZERO,
                log_level: LevelFilter::Trace,
                publish: true,
            };
            let t0 = Instant::now();
            let (c, mut initial) = Coordinator::new(config, t0, records);
            initial.retain(|a| !matches!(a, Log(..)));
            let sim = Sim {
                c,
                t0,
                now: t0,
                policy: "Never",
                containers: Vec::new(),
                spec_text: spec_text.to_string(),
            };
            (sim, initial)
        }

        fn record(&mut self, name: &str, restart: u32, stage: Stage) -> Vec<Action> {
            self.send(Event::Record(
                name.to_string(),
                Observation { restart, stage },
            ))
        }

        fn at(&mut self, ms: u64) -> &mut Sim {
            self.now = self.t0 + Duration::from_millis(ms);
            self
        }

        fn set(&mut self, name: &'static str, state: serde_json::Value) -> &mut Sim {
            self.containers.retain(|(n, _)| *n != name);
            self.containers.push((name, state));
            self
        }

        fn pod_json(&self) -> serde_json::Value {
            let mut specs = vec![
                json!({"name": "me", "env": [{"name": "KOORDINATOR_SPEC", "value": self.spec_text}]}),
            ];
            let mut statuses = Vec::new();
            for (name, state) in &self.containers {
                specs.push(json!({"name": name}));
                let mut s = state.clone();
                s["name"] = json!(name);
                statuses.push(s);
            }
            json!({"metadata": {"name": "pod"}, "spec": {"restartPolicy": self.policy, "containers": specs},
                   "status": {"containerStatuses": statuses}})
        }

        fn send(&mut self, event: Event) -> Vec<Action> {
            let mut actions = self.c.step(event, self.now);
            actions.retain(|a| !matches!(a, Log(..)));
            actions
        }

        fn pod(&mut self) -> Vec<Action> {
            let pod: Pod = serde_json::from_value(self.pod_json()).unwrap();
            self.send(Event::Pod(Box::new(pod)))
        }

        fn signal(&mut self, s: i32) -> Vec<Action> {
            self.send(Event::Signal(s))
        }

        fn timer(&mut self) -> Vec<Action> {
            self.send(Event::Timer)
        }

        fn exit(&mut self, code: i32) -> Vec<Action> {
            self.send(Event::ChildExited(code))
        }

        fn deadline_ms(&self) -> Option<u128> {
            self.c.next_deadline().map(|d| (d - self.t0).as_millis())
        }
    }

    fn reports(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Report(r) => Some(r.as_str()),
                _ => None,
            })
            .collect()
    }

    fn without_reports(actions: Vec<Action>) -> Vec<Action> {
        actions
            .into_iter()
            .filter(|a| !matches!(a, Report(_)))
            .collect()
    }

    const SEED_MAIN: &str = r#"{"startDeps":["proxy"],"stopDelay":"10s"}"#;
    const SEED_PROXY: &str = r#"{"stopDeps":["main"]}"#;

    #[test]
    fn plain_init_spawns_at_once_and_passes_the_exit_code_through() {
        let mut s = Sim::new("{}");
        assert_eq!(s.c.next_deadline(), None);
        assert_eq!(s.signal(libc::SIGUSR1), [Signal(libc::SIGUSR1)]);
        assert_eq!(s.exit(42), [Exit(42)]);
    }

    #[test]
    fn starts_once_when_start_deps_hold() {
        let mut s = Sim::new(SEED_MAIN);
        s.set("proxy", waiting());
        assert_eq!(s.pod(), []);
        s.set("proxy", running());
        assert_eq!(s.pod(), []);
        s.set("proxy", ready());
        assert_eq!(s.pod(), [Spawn]);
        assert_eq!(s.pod(), [], "a second snapshot must not start it again");
    }

    #[test]
    fn with_only_stop_deps_it_starts_on_the_first_snapshot() {
        let mut s = Sim::new(SEED_PROXY);
        s.set("main", waiting());
        assert_eq!(s.pod(), [Spawn]);
    }

    #[test]
    fn started_and_completed_conditions() {
        let mut s = Sim::new(
            r#"{"startDeps":[{"name":"a","condition":"started"},{"name":"m","condition":"completed"}]}"#,
        );
        s.set("a", running()).set("m", running());
        assert_eq!(s.pod(), []);
        s.set("m", exited(0));
        assert_eq!(s.pod(), [Spawn]);
    }

    #[test]
    fn a_failed_completed_dependency_ends_with_1_at_once() {
        let mut s = Sim::new(r#"{"startDeps":[{"name":"migrate","condition":"completed"}]}"#);
        s.set("migrate", exited(3));
        let a = s.pod();
        assert_eq!(a.last(), Some(&Exit(1)));
        assert!(reports(&a)[0]
            .contains("\"migrate\" terminated with exit code 3 and will not be restarted"));
    }

    #[test]
    fn a_failed_completed_dependency_under_on_failure_is_awaited() {
        let mut s = Sim::new(r#"{"startDeps":[{"name":"migrate","condition":"completed"}]}"#);
        s.policy = "OnFailure";
        s.set("migrate", exited(3));
        assert_eq!(s.pod(), []);
        s.set("migrate", exited(0));
        assert_eq!(s.pod(), [Spawn]);
    }

    #[test]
    fn stop_dep_already_exited_before_the_first_event_never_starts() {
        // The original missed a stop dependency that exited before it watched.
        let mut s = Sim::new(SEED_PROXY);
        s.set("main", exited(0));
        let a = s.pod();
        assert_eq!(without_reports(a.clone()), [Exit(0)]);
        assert_eq!(
            reports(&a),
            ["not starting the command: stop dependency main has already exited"]
        );
    }

    #[test]
    fn stop_dep_exit_stops_the_sidecar_with_code_0() {
        let mut s = Sim::new(SEED_PROXY);
        s.set("main", running());
        assert_eq!(s.pod(), [Spawn]);
        s.set("main", exited(1));
        let a = s.pod();
        assert_eq!(
            reports(&a),
            ["stop dependency main exited; stopping the command"]
        );
        assert_eq!(without_reports(a), [Signal(libc::SIGTERM)]);
        // The proxy dies of its SIGTERM: 143, reported as 0 so the Job completes.
        assert_eq!(s.exit(143), [Exit(0)]);
    }

    #[test]
    fn stop_dep_stop_kills_after_term_timeout_and_reports_137() {
        let mut s = Sim::new(r#"{"stopDeps":["main"],"termTimeout":"5s"}"#);
        s.set("main", running());
        s.pod();
        s.at(1000).set("main", exited(0));
        s.pod();
        assert_eq!(s.deadline_ms(), Some(6000));
        assert_eq!(s.at(5999).timer(), []);
        assert_eq!(s.at(6000).timer(), [Signal(libc::SIGKILL)]);
        assert_eq!(s.c.next_deadline(), None);
        assert_eq!(s.exit(137), [Exit(137)]);
    }

    #[test]
    fn negative_terminated_code_keeps_the_commands_own_code() {
        let mut s = Sim::new(
            r#"{"stopDeps":["main"],"whenStopDepExited":{"signal":"SIGINT"},"terminatedByStopDepExitCode":-1}"#,
        );
        s.set("main", running());
        s.pod();
        s.set("main", exited(0));
        assert_eq!(without_reports(s.pod()), [Signal(libc::SIGINT)]);
        assert_eq!(s.exit(130), [Exit(130)]);
    }

    #[test]
    fn custom_exit_codes_after_a_stop() {
        let mut s = Sim::new(
            r#"{"stopDeps":["main"],"terminatedByStopDepExitCode":7,"killedByStopDepExitCode":9,"termTimeout":"1s"}"#,
        );
        s.set("main", running());
        s.pod();
        s.set("main", exited(0));
        s.pod();
        assert_eq!(s.exit(1), [Exit(7)]);

        let mut s =
            Sim::new(r#"{"stopDeps":["main"],"killedByStopDepExitCode":9,"termTimeout":"1s"}"#);
        s.set("main", running());
        s.pod();
        s.set("main", exited(0));
        s.pod();
        s.at(1000).timer();
        assert_eq!(s.exit(137), [Exit(9)]);
    }

    #[test]
    fn stop_on_all_waits_for_every_stop_dep() {
        let mut s = Sim::new(r#"{"stopDeps":["a","b"],"stopOn":"all"}"#);
        s.set("a", running()).set("b", running());
        s.pod();
        s.set("a", exited(0));
        assert_eq!(s.pod(), []);
        s.set("b", exited(0));
        assert_eq!(without_reports(s.pod()), [Signal(libc::SIGTERM)]);
    }

    #[test]
    fn stop_on_any_stops_on_the_first() {
        let mut s = Sim::new(r#"{"stopDeps":["a","b"]}"#);
        s.set("a", running()).set("b", running());
        s.pod();
        s.set("b", exited(0));
        assert_eq!(without_reports(s.pod()), [Signal(libc::SIGTERM)]);
    }

    #[test]
    fn on_failure_main_that_fails_and_restarts_keeps_its_sidecar() {
        let mut s = Sim::new(SEED_PROXY);
        s.policy = "OnFailure";
        s.set("main", running());
        s.pod();
        s.set("main", exited(1));
        assert_eq!(
            s.pod(),
            [],
            "a failed OnFailure container will be restarted"
        );
        s.set("main", running());
        assert_eq!(s.pod(), []);
        s.set("main", exited(0));
        assert_eq!(without_reports(s.pod()), [Signal(libc::SIGTERM)]);
    }

    #[test]
    fn a_stop_dep_in_init_container_statuses_counts() {
        let mut s = Sim::new(r#"{"startDeps":["sidecar"]}"#);
        let pod: Pod = serde_json::from_value(json!({
            "spec": {"containers": [{"name": "me"}], "initContainers": [{"name": "sidecar", "restartPolicy": "Always"}]},
            "status": {"initContainerStatuses": [{"name": "sidecar", "ready": true}]}
        }))
        .unwrap();
        assert_eq!(s.send(Event::Pod(Box::new(pod))), [Spawn]);
    }

    #[test]
    fn http_stop_action_falls_back_to_term_signal_on_failure() {
        let mut s = Sim::new(
            r#"{"stopDeps":["main"],"whenStopDepExited":{"http":{"port":15020}},"termSignal":"SIGQUIT"}"#,
        );
        s.set("main", running());
        s.pod();
        s.set("main", exited(0));
        let a = without_reports(s.pod());
        assert!(matches!(&a[..], [HttpQuit(h)] if h.port == 15020 && h.path == "/quitquitquit"));
        assert_eq!(
            s.send(Event::HttpQuitDone(Err("connection refused".into()))),
            [Signal(libc::SIGQUIT)]
        );
        assert_eq!(s.exit(0), [Exit(0)]);
    }

    #[test]
    fn http_stop_action_success_sends_nothing_more() {
        let mut s = Sim::new(r#"{"stopDeps":["main"],"whenStopDepExited":{"http":{"port":1}}}"#);
        s.set("main", running());
        s.pod();
        s.set("main", exited(0));
        s.pod();
        assert_eq!(s.send(Event::HttpQuitDone(Ok(()))), []);
    }

    #[test]
    fn start_timeout_exits_1_naming_what_is_missing() {
        let mut s = Sim::new(r#"{"startDeps":["proxy"],"startTimeout":"2s"}"#);
        assert_eq!(s.deadline_ms(), Some(2000));
        s.set("proxy", running());
        s.pod();
        assert_eq!(s.at(1999).timer(), []);
        let a = s.at(2000).timer();
        assert_eq!(a.last(), Some(&Exit(1)));
        assert_eq!(
            reports(&a),
            ["start dependencies did not hold within startTimeout 2s: still waiting for proxy (ready; now running); not starting the command"]
        );
    }

    #[test]
    fn start_timeout_without_any_snapshot_says_so() {
        let mut s = Sim::new(r#"{"startDeps":["proxy"],"startTimeout":"1s"}"#);
        let a = s.at(1000).timer();
        assert!(reports(&a)[0].contains("still waiting for the first pod snapshot"));
    }

    #[test]
    fn sigterm_while_waiting_exits_128_plus_n_without_starting() {
        let mut s = Sim::new(SEED_MAIN);
        assert_eq!(s.signal(libc::SIGTERM), [Exit(143)]);
        s.set("proxy", ready());
        assert_eq!(s.pod(), [], "never started after exiting");

        let mut s = Sim::new(SEED_MAIN);
        assert_eq!(s.signal(libc::SIGINT), [Exit(130)]);
    }

    #[test]
    fn other_signals_while_waiting_are_ignored() {
        let mut s = Sim::new(SEED_MAIN);
        assert_eq!(s.signal(libc::SIGHUP), []);
        assert_eq!(s.signal(libc::SIGUSR1), []);
    }

    #[test]
    fn stop_delay_holds_term_while_other_signals_pass() {
        let mut s = Sim::new(SEED_MAIN);
        s.set("proxy", ready());
        s.pod();
        assert_eq!(s.at(100).signal(libc::SIGTERM), []);
        assert_eq!(s.deadline_ms(), Some(10_100));
        assert_eq!(s.at(200).signal(libc::SIGUSR1), [Signal(libc::SIGUSR1)]);
        assert_eq!(
            s.at(300).signal(libc::SIGTERM),
            [],
            "a second TERM does not restart the delay"
        );
        assert_eq!(s.deadline_ms(), Some(10_100));
        assert_eq!(s.at(10_100).timer(), [Signal(libc::SIGTERM)]);
        assert_eq!(s.c.next_deadline(), None);
    }

    #[test]
    fn child_exit_during_stop_delay_exits_at_once() {
        let mut s = Sim::new(SEED_MAIN);
        s.set("proxy", ready());
        s.pod();
        s.signal(libc::SIGTERM);
        assert_eq!(s.at(50).exit(0), [Exit(0)]);
        assert_eq!(s.c.next_deadline(), None);
    }

    #[test]
    fn term_waits_for_stop_deps_then_stops_as_a_stop_dep_stop() {
        let mut s = Sim::new(SEED_PROXY);
        s.set("main", running());
        s.pod();
        assert_eq!(s.signal(libc::SIGTERM), [], "held while main runs");
        assert_eq!(
            s.deadline_ms(),
            Some(25_000),
            "at most until 5 s before the kubelet's SIGKILL (grace 30 s)"
        );
        s.set("main", exited(0));
        assert_eq!(without_reports(s.pod()), [Signal(libc::SIGTERM)]);
        assert_eq!(s.exit(143), [Exit(0)]);
    }

    #[test]
    fn without_term_waits_term_is_forwarded() {
        let mut s = Sim::new(r#"{"stopDeps":["main"],"termWaitsForStopDeps":false}"#);
        s.set("main", running());
        s.pod();
        assert_eq!(s.signal(libc::SIGTERM), [Signal(libc::SIGTERM)]);
        assert_eq!(
            s.exit(143),
            [Exit(143)],
            "an outside stop is not a stop-dependency stop"
        );
    }

    #[test]
    fn rewrites_apply_to_forwarded_signals_and_tty_stops_are_dropped() {
        let mut s = Sim::new(r#"{"rewriteSignals":{"TERM":"QUIT"}}"#);
        assert_eq!(s.signal(libc::SIGTERM), [Signal(libc::SIGQUIT)]);
        assert_eq!(s.signal(libc::SIGTTIN), []);
        assert_eq!(s.signal(libc::SIGTTOU), []);
        assert_eq!(s.signal(libc::SIGWINCH), [Signal(libc::SIGWINCH)]);
    }

    #[test]
    fn a_signal_rewritten_to_the_term_signal_is_delayed_too() {
        // TERM from a runtime that ignores the image's STOPSIGNAL, rewritten
        // to QUIT; or QUIT itself: both are the term signal, both delayed.
        for incoming in [libc::SIGTERM, libc::SIGQUIT] {
            let mut s = Sim::new(
                r#"{"stopDelay":"1s","termSignal":"SIGQUIT","rewriteSignals":{"TERM":"QUIT"}}"#,
            );
            assert_eq!(s.signal(incoming), [], "signal {incoming} is delayed");
            assert_eq!(s.at(1000).timer(), [Signal(libc::SIGQUIT)]);
        }
    }

    #[test]
    fn success_exit_codes_map_to_0() {
        let mut s = Sim::with(r#"{"successExitCodes":[3]}"#, &[143], Duration::ZERO);
        assert_eq!(s.exit(143), [Exit(0)]);
        let mut s = Sim::with(r#"{"successExitCodes":[3]}"#, &[143], Duration::ZERO);
        assert_eq!(s.exit(3), [Exit(0)]);
        let mut s = Sim::with("{}", &[143], Duration::ZERO);
        assert_eq!(s.exit(1), [Exit(1)]);
    }

    #[test]
    fn orphan_grace_terms_the_rest_and_waits_for_them() {
        let mut s = Sim::with("{}", &[], Duration::from_secs(2));
        assert_eq!(s.exit(5), [SignalOrphans(libc::SIGTERM)]);
        assert_eq!(s.deadline_ms(), Some(2000));
        assert_eq!(s.send(Event::OrphansGone), [Exit(5)]);

        let mut s = Sim::with("{}", &[], Duration::from_secs(2));
        s.exit(5);
        assert_eq!(s.at(2000).timer(), [Exit(5)]);
    }

    #[test]
    fn a_burst_of_updates_while_stopping_changes_nothing() {
        // The original could deadlock on a burst of pod updates while stopping.
        let mut s = Sim::new(SEED_PROXY);
        s.set("main", running());
        s.pod();
        s.set("main", exited(0));
        assert_eq!(without_reports(s.pod()), [Signal(libc::SIGTERM)]);
        for i in 0..10_000 {
            s.set("main", if i % 2 == 0 { running() } else { exited(0) });
            assert_eq!(s.pod(), []);
        }
        assert_eq!(s.exit(143), [Exit(0)]);
    }

    #[test]
    fn unknown_dependency_name_is_a_configuration_error() {
        let mut s = Sim::new(r#"{"startDeps":["prxy"]}"#);
        s.set("proxy", ready());
        let a = s.pod();
        assert_eq!(a.last(), Some(&Exit(2)));
        assert!(reports(&a)[0]
            .starts_with(r#"configuration error: start dependency "prxy" is not a container"#));
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let mut s = Sim::new(r#"{"startDeps":["me"]}"#);
        let a = s.pod();
        assert_eq!(a.last(), Some(&Exit(2)));
        assert!(reports(&a)[0].contains("form a cycle: me -> me"));
    }

    #[test]
    fn auth_failures_for_60s_before_start_exit_1() {
        let mut s = Sim::new(SEED_MAIN);
        assert_eq!(s.send(Event::ApiRefused("403 Forbidden".into())), []);
        assert_eq!(s.deadline_ms(), Some(30_000), "first, a wait-log line");
        s.at(30_000).send(Event::ApiRefused("403 Forbidden".into()));
        assert_eq!(s.timer(), [], "the wait log only");
        assert_eq!(
            s.deadline_ms(),
            Some(60_000),
            "measured from the first failure"
        );
        let a = s.at(60_000).timer();
        assert_eq!(a.last(), Some(&Exit(1)));
        assert!(reports(&a)[0].contains("refused access for 60s (403 Forbidden)"));
    }

    #[test]
    fn a_pod_snapshot_resets_the_auth_failure_clock() {
        let mut s = Sim::new(SEED_MAIN);
        s.send(Event::ApiRefused("401".into()));
        s.at(10_000).set("proxy", running());
        s.pod();
        assert_eq!(s.deadline_ms(), Some(30_000), "the wait log's only");
        assert_eq!(s.at(70_000).timer(), []);
    }

    #[test]
    fn auth_failures_after_start_never_end_it() {
        let mut s = Sim::new(SEED_PROXY);
        s.set("main", running());
        s.pod();
        s.send(Event::ApiRefused("403".into()));
        assert_eq!(s.c.next_deadline(), None);
        assert_eq!(s.at(120_000).timer(), []);
    }

    fn rec_exited(code: i32) -> Stage {
        Stage::Exited {
            code,
            abrupt: false,
        }
    }
    const ABRUPT: Stage = Stage::Exited {
        code: 137,
        abrupt: true,
    };

    #[test]
    fn local_mode_publishes_waiting_running_and_the_exit_code() {
        let (mut s, initial) = Sim::local(r#"{"name":"main"}"#, Vec::new());
        assert_eq!(
            initial,
            [
                Publish("main".into(), Published::Waiting),
                Spawn,
                Publish("main".into(), Published::Running)
            ]
        );
        assert_eq!(
            s.exit(3),
            [Publish("main".into(), Published::Exited(3)), Exit(3)]
        );
    }

    #[test]
    fn a_local_record_of_an_exit_stops_the_sidecar() {
        let (mut s, initial) = Sim::local(r#"{"stopDeps":["main"]}"#, Vec::new());
        assert_eq!(initial, [Spawn], "no name: nothing to publish");
        assert_eq!(s.record("main", 0, Stage::Running { ready: false }), []);
        let a = s.record("main", 0, rec_exited(1));
        assert_eq!(without_reports(a), [Signal(libc::SIGTERM)]);
        assert_eq!(s.exit(143), [Exit(0)]);
    }

    #[test]
    fn an_abrupt_death_counts_as_an_exit_unless_it_will_be_restarted() {
        let (mut s, _) = Sim::local(r#"{"stopDeps":["main"]}"#, Vec::new());
        assert_eq!(
            without_reports(s.record("main", 0, ABRUPT)),
            [Signal(libc::SIGTERM)]
        );

        let (mut s, _) = Sim::local(
            r#"{"stopDeps":["main"],"restartPolicy":"OnFailure"}"#,
            Vec::new(),
        );
        assert_eq!(s.record("main", 0, ABRUPT), [], "main will be restarted");
        assert_eq!(s.record("main", 1, Stage::Waiting), []);
        assert_eq!(s.record("main", 1, Stage::Running { ready: false }), []);
        assert_eq!(s.record("main", 1, rec_exited(2)), [], "failed again");
        assert_eq!(
            without_reports(s.record("main", 2, rec_exited(0))),
            [Signal(libc::SIGTERM)],
            "succeeded: it will not come back"
        );
    }

    #[test]
    fn a_stop_dep_already_exited_in_the_state_directory_means_no_start() {
        let records = vec![(
            "main".to_string(),
            Observation {
                restart: 0,
                stage: rec_exited(0),
            },
        )];
        let (_, initial) = Sim::local(r#"{"name":"proxy","stopDeps":["main"]}"#, records);
        assert_eq!(
            without_reports(initial),
            [
                Publish("proxy".into(), Published::Waiting),
                Publish("proxy".into(), Published::Exited(0)),
                Exit(0)
            ]
        );
    }

    #[test]
    fn local_start_dependencies_started_and_completed() {
        let (mut s, initial) = Sim::local(
            r#"{"startDeps":[{"name":"db","condition":"started"},{"name":"migrate","condition":"completed"}]}"#,
            Vec::new(),
        );
        assert_eq!(initial, []);
        assert_eq!(s.record("db", 0, Stage::Running { ready: false }), []);
        assert_eq!(s.record("migrate", 0, Stage::Running { ready: false }), []);
        assert_eq!(s.record("migrate", 0, rec_exited(0)), [Spawn]);

        let (mut s, _) = Sim::local(
            r#"{"startDeps":[{"name":"migrate","condition":"completed"}]}"#,
            Vec::new(),
        );
        let a = s.record("migrate", 0, rec_exited(4));
        assert_eq!(a.last(), Some(&Exit(1)));
        assert!(reports(&a)[0].contains("\"migrate\" terminated with exit code 4"));
    }

    #[test]
    fn probes_gate_the_start_and_their_last_error_is_reported() {
        let (mut s, initial) = Sim::local(
            r#"{"startDeps":[{"tcp":"127.0.0.1:5432"},{"http":"http://127.0.0.1:9090/ready"}],"startTimeout":"3s"}"#,
            Vec::new(),
        );
        assert_eq!(initial, []);
        assert_eq!(s.send(Event::Probe(0, Ok(()))), []);
        assert_eq!(s.send(Event::Probe(1, Err("HTTP 503".into()))), []);
        let a = s.at(3000).timer();
        assert_eq!(a.last(), Some(&Exit(1)));
        assert_eq!(
            reports(&a),
            ["start dependencies did not hold within startTimeout 3s: still waiting for http://127.0.0.1:9090/ready (last attempt: HTTP 503); not starting the command"]
        );

        let (mut s, _) = Sim::local(r#"{"startDeps":[{"file":"/ready"}]}"#, Vec::new());
        assert_eq!(s.send(Event::Probe(0, Err("does not exist".into()))), []);
        assert_eq!(s.send(Event::Probe(0, Ok(()))), [Spawn]);
        assert_eq!(s.send(Event::Probe(0, Ok(()))), [], "started once");
    }

    #[test]
    fn a_named_api_dependency_and_a_probe_must_both_hold() {
        let mut s = Sim::new(r#"{"startDeps":["proxy",{"tcp":"127.0.0.1:1"}]}"#);
        s.set("proxy", ready());
        assert_eq!(s.pod(), []);
        assert_eq!(s.send(Event::Probe(0, Ok(()))), [Spawn]);
    }

    #[test]
    fn the_state_directory_wins_over_a_lagging_api() {
        let mut s = Sim::new(r#"{"stopDeps":["a","b"],"stopOn":"all"}"#);
        s.set("a", running()).set("b", running());
        assert_eq!(s.pod(), [Spawn]);
        assert_eq!(s.record("a", 0, rec_exited(0)), []);
        assert_eq!(s.pod(), [], "the API still shows a running: a stays exited");
        s.set("b", exited(0));
        assert_eq!(without_reports(s.pod()), [Signal(libc::SIGTERM)]);
    }

    #[test]
    fn records_of_containers_not_depended_on_are_ignored() {
        let (mut s, _) = Sim::local(r#"{"stopDeps":["main"]}"#, Vec::new());
        assert_eq!(s.record("other", 0, rec_exited(0)), []);
    }

    #[test]
    fn the_own_name_is_learnt_from_the_pod_and_published() {
        let spec = SEED_PROXY;
        let config = Config {
            rewrites: Rewrites::default(),
            success_codes: Vec::new(),
            api: true,
            spec: spec::parse(spec).unwrap(),
            spec_text: spec.into(),
            orphan_grace: Duration::ZERO,
            log_level: LevelFilter::Off,
            publish: true,
        };
        let t0 = Instant::now();
        let (mut c, initial) = Coordinator::new(config, t0, Vec::new());
        assert_eq!(initial, [], "no name yet, nothing published");
        let pod: Pod = serde_json::from_value(json!({
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "proxy", "env": [{"name": "KOORDINATOR_SPEC", "value": spec}]}, {"name": "main"}]},
            "status": {"containerStatuses": [{"name": "main", "state": {"running": {}}}]}
        }))
        .unwrap();
        assert_eq!(
            c.step(Event::Pod(Box::new(pod)), t0),
            [
                Publish("proxy".into(), Published::Waiting),
                Spawn,
                Publish("proxy".into(), Published::Running)
            ]
        );
    }

    #[test]
    fn a_held_sigterm_follows_the_deletion_grace_period() {
        let mut s = Sim::new(SEED_PROXY);
        s.set("main", running());
        s.pod();
        assert_eq!(s.at(1000).signal(libc::SIGTERM), []);
        assert_eq!(s.deadline_ms(), Some(26_000), "the spec's 30 s grace");
        // The deletion event, with a shorter grace, arrives after the signal.
        let mut pod = s.pod_json();
        pod["metadata"]["deletionTimestamp"] = json!("2026-11-24T12:00:00Z");
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(4);
        s.send(Event::Pod(Box::new(serde_json::from_value(pod).unwrap())));
        assert_eq!(s.deadline_ms(), Some(3_000), "1 s + 4 s - min(5 s, 2 s)");
        assert_eq!(s.at(2_999).timer(), []);
        assert_eq!(s.at(3_000).timer(), [Signal(libc::SIGTERM)]);
        assert_eq!(s.c.next_deadline(), None);
        assert_eq!(s.exit(143), [Exit(143)], "not a stop-dependency stop");
    }

    #[test]
    fn without_the_api_a_held_sigterm_waits_for_the_stop_dependency() {
        let (mut s, _) = Sim::local(r#"{"stopDeps":["main"]}"#, Vec::new());
        assert_eq!(s.signal(libc::SIGTERM), []);
        assert_eq!(s.c.next_deadline(), None, "no grace period known");
        assert_eq!(
            without_reports(s.record("main", 0, rec_exited(0))),
            [Signal(libc::SIGTERM)]
        );
        assert_eq!(s.exit(143), [Exit(0)]);
    }
}
