//! podsim: one pod, run locally as a kubelet would run it, with a fake API
//! server that serves its status. Containers are real processes (each in its
//! own PID namespace when run as root); their statuses come from those
//! processes and their readiness probes.
//!
//! What it does as the kubelet does (read from the kubelet's source):
//! - init containers in order, native sidecars (init containers with
//!   `restartPolicy: Always`) started before the next one and kept running;
//! - restarts per `restartPolicy`, with `restartCount`;
//! - on deletion, the pod's status is written once (with
//!   `deletionTimestamp` and `deletionGracePeriodSeconds`), then every
//!   regular container gets SIGTERM, native sidecars only once the regular
//!   containers have stopped, and SIGKILL after the grace period; **no status
//!   change is published until all containers have stopped** (the kubelet's
//!   `syncTerminatingPod` writes the status, then `killPod` waits for every
//!   container before the status is written again);
//! - `automountServiceAccountToken: false` mounts no token: koordinator has
//!   no API access, exactly as in such a cluster.
//!
//! What differs, on purpose: images are not pulled (a container runs its
//! `command`/`args` on this machine; volume mount paths in argv, env and
//! probes are mapped to per-pod directories), restarts wait 1 s instead of
//! the kubelet's growing back-off, statuses are served at once instead of on
//! the kubelet's next sync, all containers share the host's network
//! namespace, and a preStop hook is not run.

pub mod manifest;
pub mod probe;

use crate::apiserver::{Access, ApiServer};
use manifest::{ContainerSpec, EnvValue, Kind, Manifest, Policy, Volume};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

const RESTART_DELAY: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(10);
const TOKEN: &str = "podsim-token";

pub struct Options {
    /// The binary that images named like `*koordinator*` run, and that
    /// `/bin/koordinator` means.
    pub koordinator: PathBuf,
    /// podsim's own executable, for `podsim-standin` commands.
    pub standin: PathBuf,
    pub delete_after: Option<Duration>,
    pub pid_namespaces: bool,
    pub show_output: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Waiting(&'static str),
    Running { since: Instant, ready: bool },
    Terminated { code: i32 },
}

struct Container {
    spec: ContainerSpec,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    state: State,
    restarts: u32,
    /// Bumped at each start, so exits of an earlier run are told apart.
    generation: u32,
    /// The process to signal (inside `unshare`, its child).
    pid: Option<i32>,
    unshare_pid: Option<i32>,
    restart_at: Option<Instant>,
    next_probe: Option<Instant>,
    probe_failures: u32,
    termination_log: PathBuf,
    killed: bool,
}

struct Exit {
    index: usize,
    generation: u32,
    code: i32,
    /// When the process ended (not when podsim got round to it).
    at: Instant,
}

pub struct Outcome {
    pub phase: String,
    pub requests: usize,
}

pub struct Sim {
    m: Manifest,
    opts: Options,
    dir: PathBuf,
    server: ApiServer,
    containers: Vec<Container>,
    t0: Instant,
    exits_tx: Sender<Exit>,
    exits: Receiver<Exit>,
    phase: String,
    deleted_at: Option<Instant>,
    /// Native sidecars have been sent SIGTERM after a deletion.
    sidecars_stopped: bool,
    stopping_at: Option<Instant>,
    last_status: Value,
}

impl Sim {
    pub fn new(m: Manifest, opts: Options) -> std::io::Result<Sim> {
        let dir = std::env::temp_dir().join(format!("podsim-{}-{}", std::process::id(), m.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("serviceaccount"))?;
        std::fs::create_dir_all(dir.join("podinfo"))?;
        let server = ApiServer::start();
        server.set_token(TOKEN, Access::OnePod(m.name.clone()));
        if m.automount_token {
            std::fs::write(dir.join("serviceaccount/token"), TOKEN)?;
            std::fs::write(dir.join("serviceaccount/ca.crt"), &server.ca_pem)?;
            std::fs::write(dir.join("serviceaccount/namespace"), &m.namespace)?;
        }
        std::fs::write(dir.join("podinfo/name"), &m.name)?;
        std::fs::write(dir.join("podinfo/namespace"), &m.namespace)?;
        for (name, volume) in &m.volumes {
            let path = dir.join("volumes").join(name);
            std::fs::create_dir_all(&path)?;
            if let Volume::Downward(items) = volume {
                for (file, value) in items {
                    std::fs::write(path.join(file), resolve(value, &m))?;
                }
            }
        }
        let (exits_tx, exits) = mpsc::channel();
        let mut sim = Sim {
            containers: Vec::new(),
            m,
            opts,
            dir,
            server,
            t0: Instant::now(),
            exits_tx,
            exits,
            phase: "Pending".into(),
            deleted_at: None,
            sidecars_stopped: false,
            stopping_at: None,
            last_status: Value::Null,
        };
        for spec in sim.m.containers.clone() {
            let c = sim.prepare(spec)?;
            sim.containers.push(c);
        }
        let mut pod = sim.m.pod.clone();
        pod["status"] = sim.status();
        sim.server.create_pod(pod);
        Ok(sim)
    }

    /// argv, env and probes with volume paths mapped and the plumbing added.
    fn prepare(&self, spec: ContainerSpec) -> std::io::Result<Container> {
        let mounts: Vec<(String, String)> = spec
            .mounts
            .iter()
            .map(|(path, vol)| {
                (
                    path.clone(),
                    self.dir.join("volumes").join(vol).display().to_string(),
                )
            })
            .collect();
        let mut argv: Vec<String> = spec.argv.iter().map(|a| map_paths(a, &mounts)).collect();
        if argv[0] == "/bin/koordinator" || argv[0] == "/bin/copy" {
            argv[0] = self.opts.koordinator.display().to_string();
        }
        // Also as koordinator's command: `/koordinator/koordinator -- podsim-standin ...`.
        if let Some(i) = argv.iter().position(|a| a == "podsim-standin") {
            argv[i] = self.opts.standin.display().to_string();
            argv.insert(i + 1, "standin".into());
        }
        let container_dir = self.dir.join("containers").join(&spec.name);
        std::fs::create_dir_all(&container_dir)?;
        let termination_log = container_dir.join("termination-log");
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOSTNAME".into(), self.m.name.clone()),
            ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
            (
                "KUBERNETES_SERVICE_PORT".into(),
                self.server.port.to_string(),
            ),
            (
                "KOORDINATOR_SERVICEACCOUNT_DIR".into(),
                self.dir.join("serviceaccount").display().to_string(),
            ),
            (
                "KOORDINATOR_PODINFO_DIR".into(),
                self.dir.join("podinfo").display().to_string(),
            ),
            (
                "KOORDINATOR_TERMINATION_LOG".into(),
                termination_log.display().to_string(),
            ),
            ("PODSIM_T0_NS".into(), monotonic_ns_at(self.t0).to_string()),
        ];
        for (name, value) in &spec.env {
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), map_paths(&resolve(value, &self.m), &mounts)));
        }
        let mut spec = spec;
        if let Some(p) = &mut spec.readiness {
            if let manifest::Check::Exec(cmd) = &mut p.check {
                *cmd = cmd.iter().map(|a| map_paths(a, &mounts)).collect();
            }
        }
        Ok(Container {
            spec,
            argv,
            env,
            state: State::Waiting("PodInitializing"),
            restarts: 0,
            generation: 0,
            pid: None,
            unshare_pid: None,
            restart_at: None,
            next_probe: None,
            probe_failures: 0,
            termination_log,
            killed: false,
        })
    }

    fn say(&self, line: &str) {
        self.say_at(Instant::now(), line);
    }

    fn say_at(&self, at: Instant, line: &str) {
        println!("+{:.4}s {line}", at.duration_since(self.t0).as_secs_f64());
    }

    fn start(&mut self, i: usize) {
        let opts_pidns = self.opts.pid_namespaces;
        let show = self.opts.show_output;
        let c = &mut self.containers[i];
        let _ = std::fs::remove_file(&c.termination_log);
        let mut cmd = if opts_pidns {
            let mut u = Command::new("unshare");
            u.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
                .args(&c.argv);
            u
        } else {
            let mut d = Command::new(&c.argv[0]);
            d.args(&c.argv[1..]);
            d
        };
        cmd.env_clear()
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.generation += 1;
        c.killed = false;
        let name = c.spec.name.clone();
        let kind = c.spec.kind;
        match cmd.spawn() {
            Ok(mut child) => {
                let pid = child.id() as i32;
                // Output is relayed by its own threads; they report when the
                // container's pipes close, so its last lines are printed
                // before its "terminated" line.
                let (drained_tx, drained) = mpsc::channel::<()>();
                for stream in [
                    Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
                    Box::new(child.stderr.take().unwrap()),
                ] {
                    let (name, t0, drained_tx) = (name.clone(), self.t0, drained_tx.clone());
                    std::thread::spawn(move || {
                        for line in BufReader::new(stream).lines().map_while(Result::ok) {
                            if show {
                                println!("+{:.4}s {name} | {line}", t0.elapsed().as_secs_f64());
                            }
                        }
                        let _ = drained_tx.send(());
                    });
                }
                let (tx, index, generation) = (self.exits_tx.clone(), i, c.generation);
                std::thread::spawn(move || {
                    let code = child.wait().map_or(255, crate::harness::code_of);
                    let at = Instant::now();
                    // A process left behind may hold the pipes open: wait a little, not forever.
                    let deadline = Instant::now() + Duration::from_millis(500);
                    for _ in 0..2 {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if drained.recv_timeout(left).is_err() {
                            break;
                        }
                    }
                    let _ = tx.send(Exit {
                        index,
                        generation,
                        code,
                        at,
                    });
                });
                c.pid = if opts_pidns { None } else { Some(pid) };
                c.unshare_pid = opts_pidns.then_some(pid);
                let ready_at_once = c.spec.readiness.is_none();
                c.next_probe = c
                    .spec
                    .readiness
                    .as_ref()
                    .map(|p| Instant::now() + p.initial_delay);
                c.probe_failures = 0;
                c.state = State::Running {
                    since: Instant::now(),
                    ready: ready_at_once,
                };
                let restarts = c.restarts;
                self.say(&if restarts > 0 {
                    format!("{name} started (restart {restarts})")
                } else {
                    format!("{name} started")
                });
                if ready_at_once && kind != Kind::Init {
                    self.say(&format!("{name} ready"));
                }
            }
            Err(e) => {
                c.state = State::Terminated { code: 128 };
                self.say(&format!("{name} failed to start: {e}"));
            }
        }
    }

    /// The pid to signal: inside `unshare`, the container's PID 1.
    fn target(&mut self, i: usize) -> Option<i32> {
        let c = &mut self.containers[i];
        if c.pid.is_none() {
            let unshare = c.unshare_pid?;
            let deadline = Instant::now() + Duration::from_secs(1);
            while c.pid.is_none() && Instant::now() < deadline {
                let children =
                    std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
                        .unwrap_or_default();
                c.pid = children
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok());
                if c.pid.is_none() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        c.pid.or(c.unshare_pid)
    }

    fn signal(&mut self, i: usize, signal: i32) {
        if !matches!(self.containers[i].state, State::Running { .. }) {
            return;
        }
        if let Some(pid) = self.target(i) {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(pid, signal) };
        }
    }

    fn on_exit(&mut self, e: Exit) {
        let finished = self.finished_phase();
        let deleting = self.deleted_at.is_some();
        let c = &mut self.containers[e.index];
        if e.generation != c.generation {
            return;
        }
        // A container the kubelet SIGKILLed reports 137. (util-linux's
        // `unshare --fork` exits 1 instead of re-raising SIGKILL.)
        let code = if c.killed { 137 } else { e.code };
        c.state = State::Terminated { code };
        c.pid = None;
        c.unshare_pid = None;
        let message = std::fs::read_to_string(&c.termination_log).unwrap_or_default();
        let killed = if c.killed {
            " (SIGKILL after the grace period)"
        } else {
            ""
        };
        let why = if message.trim().is_empty() {
            String::new()
        } else {
            format!(" ({})", message.trim())
        };
        let restart = !deleting
            && finished.is_none()
            && match (c.spec.kind, self.m.policy) {
                (Kind::Sidecar, _) | (Kind::Regular, Policy::Always) => true,
                (_, Policy::Never) => false,
                (_, _) => code != 0,
            };
        let name = c.spec.name.clone();
        if restart {
            c.restart_at = Some(Instant::now() + RESTART_DELAY);
        }
        self.say_at(e.at, &format!("{name} terminated exit={code}{killed}{why}"));
        if restart {
            self.say(&format!(
                "{name} will restart in {}s ({})",
                RESTART_DELAY.as_secs(),
                policy_name(self.m.policy)
            ));
        }
    }

    fn probe(&mut self, i: usize) {
        let c = &self.containers[i];
        let (Some(p), Some(due), State::Running { ready, .. }) =
            (&c.spec.readiness, c.next_probe, &c.state)
        else {
            return;
        };
        if Instant::now() < due {
            return;
        }
        let ok = probe::run(&p.check, &c.env);
        let (was_ready, period, threshold) = (*ready, p.period, p.failure_threshold);
        let name = c.spec.name.clone();
        let c = &mut self.containers[i];
        c.next_probe = Some(Instant::now() + period);
        c.probe_failures = if ok { 0 } else { c.probe_failures + 1 };
        let now_ready = ok || (was_ready && c.probe_failures < threshold);
        if let State::Running { ready, .. } = &mut c.state {
            *ready = now_ready;
        }
        if now_ready != was_ready {
            self.say(&format!(
                "{name} {}",
                if now_ready { "ready" } else { "not ready" }
            ));
        }
    }

    /// Whether a regular container has finished for good under the pod policy.
    fn done_for_good(&self, c: &Container) -> Option<i32> {
        match (&c.state, self.m.policy) {
            (State::Terminated { code }, Policy::Never) => Some(*code),
            (State::Terminated { code: 0 }, Policy::OnFailure) => Some(0),
            (State::Terminated { code }, _) if self.deleted_at.is_some() => Some(*code),
            _ => None,
        }
    }

    /// Succeeded or Failed once the pod can no longer change, else None.
    fn finished_phase(&self) -> Option<&'static str> {
        let init_failed = self.containers.iter().any(|c| {
            c.spec.kind == Kind::Init
                && matches!(c.state, State::Terminated { code } if code != 0)
                && self.m.policy == Policy::Never
        });
        if init_failed {
            return Some("Failed");
        }
        let regular: Vec<&Container> = self
            .containers
            .iter()
            .filter(|c| c.spec.kind == Kind::Regular)
            .collect();
        let codes: Option<Vec<i32>> = regular.iter().map(|c| self.done_for_good(c)).collect();
        codes.map(|codes| {
            if codes.iter().all(|c| *c == 0) {
                "Succeeded"
            } else {
                "Failed"
            }
        })
    }

    /// Starts what should run now: init containers in order, then the rest.
    fn advance(&mut self) {
        let now = Instant::now();
        if self.deleted_at.is_some() || self.stopping_at.is_some() {
            return;
        }
        for i in 0..self.containers.len() {
            if self.containers[i].restart_at.is_some_and(|t| t <= now) {
                self.containers[i].restart_at = None;
                self.containers[i].restarts += 1;
                self.start(i);
            }
        }
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            match (c.spec.kind, &c.state) {
                (Kind::Init | Kind::Sidecar, State::Waiting(_)) => return self.start(i),
                (Kind::Init, State::Terminated { code: 0 }) => continue,
                (Kind::Init, _) => return,
                // Sidecars let the next init container start once started.
                (Kind::Sidecar, _) => continue,
                (Kind::Regular, State::Waiting(_)) => self.start(i),
                (Kind::Regular, _) => {}
            }
        }
    }

    fn status(&self) -> Value {
        let entry = |c: &Container| {
            let (state, ready, started) = match &c.state {
                State::Waiting(reason) => (json!({"waiting": {"reason": reason}}), false, false),
                State::Running { ready, .. } => (
                    json!({"running": {"startedAt": "2026-11-24T00:00:00Z"}}),
                    *ready,
                    true,
                ),
                State::Terminated { code } => {
                    let reason = if *code == 0 { "Completed" } else { "Error" };
                    (
                        json!({"terminated": {"exitCode": code, "reason": reason}}),
                        false,
                        false,
                    )
                }
            };
            json!({"name": c.spec.name, "image": c.spec.image, "ready": ready, "started": started,
                   "restartCount": c.restarts, "state": state})
        };
        let of = |kinds: &[Kind]| -> Vec<Value> {
            self.containers
                .iter()
                .filter(|c| kinds.contains(&c.spec.kind))
                .map(entry)
                .collect()
        };
        json!({"phase": self.phase, "initContainerStatuses": of(&[Kind::Init, Kind::Sidecar]),
               "containerStatuses": of(&[Kind::Regular])})
    }

    /// Serves the current status. While a deleted pod's containers are
    /// being stopped, nothing is published: the kubelet writes the status
    /// once, then waits for every container before it writes it again.
    fn publish(&mut self) {
        if self.deleted_at.is_some() && !self.running().is_empty() {
            return;
        }
        let status = self.status();
        if status == self.last_status {
            return;
        }
        self.last_status = status.clone();
        let (ns, name) = (self.m.namespace.clone(), self.m.name.clone());
        self.server
            .modify_pod(&ns, &name, |pod| pod["status"] = status);
    }

    /// The deletion as the API server and the kubelet write it: the
    /// deletion fields and the status of that moment, in one update.
    fn publish_deletion(&mut self) {
        let status = self.status();
        self.last_status = status.clone();
        let (ns, name) = (self.m.namespace.clone(), self.m.name.clone());
        let grace = self.m.grace.as_secs();
        self.server.modify_pod(&ns, &name, |pod| {
            pod["status"] = status;
            pod["metadata"]["deletionTimestamp"] = json!("2026-11-24T00:00:30Z");
            pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        });
    }

    fn running(&self) -> Vec<usize> {
        (0..self.containers.len())
            .filter(|i| matches!(self.containers[*i].state, State::Running { .. }))
            .collect()
    }

    /// Runs the pod to its end. Returns its final phase.
    pub fn run(mut self) -> Outcome {
        self.say(&format!("pod {}/{} created", self.m.namespace, self.m.name));
        let delete_at = self.opts.delete_after.map(|d| self.t0 + d);
        let mut kill_at = None;
        loop {
            match self.exits.recv_timeout(TICK) {
                Ok(e) => {
                    self.on_exit(e);
                    while let Ok(e) = self.exits.try_recv() {
                        self.on_exit(e);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("the sim holds a sender"),
            }
            let now = Instant::now();
            if delete_at.is_some_and(|t| t <= now) && self.deleted_at.is_none() {
                self.deleted_at = Some(now);
                self.publish_deletion();
                self.say("pod deleted: SIGTERM to every container but native sidecars");
                for i in self.running() {
                    if self.containers[i].spec.kind != Kind::Sidecar {
                        self.signal(i, libc::SIGTERM);
                    }
                }
                kill_at = Some(now + self.m.grace);
            }
            // Native sidecars are stopped once the regular containers have.
            if self.deleted_at.is_some() && !self.sidecars_stopped {
                let regular_running = self
                    .running()
                    .iter()
                    .any(|i| self.containers[*i].spec.kind != Kind::Sidecar);
                if !regular_running {
                    self.sidecars_stopped = true;
                    let sidecars: Vec<usize> = self.running();
                    for i in sidecars.into_iter().rev() {
                        self.say(&format!(
                            "{} stopped by the kubelet (regular containers done)",
                            self.containers[i].spec.name
                        ));
                        self.signal(i, libc::SIGTERM);
                    }
                }
            }
            self.advance();
            for i in self.running() {
                self.probe(i);
            }
            let finished = self.finished_phase();
            let phase = match finished {
                Some(p) => p,
                None if self.containers.iter().any(|c| {
                    c.spec.kind == Kind::Regular && c.state != State::Waiting("PodInitializing")
                }) =>
                {
                    "Running"
                }
                None => "Pending",
            };
            if phase != self.phase {
                self.phase = phase.to_string();
                if finished.is_none() {
                    self.say(&format!("pod {phase}"));
                }
            }
            // A finished pod's sidecars are stopped, as the kubelet does.
            if finished.is_some() && self.stopping_at.is_none() && self.deleted_at.is_none() {
                self.stopping_at = Some(now);
                let sidecars: Vec<usize> = self
                    .running()
                    .into_iter()
                    .filter(|i| self.containers[*i].spec.kind == Kind::Sidecar)
                    .collect();
                for i in sidecars.into_iter().rev() {
                    self.say(&format!(
                        "{} stopped by the kubelet (pod finished)",
                        self.containers[i].spec.name
                    ));
                    self.signal(i, libc::SIGTERM);
                }
                kill_at = Some(now + self.m.grace);
            }
            if kill_at.is_some_and(|t| t <= now) {
                for i in self.running() {
                    self.containers[i].killed = true;
                    self.signal(i, libc::SIGKILL);
                }
                kill_at = None;
            }
            self.publish();
            let over =
                (finished.is_some() || self.deleted_at.is_some()) && self.running().is_empty();
            if over {
                let phase = self.finished_phase().unwrap_or("Failed").to_string();
                self.phase = phase.clone();
                self.publish();
                self.say(&format!("pod {phase}"));
                if self.m.is_job {
                    let verdict = if phase == "Succeeded" {
                        "complete"
                    } else {
                        "failed"
                    };
                    self.say(&format!("job {} {verdict}", self.m.job_name));
                }
                let requests = self.server.requests().len();
                let _ = std::fs::remove_dir_all(&self.dir);
                return Outcome { phase, requests };
            }
        }
    }
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Never => "Never",
        Policy::OnFailure => "restartPolicy OnFailure",
        Policy::Always => "restartPolicy Always",
    }
}

fn resolve(v: &EnvValue, m: &Manifest) -> String {
    match v {
        EnvValue::Literal(s) => s.clone(),
        EnvValue::PodName => m.name.clone(),
        EnvValue::Namespace => m.namespace.clone(),
        EnvValue::PodIp => "127.0.0.1".into(),
    }
}

/// Replaces each volume mount path, where it stands as a path of its own
/// (at the start or after a space, quote, `=` or `:`; followed by the end,
/// `/` or such), with the volume's directory on this machine.
pub fn map_paths(text: &str, mounts: &[(String, String)]) -> String {
    let mut mounts: Vec<&(String, String)> = mounts.iter().filter(|(p, _)| p.len() > 1).collect();
    mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let mut out = String::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    'outer: while i < text.len() {
        let at_boundary = i == 0
            || matches!(
                bytes[i - 1],
                b' ' | b'"' | b'\'' | b'=' | b':' | b'\n' | b'\t' | b';' | b'('
            );
        if at_boundary {
            for (path, host) in &mounts {
                if text[i..].starts_with(path.as_str()) {
                    let end = i + path.len();
                    let ends = end == text.len()
                        || matches!(
                            bytes[end],
                            b'/' | b' ' | b'"' | b'\'' | b';' | b'\n' | b')' | b':'
                        );
                    if ends {
                        out.push_str(host);
                        i = end;
                        continue 'outer;
                    }
                }
            }
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn monotonic_ns_at(t: Instant) -> u64 {
    crate::harness::monotonic_ns() - t.elapsed().as_nanos() as u64
}

/// A path relative to the workspace, for examples and scenarios.
pub fn workspace_path(rel: &str) -> PathBuf {
    crate::harness::workspace_root().join(rel)
}

#[cfg(test)]
mod tests {
    use super::map_paths;

    #[test]
    fn mount_paths_are_mapped_where_they_stand_alone() {
        let m = vec![
            ("/koordinator".to_string(), "/tmp/v/k".to_string()),
            ("/shared".to_string(), "/tmp/v/s".to_string()),
        ];
        assert_eq!(
            map_paths("/koordinator/koordinator", &m),
            "/tmp/v/k/koordinator"
        );
        assert_eq!(map_paths("/koordinator", &m), "/tmp/v/k");
        assert_eq!(
            map_paths("touch /shared/ready; test -f '/shared/x'", &m),
            "touch /tmp/v/s/ready; test -f '/tmp/v/s/x'"
        );
        assert_eq!(
            map_paths("/sharedness /usr/shared", &m),
            "/sharedness /usr/shared"
        );
        assert_eq!(map_paths("X=/shared/a", &m), "X=/tmp/v/s/a");
    }
}
