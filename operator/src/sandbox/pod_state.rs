//! The state of a sandbox pod, summarised from its status: starting, ready at an address, unschedulable, a
//! container that cannot start, or ended (with why).

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};

/// The state of a sandbox pod, summarised from its status.
#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// Scheduled or being scheduled, containers starting.
    Starting,
    /// The daemon answers its readiness probe at this IP.
    Ready {
        /// The pod's IP.
        ip: String,
    },
    /// The pod cannot be placed on a node.
    Unschedulable {
        /// The scheduler's message.
        message: String,
    },
    /// A container cannot start (image pull error, bad config); kubelet keeps retrying.
    ContainerError {
        /// The waiting reason, for example `ImagePullBackOff`.
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// The pod ended (its daemon exited, it was evicted, ...).
    Ended {
        /// Why.
        message: String,
    },
}

/// A sandbox pod as the decision needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// When it was created.
    pub created: Timestamp,
    /// When its Ready condition last turned true: a pod that took long to start is not idle from its creation.
    pub ready_since: Option<Timestamp>,
    /// Whether it is being deleted.
    pub terminating: bool,
    /// Its state.
    pub state: PodState,
}

/// Waiting reasons that mean a container will not start without a change.
const CONTAINER_ERRORS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

impl PodState {
    /// Whether the daemon answers.
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }
}

impl PodView {
    /// Summarises a pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let status = pod.status.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let conditions = status.conditions.clone().unwrap_or_default();
        let condition = |t: &str| conditions.iter().find(|c| c.type_ == t);
        let waiting = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|c| c.state.as_ref().and_then(|s| s.waiting.clone()))
            .find(|w| w.reason.as_deref().is_some_and(|r| CONTAINER_ERRORS.contains(&r)));
        let phase = status.phase.as_deref().unwrap_or("Pending");
        let state = if phase == "Failed" || phase == "Succeeded" {
            // An init container that failed (the packages' installation) says why in its termination message.
            let failed_init = status.init_container_statuses.iter().flatten().find_map(|c| {
                let t = c.state.as_ref()?.terminated.as_ref()?;
                (t.exit_code != 0).then(|| {
                    let said = t.message.clone().or(t.reason.clone()).unwrap_or_default();
                    format!(
                        "init container {} failed (exit code {}): {}",
                        c.name,
                        t.exit_code,
                        said.trim()
                    )
                })
            });
            let why = failed_init
                .or(status.reason.clone())
                .or(status.message.clone())
                .unwrap_or_else(|| format!("pod {phase}"));
            PodState::Ended { message: why }
        } else if let Some(w) = waiting {
            PodState::ContainerError {
                reason: w.reason.unwrap_or_default(),
                message: w.message.unwrap_or_default(),
            }
        } else if let Some(c) = condition("PodScheduled")
            .filter(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        {
            PodState::Unschedulable {
                message: c.message.clone().unwrap_or_default(),
            }
        } else if let (Some(_), Some(ip)) = (
            condition("Ready").filter(|c| c.status == "True"),
            status.pod_ip.clone(),
        ) {
            PodState::Ready { ip }
        } else {
            PodState::Starting
        };
        let ready_since = condition("Ready")
            .filter(|c| c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        Self {
            name,
            created,
            ready_since,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_package_installation_is_the_reason_a_pod_ended() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sandbox-s1"},
            "status": {"phase": "Failed", "initContainerStatuses": [
                {"name": "install-daemon", "image": "d", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0}}},
                {"name": "install-packages", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 1, "reason": "Error",
                    "message": "installing packages.pip failed (exit status: 1): No matching distribution\n"}}}
            ]}
        }))
        .unwrap();
        assert_eq!(
            super::PodView::from_pod(&pod).state,
            super::PodState::Ended {
                message:
                    "init container install-packages failed (exit code 1): installing packages.pip failed \
                          (exit status: 1): No matching distribution"
                        .into()
            }
        );
    }
}
