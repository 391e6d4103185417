//! What a Session's sandbox should become, decided from what is observed: a pure function, unit tested.
//!
//! The harness asks for a sandbox by writing `status.sandbox.requestedAt`; the operator creates (or claims) a pod,
//! publishes its endpoint once the daemon is ready, surfaces image pull errors and unschedulable pods at once,
//! deletes the pod after the Environment's idle timeout, and replaces a pod that died on the next request.

use std::time::Duration;

use corral_api::session::{SandboxPhase, SandboxStatus, SessionPhase};
use k8s_openapi::jiff::Timestamp;

use super::{
    contract::DAEMON_PORT,
    pod_state::{PodState, PodView},
};

/// What the session controller observed.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The session's phase.
    pub phase: Option<SessionPhase>,
    /// The current sandbox status.
    pub sandbox: Option<&'a SandboxStatus>,
    /// When the session's log last changed (written by the harness at turn ends).
    pub last_event_time: Option<Timestamp>,
    /// The session's pod, if any.
    pub pod: Option<PodView>,
    /// The Environment's idle timeout.
    pub idle_timeout: Duration,
    /// Now.
    pub now: Timestamp,
    /// Why the operator's sandbox policy refuses a new pod for the Environment, if it does.
    pub refused: Option<String>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing to change on the cluster.
    Keep,
    /// Provision a pod (claim a warm one or create one).
    Provision,
    /// Delete the pod.
    Delete {
        /// Its name.
        pod: String,
    },
}

/// The decision: the action, the sandbox status to write, and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do on the cluster.
    pub action: Action,
    /// The operator's part of `status.sandbox` (everything but `requestedAt`).
    pub status: Option<SandboxStatus>,
    /// The `SandboxReady` condition: ok, reason, message.
    pub condition: (bool, &'static str, String),
    /// Look again after this long even if nothing changes (idle reaping).
    pub requeue: Option<Duration>,
}

/// Reasons of the `SandboxReady` condition.
pub mod reasons {
    /// No sandbox is needed right now.
    pub const NOT_REQUESTED: &str = "NotRequested";
    /// A pod is being created or started.
    pub const PROVISIONING: &str = "Provisioning";
    /// The daemon answers.
    pub const READY: &str = "Ready";
    /// The image cannot be pulled or the container cannot be created.
    pub const CONTAINER_ERROR: &str = "ContainerError";
    /// No node can take the pod.
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    /// The pod died; the next tool call gets a new one.
    pub const POD_ENDED: &str = "PodEnded";
    /// Deleted after the idle timeout.
    pub const REAPED: &str = "Reaped";
    /// The session has terminated.
    pub const TERMINATED: &str = "Terminated";
    /// The operator's sandbox policy refuses what the Environment asks for; no pod is made.
    pub const NOT_ALLOWED: &str = super::super::policy::NOT_ALLOWED;
}

fn parse(t: Option<&String>) -> Option<Timestamp> {
    t.and_then(|s| s.parse().ok())
}

/// Decides what the sandbox should become.
pub fn decide(o: &Observed<'_>) -> Decision {
    let previous = o.sandbox.cloned().unwrap_or_default();
    let requested = parse(previous.requested_at.as_ref());
    let since = parse(previous.since.as_ref());
    // `since` moves only when the phase changes, so repeated reconciles write an identical status.
    let status =
        |phase: SandboxPhase, pod: Option<&str>, endpoint: Option<String>, message: Option<String>| {
            let since = if previous.phase == Some(phase) {
                previous.since.clone()
            } else {
                Some(o.now.to_string())
            };
            Some(SandboxStatus {
                phase: Some(phase),
                requested_at: None,
                pod: pod.map(str::to_owned),
                endpoint,
                since,
                message,
            })
        };
    let terminated = o.phase == Some(SessionPhase::Terminated);
    let Some(pod) = &o.pod else {
        // A request newer than the sandbox's last phase change asks for a (new) pod.
        let wanted = requested.is_some_and(|r| previous.phase.is_none() || since.is_none_or(|s| r > s));
        let (action, status, condition) = if terminated {
            let status = previous
                .phase
                .and_then(|_| status(SandboxPhase::Reaped, None, None, None));
            (
                Action::Keep,
                status,
                (
                    false,
                    reasons::TERMINATED,
                    "the session has terminated".to_owned(),
                ),
            )
        } else if let Some(why) = o
            .refused
            .as_ref()
            .filter(|_| wanted || previous.phase == Some(SandboxPhase::Failed))
        {
            (
                Action::Keep,
                status(SandboxPhase::Failed, None, None, Some(why.clone())),
                (false, reasons::NOT_ALLOWED, why.clone()),
            )
        } else if wanted {
            let condition = (
                false,
                reasons::PROVISIONING,
                "creating the sandbox pod".to_owned(),
            );
            (
                Action::Provision,
                status(SandboxPhase::Provisioning, None, None, None),
                condition,
            )
        } else {
            match previous.phase {
                Some(SandboxPhase::Ready | SandboxPhase::Provisioning) => {
                    let message = format!(
                        "sandbox pod {} disappeared; the next tool call gets a new one",
                        previous.pod.as_deref().unwrap_or("?")
                    );
                    let status = status(SandboxPhase::Failed, None, None, Some(message.clone()));
                    (Action::Keep, status, (false, reasons::POD_ENDED, message))
                }
                Some(SandboxPhase::Reaped) => {
                    let message = "deleted after the idle timeout; the next tool call provisions again";
                    let status = o.sandbox.map(|s| SandboxStatus {
                        requested_at: None,
                        ..s.clone()
                    });
                    (Action::Keep, status, (false, reasons::REAPED, message.to_owned()))
                }
                Some(SandboxPhase::Failed | SandboxPhase::Requested) => {
                    let message = previous
                        .message
                        .clone()
                        .unwrap_or_else(|| "the sandbox pod ended".into());
                    let status = o.sandbox.map(|s| SandboxStatus {
                        requested_at: None,
                        ..s.clone()
                    });
                    (Action::Keep, status, (false, reasons::POD_ENDED, message))
                }
                None => {
                    let message = "no tool call has needed a sandbox yet".to_owned();
                    (Action::Keep, None, (false, reasons::NOT_REQUESTED, message))
                }
            }
        };
        return Decision {
            action,
            status,
            condition,
            requeue: None,
        };
    };
    if terminated {
        return Decision {
            action: Action::Delete {
                pod: pod.name.clone(),
            },
            status: status(
                SandboxPhase::Reaped,
                None,
                None,
                Some("the session has terminated".into()),
            ),
            condition: (false, reasons::TERMINATED, "the session has terminated".into()),
            requeue: None,
        };
    }
    if pod.terminating {
        return Decision {
            action: Action::Keep,
            status: o.sandbox.map(|s| SandboxStatus {
                requested_at: None,
                ..s.clone()
            }),
            condition: (
                false,
                reasons::PROVISIONING,
                format!("pod {} is terminating", pod.name),
            ),
            requeue: Some(Duration::from_secs(2)),
        };
    }
    match &pod.state {
        PodState::Ended { message } => {
            let message = format!("sandbox pod {} ended: {message}", pod.name);
            Decision {
                action: Action::Delete {
                    pod: pod.name.clone(),
                },
                status: status(SandboxPhase::Failed, None, None, Some(message.clone())),
                condition: (false, reasons::POD_ENDED, message),
                requeue: None,
            }
        }
        PodState::ContainerError { reason, message } => {
            let message = format!("{reason}: {message}");
            Decision {
                action: Action::Keep,
                status: status(SandboxPhase::Failed, Some(&pod.name), None, Some(message.clone())),
                condition: (false, reasons::CONTAINER_ERROR, message),
                requeue: None,
            }
        }
        PodState::Unschedulable { message } => Decision {
            action: Action::Keep,
            status: status(
                SandboxPhase::Provisioning,
                Some(&pod.name),
                None,
                Some(message.clone()),
            ),
            condition: (false, reasons::UNSCHEDULABLE, message.clone()),
            requeue: None,
        },
        PodState::Starting => Decision {
            action: Action::Keep,
            status: status(SandboxPhase::Provisioning, Some(&pod.name), None, None),
            condition: (
                false,
                reasons::PROVISIONING,
                format!("pod {} is starting", pod.name),
            ),
            requeue: None,
        },
        PodState::Ready { ip } => {
            let last_activity = [Some(pod.created), pod.ready_since, requested, o.last_event_time]
                .into_iter()
                .flatten()
                .max();
            let idle_for = last_activity
                .map(|t| o.now.duration_since(t).unsigned_abs())
                .unwrap_or_default();
            let busy = o.phase == Some(SessionPhase::Running);
            if !busy && idle_for >= o.idle_timeout {
                return Decision {
                    action: Action::Delete {
                        pod: pod.name.clone(),
                    },
                    status: status(SandboxPhase::Reaped, None, None, None),
                    condition: (
                        false,
                        reasons::REAPED,
                        "deleted after the idle timeout; the next tool call provisions again".into(),
                    ),
                    requeue: None,
                };
            }
            Decision {
                action: Action::Keep,
                status: status(
                    SandboxPhase::Ready,
                    Some(&pod.name),
                    Some(format!("{ip}:{DAEMON_PORT}")),
                    None,
                ),
                condition: (
                    true,
                    reasons::READY,
                    format!("the daemon in pod {} answers", pod.name),
                ),
                requeue: Some(if busy {
                    o.idle_timeout
                } else {
                    o.idle_timeout.saturating_sub(idle_for) + Duration::from_secs(1)
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn requested(at: i64) -> SandboxStatus {
        SandboxStatus {
            requested_at: Some(t(at).to_string()),
            ..SandboxStatus::default()
        }
    }

    fn pod(state: PodState, created: i64) -> PodView {
        PodView {
            name: "sandbox-s1".into(),
            created: t(created),
            ready_since: None,
            terminating: false,
            state,
        }
    }

    fn observed<'a>(sandbox: Option<&'a SandboxStatus>, pod: Option<PodView>, now: i64) -> Observed<'a> {
        Observed {
            phase: Some(SessionPhase::Idle),
            sandbox,
            last_event_time: None,
            pod,
            idle_timeout: Duration::from_secs(600),
            now: t(now),
            refused: None,
        }
    }

    #[test]
    fn nothing_until_a_tool_call_asks() {
        let d = decide(&observed(None, None, 0));
        assert_eq!(d.action, Action::Keep);
        assert_eq!(d.condition.1, reasons::NOT_REQUESTED);
        assert_eq!(d.status, None, "no sandbox status before the first request");
    }

    #[test]
    fn a_request_provisions() {
        let s = requested(5);
        let d = decide(&observed(Some(&s), None, 6));
        assert_eq!(d.action, Action::Provision);
        assert_eq!(d.status.unwrap().phase, Some(SandboxPhase::Provisioning));
    }

    #[test]
    fn ready_pod_publishes_its_endpoint_and_status_is_stable() {
        let s = requested(5);
        let d = decide(&observed(
            Some(&s),
            Some(pod(
                PodState::Ready {
                    ip: "10.0.0.7".into(),
                },
                6,
            )),
            10,
        ));
        let status = d.status.clone().unwrap();
        assert_eq!(status.endpoint.as_deref(), Some("10.0.0.7:7070"));
        assert_eq!(status.phase, Some(SandboxPhase::Ready));
        assert!(d.condition.0);
        // Written back and decided again later: identical, so no reconcile loop.
        let mut again = status.clone();
        again.requested_at = s.requested_at.clone();
        let d2 = decide(&observed(
            Some(&again),
            Some(pod(
                PodState::Ready {
                    ip: "10.0.0.7".into(),
                },
                6,
            )),
            50,
        ));
        assert_eq!(d2.status.unwrap().since, status.since);
        assert_eq!(
            d2.requeue,
            Some(Duration::from_secs(600 - 44 + 1)),
            "looks again when the idle timeout ends (pod created at 6)"
        );
    }

    #[test]
    fn idle_pod_is_reaped_and_the_next_request_provisions_again() {
        let s = requested(0);
        let d = decide(&observed(
            Some(&s),
            Some(pod(PodState::Ready { ip: "ip".into() }, 1)),
            700,
        ));
        assert_eq!(
            d.action,
            Action::Delete {
                pod: "sandbox-s1".into()
            }
        );
        let mut reaped = d.status.unwrap();
        assert_eq!(reaped.phase, Some(SandboxPhase::Reaped));
        reaped.requested_at = s.requested_at.clone();
        let stay = decide(&observed(Some(&reaped), None, 701));
        assert_eq!(
            stay.action,
            Action::Keep,
            "an old request does not bring a reaped sandbox back"
        );
        assert_eq!(stay.condition.1, reasons::REAPED);
        reaped.requested_at = Some(t(800).to_string());
        assert_eq!(
            decide(&observed(Some(&reaped), None, 801)).action,
            Action::Provision
        );
    }

    #[test]
    fn a_running_session_is_never_reaped() {
        let s = requested(0);
        let mut o = observed(
            Some(&s),
            Some(pod(PodState::Ready { ip: "ip".into() }, 1)),
            10_000,
        );
        o.phase = Some(SessionPhase::Running);
        assert_eq!(decide(&o).action, Action::Keep);
    }

    #[test]
    fn a_pod_slower_to_start_than_the_idle_timeout_is_not_reaped_on_arrival() {
        let s = requested(0);
        let mut slow = pod(PodState::Ready { ip: "ip".into() }, 1);
        slow.ready_since = Some(t(650));
        let d = decide(&observed(Some(&s), Some(slow), 700));
        assert_eq!(d.action, Action::Keep, "idle counts from readiness, not creation");
        assert_eq!(d.status.unwrap().phase, Some(SandboxPhase::Ready));
    }

    #[test]
    fn recent_turns_keep_the_pod() {
        let s = requested(0);
        let mut o = observed(Some(&s), Some(pod(PodState::Ready { ip: "ip".into() }, 1)), 700);
        o.last_event_time = Some(t(650));
        assert_eq!(decide(&o).action, Action::Keep);
    }

    #[test]
    fn image_pull_errors_surface_at_once() {
        let s = requested(0);
        let state = PodState::ContainerError {
            reason: "ImagePullBackOff".into(),
            message: "no such image".into(),
        };
        let d = decide(&observed(Some(&s), Some(pod(state, 1)), 3));
        assert_eq!(d.condition.1, reasons::CONTAINER_ERROR);
        assert!(d.condition.2.contains("ImagePullBackOff"));
        assert_eq!(d.status.unwrap().phase, Some(SandboxPhase::Failed));
    }

    #[test]
    fn unschedulable_pods_surface_at_once() {
        let s = requested(0);
        let state = PodState::Unschedulable {
            message: "0/1 nodes are available: insufficient memory".into(),
        };
        let d = decide(&observed(Some(&s), Some(pod(state, 1)), 3));
        assert_eq!(d.condition.1, reasons::UNSCHEDULABLE);
        assert!(d.condition.2.contains("insufficient memory"));
    }

    #[test]
    fn a_dead_pod_is_removed_and_replaced_on_the_next_request() {
        let s = requested(0);
        let d = decide(&observed(
            Some(&s),
            Some(pod(
                PodState::Ended {
                    message: "Evicted".into(),
                },
                1,
            )),
            5,
        ));
        assert_eq!(
            d.action,
            Action::Delete {
                pod: "sandbox-s1".into()
            }
        );
        let mut failed = d.status.unwrap();
        assert_eq!(failed.phase, Some(SandboxPhase::Failed));
        failed.requested_at = Some(t(9).to_string());
        assert_eq!(
            decide(&observed(Some(&failed), None, 10)).action,
            Action::Provision
        );
    }

    #[test]
    fn a_vanished_pod_is_reported_and_replaced_only_on_the_next_request() {
        let s = requested(0);
        let ready = decide(&observed(
            Some(&s),
            Some(pod(PodState::Ready { ip: "ip".into() }, 1)),
            2,
        ));
        let mut status = ready.status.unwrap();
        status.requested_at = s.requested_at.clone();
        let gone = decide(&observed(Some(&status), None, 3));
        assert_eq!(
            gone.action,
            Action::Keep,
            "no pod is created without a tool call asking"
        );
        assert_eq!(gone.condition.1, reasons::POD_ENDED);
        let mut failed = gone.status.unwrap();
        assert_eq!(failed.phase, Some(SandboxPhase::Failed));
        failed.requested_at = Some(t(4).to_string());
        assert_eq!(
            decide(&observed(Some(&failed), None, 5)).action,
            Action::Provision
        );
    }

    #[test]
    fn a_terminated_session_loses_its_pod_at_once() {
        let s = requested(0);
        let mut o = observed(Some(&s), Some(pod(PodState::Ready { ip: "ip".into() }, 1)), 2);
        o.phase = Some(SessionPhase::Terminated);
        assert_eq!(
            decide(&o).action,
            Action::Delete {
                pod: "sandbox-s1".into()
            }
        );
    }

    #[test]
    fn a_sandbox_the_policy_refuses_is_never_created_and_says_why() {
        let s = requested(5);
        let mut o = observed(Some(&s), None, 6);
        o.refused = Some("spec.sandbox.runtimeClassName: RuntimeClass \"runc\" is not allowed".into());
        let d = decide(&o);
        assert_eq!(d.action, Action::Keep, "no pod");
        assert_eq!(d.condition.1, reasons::NOT_ALLOWED);
        assert!(d.condition.2.contains("runtimeClassName"));
        let mut failed = d.status.unwrap();
        assert_eq!(failed.phase, Some(SandboxPhase::Failed));
        // Decided again with the status written back: the same reason, until the policy or the spec changes.
        failed.requested_at = s.requested_at.clone();
        let mut again = observed(Some(&failed), None, 7);
        again.refused = o.refused.clone();
        assert_eq!(decide(&again).condition.1, reasons::NOT_ALLOWED);
        failed.requested_at = Some(t(8).to_string());
        let allowed = observed(Some(&failed), None, 9);
        assert_eq!(
            decide(&allowed).action,
            Action::Provision,
            "allowed again: the next request provisions"
        );
    }
}
