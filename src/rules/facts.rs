//! What koordinator knows about each container it depends on.
//!
//! Two sources report on containers: the API server (pod status) and the
//! shared state directory (records the containers' own koordinators
//! publish). Each reports observations in its own order; they are kept side
//! by side, and a fact that either source reports counts: the first source
//! to see a container exit wins. (The API lags by the kubelet's status
//! period in normal operation, and shows nothing at all while a pod
//! terminates; the state directory shows an exit within a millisecond, but
//! only for containers that koordinator wraps.)
//!
//! Restart numbers are not compared across sources: they can disagree (a
//! container that died before it could publish). Within one source the
//! newest observation replaces the older one.

use crate::rules::spec::Condition;

/// Where an observation came from. The rules do not care which; they keep
/// one slot per source so that a lagging source cannot undo what the other
/// reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Api = 0,
    StateDir = 1,
}

/// What the kubelet does when a container ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

impl RestartPolicy {
    pub fn parse(text: &str) -> Option<RestartPolicy> {
        match text {
            "Never" => Some(RestartPolicy::Never),
            "OnFailure" => Some(RestartPolicy::OnFailure),
            "Always" => Some(RestartPolicy::Always),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "Never",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Always => "Always",
        }
    }
}

/// A container's state as one source saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    Waiting,
    /// `ready` is known only to the API (a kubelet probe result).
    Running {
        ready: bool,
    },
    /// `abrupt`: its koordinator died without saying how (SIGKILL, OOM kill);
    /// the code is then 137, as the kubelet would report it.
    Exited {
        code: i32,
        abrupt: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// How often the container has been restarted (0 for the first run).
    pub restart: u32,
    pub stage: Stage,
}

impl Observation {
    pub fn exited(&self) -> Option<i32> {
        match self.stage {
            Stage::Exited { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Everything known about one container.
#[derive(Clone, Debug)]
pub struct Container {
    pub name: String,
    pub policy: RestartPolicy,
    seen: [Option<Observation>; 2],
}

impl Container {
    pub fn new(name: &str, policy: RestartPolicy) -> Container {
        Container {
            name: name.to_string(),
            policy,
            seen: [None, None],
        }
    }

    /// Records an observation; returns whether anything changed.
    pub fn observe(&mut self, source: Source, observation: Observation) -> bool {
        let slot = &mut self.seen[source as usize];
        if slot.as_ref() == Some(&observation) {
            return false;
        }
        *slot = Some(observation);
        true
    }

    pub fn seen(&self, source: Source) -> Option<&Observation> {
        self.seen[source as usize].as_ref()
    }

    fn any(&self, f: impl Fn(&Observation) -> bool) -> bool {
        self.seen.iter().flatten().any(f)
    }

    /// Whether a start dependency on this container holds.
    pub fn holds(&self, condition: Condition) -> bool {
        match condition {
            // Readiness is a kubelet probe result: only the API knows it.
            Condition::Ready => self
                .seen(Source::Api)
                .is_some_and(|o| o.stage == Stage::Running { ready: true }),
            // It obviously started if it completed.
            Condition::Started => {
                self.any(|o| matches!(o.stage, Stage::Running { .. }) || o.exited() == Some(0))
            }
            Condition::Completed => self.any(|o| o.exited() == Some(0)),
        }
    }

    /// Whether the container has exited and will not be started again, so
    /// its dependents should stop. Under `OnFailure` a failed container will
    /// be restarted: its sidecar must stay up for the next attempt.
    /// `pod_finished`: the pod has reached Succeeded or Failed.
    pub fn exited_for_good(&self, pod_finished: bool) -> Option<i32> {
        self.seen.iter().flatten().find_map(|o| {
            let code = o.exited()?;
            let final_ = pod_finished
                || match self.policy {
                    RestartPolicy::Never | RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => code == 0,
                };
            final_.then_some(code)
        })
    }

    /// A failure that no restart will repair: a `completed` dependency on
    /// this container can never hold.
    pub fn failed_for_good(&self, pod_finished: bool) -> Option<i32> {
        if self.holds(Condition::Completed) {
            return None;
        }
        let final_ = pod_finished || self.policy == RestartPolicy::Never;
        self.seen
            .iter()
            .flatten()
            .find_map(|o| o.exited().filter(|c| *c != 0 && final_))
    }

    /// A short description for logs: `running (restart 1)`.
    pub fn describe(&self) -> String {
        let latest = self.seen.iter().flatten().max_by_key(|o| match o.stage {
            Stage::Waiting => 0,
            Stage::Running { .. } => 1,
            Stage::Exited { .. } => 2,
        });
        match latest {
            None => "nothing seen yet".into(),
            Some(o) => {
                let stage = match &o.stage {
                    Stage::Waiting => "waiting".to_string(),
                    Stage::Running { ready: true } => "running, ready".into(),
                    Stage::Running { ready: false } => "running".into(),
                    Stage::Exited { code, abrupt: true } => {
                        format!("died abruptly (exit code {code})")
                    }
                    Stage::Exited { code, .. } => format!("exited with code {code}"),
                };
                if o.restart > 0 {
                    format!("{stage} (restart {})", o.restart)
                } else {
                    stage
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(restart: u32, stage: Stage) -> Observation {
        Observation { restart, stage }
    }

    fn exited(code: i32) -> Stage {
        Stage::Exited {
            code,
            abrupt: false,
        }
    }

    #[test]
    fn the_first_source_to_report_an_exit_wins() {
        let mut c = Container::new("main", RestartPolicy::Never);
        c.observe(Source::Api, obs(0, Stage::Running { ready: true }));
        assert_eq!(c.exited_for_good(false), None);
        c.observe(Source::StateDir, obs(0, exited(0)));
        assert_eq!(c.exited_for_good(false), Some(0));
        // The API still lags: its stale view does not undo the exit.
        c.observe(Source::Api, obs(0, Stage::Running { ready: true }));
        assert_eq!(c.exited_for_good(false), Some(0));
    }

    #[test]
    fn on_failure_waits_for_success() {
        let mut c = Container::new("main", RestartPolicy::OnFailure);
        c.observe(Source::StateDir, obs(0, exited(1)));
        assert_eq!(c.exited_for_good(false), None);
        assert_eq!(
            c.exited_for_good(true),
            Some(1),
            "a finished pod restarts nothing"
        );
        c.observe(Source::StateDir, obs(1, Stage::Running { ready: false }));
        c.observe(Source::StateDir, obs(1, exited(0)));
        assert_eq!(c.exited_for_good(false), Some(0));
    }

    #[test]
    fn readiness_comes_from_the_api_only() {
        let mut c = Container::new("proxy", RestartPolicy::Never);
        c.observe(Source::StateDir, obs(0, Stage::Running { ready: true }));
        assert!(!c.holds(Condition::Ready));
        assert!(c.holds(Condition::Started));
        c.observe(Source::Api, obs(0, Stage::Running { ready: true }));
        assert!(c.holds(Condition::Ready));
    }

    #[test]
    fn a_failed_completed_dependency_is_final_only_without_restarts() {
        let mut c = Container::new("migrate", RestartPolicy::Never);
        c.observe(
            Source::StateDir,
            obs(
                0,
                Stage::Exited {
                    code: 137,
                    abrupt: true,
                },
            ),
        );
        assert_eq!(c.failed_for_good(false), Some(137));
        let mut c = Container::new("migrate", RestartPolicy::OnFailure);
        c.observe(Source::StateDir, obs(0, exited(3)));
        assert_eq!(c.failed_for_good(false), None);
        c.observe(Source::Api, obs(1, exited(0)));
        assert!(c.holds(Condition::Completed));
        assert_eq!(c.failed_for_good(true), None);
    }

    #[test]
    fn descriptions_name_the_latest_stage() {
        let mut c = Container::new("m", RestartPolicy::Never);
        assert_eq!(c.describe(), "nothing seen yet");
        c.observe(Source::Api, obs(2, Stage::Running { ready: false }));
        assert_eq!(c.describe(), "running (restart 2)");
        c.observe(
            Source::StateDir,
            obs(
                0,
                Stage::Exited {
                    code: 137,
                    abrupt: true,
                },
            ),
        );
        assert_eq!(c.describe(), "died abruptly (exit code 137)");
    }
}
