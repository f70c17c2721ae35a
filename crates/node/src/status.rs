//! A Pod's container statuses, built from the shim's records the way the kubelet builds them from the runtime
//! (`convertToAPIContainerStatuses`, reference/pod-behaviour.md §4.2): the newest instance of a container is its
//! `state`, the one before its `lastState`; a container waiting to be restarted or for its image shows the
//! waiting reason with the last exit in `lastState`. Pure.

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use peapod_runtime::ContainerRecord;
use std::collections::HashMap;

/// The runtime name in `containerID` (`<runtime>://<id>`).
pub const RUNTIME_NAME: &str = "peapod";

/// A waiting reason the worker decided on (back-off, image trouble, configuration errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// The resolved image of a container: what `image` and `imageID` show.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    pub image: String,
    pub image_id: String,
}

/// An RFC 3339 time from a record (nanoseconds) cut to the API's second precision.
pub fn api_time(s: &str) -> Option<Time> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    let secs = jiff::Timestamp::from_second(ts.as_second()).ok()?;
    Some(Time(secs))
}

fn terminated(r: &ContainerRecord) -> Option<ContainerStateTerminated> {
    let exit = r.exit.as_ref()?;
    let (reason, message) = match &exit.start_error {
        Some(m) => ("StartError".to_string(), Some(m.clone())),
        None => (
            peapod_api::pod_status::terminated_reason(exit.code, exit.oom_killed).to_string(),
            None,
        ),
    };
    Some(ContainerStateTerminated {
        exit_code: exit.code,
        signal: exit.signal,
        reason: Some(reason),
        message,
        // A container that never started has a zero start time in the runtime, which the API shows as the epoch.
        started_at: if exit.start_error.is_some() {
            Some(Time(jiff::Timestamp::UNIX_EPOCH))
        } else {
            api_time(&r.started_at)
        },
        finished_at: api_time(&exit.finished_at),
        container_id: Some(format!("{RUNTIME_NAME}://{}", r.id)),
    })
}

/// The status of one container.
pub fn container_status(
    c: &Container,
    records: &[&ContainerRecord],
    waiting: Option<&Waiting>,
    image: &ImageInfo,
    initial_reason: &str,
    previous: Option<&ContainerStatus>,
) -> ContainerStatus {
    let mut recs: Vec<&ContainerRecord> = records.to_vec();
    recs.sort_by_key(|r| std::cmp::Reverse(r.attempt));
    let newest = recs.first().copied();
    let prev = recs.get(1).copied();
    let mut last_state = prev.and_then(terminated).map(|t| ContainerState {
        terminated: Some(t),
        ..Default::default()
    });
    let state = match (waiting, newest) {
        (Some(w), n) => {
            if let Some(t) = n.and_then(terminated) {
                last_state = Some(ContainerState {
                    terminated: Some(t),
                    ..Default::default()
                });
            }
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(w.reason.clone()),
                    message: Some(w.message.clone()).filter(|m| !m.is_empty()),
                }),
                ..Default::default()
            }
        }
        (None, Some(r)) if r.exit.is_none() => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: api_time(&r.started_at),
            }),
            ..Default::default()
        },
        (None, Some(r)) => ContainerState {
            terminated: terminated(r),
            ..Default::default()
        },
        (None, None) => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(initial_reason.to_string()),
                message: None,
            }),
            ..Default::default()
        },
    };
    let running = state.running.is_some();
    let restart_count = newest
        .map(|r| r.attempt as i32)
        .or_else(|| previous.map(|p| p.restart_count))
        .unwrap_or(0);
    ContainerStatus {
        name: c.name.clone(),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ready: running,
        started: Some(running),
        restart_count,
        image: if image.image.is_empty() {
            c.image.clone().unwrap_or_default()
        } else {
            image.image.clone()
        },
        image_id: image.image_id.clone(),
        container_id: newest.map(|r| format!("{RUNTIME_NAME}://{}", r.id)),
        ..Default::default()
    }
}

/// Statuses of a list of containers (`is_init`: the Pod's init containers), from all records of the Pod.
pub fn statuses(
    is_init: bool,
    containers: &[Container],
    records: &[ContainerRecord],
    waiting: &HashMap<String, Waiting>,
    images: &HashMap<String, ImageInfo>,
    initial_reason: &str,
    previous: &[ContainerStatus],
) -> Vec<ContainerStatus> {
    let empty = ImageInfo::default();
    containers
        .iter()
        .map(|c| {
            let recs: Vec<&ContainerRecord> = records.iter().filter(|r| r.name == c.name).collect();
            container_status(
                c,
                &recs,
                waiting.get(&c.name),
                images.get(&c.name).unwrap_or(&empty),
                initial_reason,
                previous.iter().find(|p| p.name == c.name),
            )
        })
        .map(|mut st| {
            // A regular init container is ready once it exited 0 (prober_manager's rule); sidecars are like app
            // containers.
            if let Some(c) = containers.iter().find(|c| c.name == st.name) {
                if is_init && !peapod_api::pod_status::is_sidecar(c) {
                    st.ready = st
                        .state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some_and(|t| t.exit_code == 0);
                }
            }
            st
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use peapod_runtime::ExitRecord;

    fn rec(attempt: u32, exit: Option<i32>) -> ContainerRecord {
        ContainerRecord {
            id: format!("{attempt:064x}"),
            name: "app".into(),
            attempt,
            pid: 10,
            started_at: "2026-11-25T09:00:00.123456789Z".into(),
            log_path: format!("/l/{attempt}.log"),
            labels: Default::default(),
            exit: exit.map(|code| ExitRecord {
                code,
                signal: None,
                oom_killed: false,
                finished_at: "2026-11-25T09:00:01.5Z".into(),
                start_error: None,
            }),
        }
    }

    fn c() -> Container {
        Container {
            name: "app".into(),
            image: Some("busybox:1.35".into()),
            ..Default::default()
        }
    }

    #[test]
    fn running_with_a_previous_crash() {
        let (a, b) = (rec(0, Some(1)), rec(1, None));
        let s = container_status(&c(), &[&a, &b], None, &ImageInfo::default(), "ContainerCreating", None);
        assert_eq!(s.restart_count, 1);
        assert!(s.state.as_ref().unwrap().running.is_some());
        let last = s.last_state.unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(s.image, "busybox:1.35");
        assert!(s.ready);
    }

    #[test]
    fn crash_loop_waits_with_the_last_exit() {
        let (a, b) = (rec(0, Some(1)), rec(1, Some(1)));
        let w = Waiting {
            reason: "CrashLoopBackOff".into(),
            message: "back-off 10s restarting failed container=app pod=p_ns(u)".into(),
        };
        let s = container_status(
            &c(),
            &[&a, &b],
            Some(&w),
            &ImageInfo::default(),
            "ContainerCreating",
            None,
        );
        assert_eq!(
            s.state.unwrap().waiting.unwrap().reason.as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = s.last_state.unwrap().terminated.unwrap();
        assert_eq!(
            last.container_id.as_deref(),
            Some(format!("peapod://{:064x}", 1).as_str())
        );
        assert_eq!(last.finished_at.unwrap().0.to_string(), "2026-11-25T09:00:01Z");
        assert_eq!(s.restart_count, 1);
        assert!(!s.ready);
    }

    #[test]
    fn nothing_yet_is_creating_and_completed_is_terminated() {
        let s = container_status(&c(), &[], None, &ImageInfo::default(), "PodInitializing", None);
        assert_eq!(
            s.state.unwrap().waiting.unwrap().reason.as_deref(),
            Some("PodInitializing")
        );
        let a = rec(0, Some(0));
        let s = container_status(&c(), &[&a], None, &ImageInfo::default(), "ContainerCreating", None);
        assert_eq!(
            s.state.unwrap().terminated.unwrap().reason.as_deref(),
            Some("Completed")
        );
    }
}
