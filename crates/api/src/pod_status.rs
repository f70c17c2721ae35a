//! A Pod's status as the kubelet computes it: phase (`getPhase`), the kubelet-owned conditions
//! (`status/generate.go`), status ordering, restart decisions, terminated reasons and the crash-loop / image-pull
//! back-off schedule with its user-visible messages (pod-behaviour.md §4, §5, §6.2).
//!
//! Pure: no IO and no clock. The node agent passes in what it observed and the current time; everything here is
//! deterministic. It does not decide *when* to sync a Pod or run anything; it only says what the status is and how
//! long a restart must wait.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodCondition, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Pod phases as the kubelet writes them (`Unknown` is never produced by the kubelet, §4.4).
pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_SUCCEEDED: &str = "Succeeded";
pub const PHASE_FAILED: &str = "Failed";

/// `restartPolicy` values (pod level, and `Always` on an init container marks a sidecar).
pub const RESTART_ALWAYS: &str = "Always";
pub const RESTART_ON_FAILURE: &str = "OnFailure";
pub const RESTART_NEVER: &str = "Never";

/// Condition types written by the kubelet, in the order it appends them (§4.5).
pub const CONDITION_READY_TO_START_CONTAINERS: &str = "PodReadyToStartContainers";
pub const CONDITION_INITIALIZED: &str = "Initialized";
pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_CONTAINERS_READY: &str = "ContainersReady";
pub const CONDITION_POD_SCHEDULED: &str = "PodScheduled";
/// Owned by the kubelet too (in-place resize); Peapod never generates them, so a stale one is dropped.
const CONDITION_RESIZE_IN_PROGRESS: &str = "PodResizeInProgress";
const CONDITION_RESIZE_PENDING: &str = "PodResizePending";

/// Condition reasons from `pkg/kubelet/status/generate.go`.
pub const REASON_UNKNOWN_CONTAINER_STATUSES: &str = "UnknownContainerStatuses";
pub const REASON_POD_COMPLETED: &str = "PodCompleted";
pub const REASON_POD_FAILED: &str = "PodFailed";
pub const REASON_CONTAINERS_NOT_READY: &str = "ContainersNotReady";
pub const REASON_CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
pub const REASON_READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";

/// Waiting reason shown while a failed container waits out its back-off (§4.2, §5.3).
pub const REASON_CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
/// Waiting reason shown while an image pull waits out its back-off (§5.7).
pub const REASON_IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";

/// Crash-loop back-off: first delay (`initialCrashLoopBackOff`, `pkg/kubelet/kubelet.go`).
pub const CRASH_LOOP_INITIAL_BACK_OFF: Duration = Duration::from_secs(10);
/// Crash-loop back-off ceiling (`MaxCrashLoopBackOff` = kubelet config `MaxContainerBackOff`, 300 s).
pub const CRASH_LOOP_MAX_BACK_OFF: Duration = Duration::from_secs(300);
/// The kubelet's `HasExpiredFunc` for the crash-loop back-off: an entry whose last update is more than 600 s before
/// the new exit is forgotten, so a container that ran ten minutes starts over at the initial delay.
pub const CRASH_LOOP_RESET_AFTER: Duration = Duration::from_secs(600);
/// Image pull back-off: first delay (`imageBackOffPeriod`, `pkg/kubelet/kubelet.go`).
pub const IMAGE_PULL_INITIAL_BACK_OFF: Duration = Duration::from_secs(10);
/// Image pull back-off ceiling (`MaxImageBackOff`).
pub const IMAGE_PULL_MAX_BACK_OFF: Duration = Duration::from_secs(300);
/// client-go's default expiry (`2 × max`) used by the image back-off: also 600 s.
pub const IMAGE_PULL_RESET_AFTER: Duration = Duration::from_secs(600);

/// Terminated reasons as containerd's CRI reports them (§4.2).
pub const REASON_COMPLETED: &str = "Completed";
pub const REASON_ERROR: &str = "Error";
pub const REASON_OOM_KILLED: &str = "OOMKilled";

/// What [`compute_conditions`] needs besides the previous conditions and the time.
#[derive(Debug, Clone, Copy)]
pub struct ConditionInput<'a> {
    /// The Pod's spec (containers, init containers, readiness gates).
    pub spec: &'a PodSpec,
    /// Init container statuses (spec order).
    pub init_statuses: &'a [ContainerStatus],
    /// Regular container statuses.
    pub statuses: &'a [ContainerStatus],
    /// The phase just computed by [`compute_phase`] (after the sticky-terminal rule).
    pub phase: &'a str,
    /// Whether the Pod's sandbox exists with its network set up (no new sandbox needed).
    pub sandbox_ready: bool,
    /// `metadata.generation`, written as each condition's `observedGeneration` (1.33+); `None` omits it.
    pub generation: Option<i64>,
}

/// Which of the three states a status is in, if any.
enum State<'a> {
    Running,
    Terminated(&'a k8s_openapi::api::core::v1::ContainerStateTerminated),
    Waiting,
    None,
}

fn state_of(s: &ContainerStatus) -> State<'_> {
    match &s.state {
        Some(st) if st.running.is_some() => State::Running,
        Some(st) => match (&st.terminated, &st.waiting) {
            (Some(t), _) => State::Terminated(t),
            (None, Some(_)) => State::Waiting,
            (None, None) => State::None,
        },
        None => State::None,
    }
}

fn last_terminated(s: &ContainerStatus) -> Option<&k8s_openapi::api::core::v1::ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

/// The pod-level restart policy with the API default (`Always`) applied.
fn pod_restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or(RESTART_ALWAYS)
}

/// A sidecar is an init container with its own `restartPolicy: Always` (KEP-753, §5.6).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some(RESTART_ALWAYS)
}

/// Whether a container that exited with `exit_code` is restarted under `restart_policy` (§5.4). An empty or
/// unknown policy is treated as the API default, `Always`.
pub fn should_restart(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        RESTART_NEVER => false,
        RESTART_ON_FAILURE => exit_code != 0,
        _ => true,
    }
}

/// The `terminated.reason` containerd reports: `OOMKilled` when the kernel's OOM killer ended it, else
/// `Completed` for exit 0 and `Error` for anything else (§4.2).
pub fn terminated_reason(exit_code: i32, oom: bool) -> &'static str {
    if oom {
        REASON_OOM_KILLED
    } else if exit_code == 0 {
        REASON_COMPLETED
    } else {
        REASON_ERROR
    }
}

/// Regular (and ephemeral) container statuses are kept sorted by name (`kubetypes.SortedContainerStatuses`);
/// init container statuses keep spec order and must not be passed here.
pub fn sort_container_statuses(statuses: &mut [ContainerStatus]) {
    statuses.sort_by(|a, b| a.name.cmp(&b.name));
}

/// `hasPodInitialized`: no init containers, or a regular container has run (its status is not plain waiting, or
/// it has a previous termination), or the last init container is done (sidecar started / regular exited 0).
fn pod_has_initialized(spec: &PodSpec, init_statuses: &[ContainerStatus], statuses: &[ContainerStatus]) -> bool {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let Some(last_init) = inits.last() else {
        return true;
    };
    for c in &spec.containers {
        if let Some(s) = find(statuses, &c.name) {
            if last_terminated(s).is_some() || !matches!(state_of(s), State::Waiting | State::None) {
                return true;
            }
        }
    }
    let Some(s) = find(init_statuses, &last_init.name) else {
        return false;
    };
    if is_sidecar(last_init) {
        s.started == Some(true)
    } else {
        matches!(state_of(s), State::Terminated(t) if t.exit_code == 0)
    }
}

/// The Pod's phase as the kubelet's `getPhase` computes it (§4.4), sidecars included. `pod_is_terminal` is true
/// once the Pod is being torn down for good (deleted, or no container will run again), which turns a stopped Pod
/// into `Succeeded` or `Failed` regardless of its restart policy (§6.2).
///
/// The caller applies the sticky-terminal rule itself: once a Pod is `Succeeded` or `Failed` it stays so.
pub fn compute_phase(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
) -> &'static str {
    let restart_policy = pod_restart_policy(spec);
    let inits = spec.init_containers.as_deref().unwrap_or_default();

    let mut pending_regular_init = 0;
    let mut failed_init = 0;
    let mut pending_sidecar = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);

    for c in inits.iter().filter(|c| !is_sidecar(c)) {
        let Some(s) = find(init_statuses, &c.name) else {
            pending_regular_init += 1;
            continue;
        };
        match state_of(s) {
            State::Running | State::None => pending_regular_init += 1,
            State::Terminated(t) => {
                if t.exit_code != 0 {
                    failed_init += 1;
                }
            }
            State::Waiting => match last_terminated(s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                _ => pending_regular_init += 1,
            },
        }
    }

    for c in inits.iter().filter(|c| is_sidecar(c)) {
        let Some(s) = find(init_statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        match state_of(s) {
            State::Running => {
                running += 1;
                if s.started != Some(true) {
                    pending_sidecar += 1;
                }
            }
            // A terminated sidecar does not affect the phase (§5.6).
            State::Terminated(_) => {}
            State::Waiting => {
                if last_terminated(s).is_none() {
                    pending_sidecar += 1;
                    waiting += 1;
                }
            }
            State::None => {
                pending_sidecar += 1;
                unknown += 1;
            }
        }
    }

    for c in &spec.containers {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        match state_of(s) {
            State::Running => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // A container waiting after an earlier exit (crash loop) counts as stopped, which keeps a
            // crash-looping single-container Pod Running.
            State::Waiting => {
                if last_terminated(s).is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
            State::None => unknown += 1,
        }
    }

    if failed_init > 0 && restart_policy == RESTART_NEVER {
        return PHASE_FAILED;
    }
    let initialized = pod_has_initialized(spec, init_statuses, statuses);
    if pending_regular_init > 0 || (pending_sidecar > 0 && !initialized) || waiting > 0 {
        return PHASE_PENDING;
    }
    if running > 0 && unknown == 0 {
        return PHASE_RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                PHASE_SUCCEEDED
            } else {
                PHASE_FAILED
            };
        }
        if restart_policy == RESTART_ALWAYS {
            return PHASE_RUNNING;
        }
        if stopped == succeeded {
            return PHASE_SUCCEEDED;
        }
        if restart_policy == RESTART_NEVER {
            return PHASE_FAILED;
        }
        return PHASE_RUNNING;
    }
    PHASE_PENDING
}

/// Go's `%v` of a `[]string`: `[a b c]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn condition(type_: &str, status: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..PodCondition::default()
    }
}

/// Regular init containers count as initialized once they exited 0 (their `ready`, §4.3); sidecars once started.
fn init_done(c: &Container, s: &ContainerStatus) -> bool {
    if is_sidecar(c) {
        s.started == Some(true)
    } else {
        s.ready || matches!(state_of(s), State::Terminated(t) if t.exit_code == 0)
    }
}

/// `HasAnyRegularContainerStarted`: a regular container is running or has terminated.
fn any_regular_container_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers
        .iter()
        .any(|c| find(statuses, &c.name).is_some_and(|s| matches!(state_of(s), State::Running | State::Terminated(_))))
}

/// The kubelet's `containerStatuses == nil` case: nothing observed about any container yet.
fn no_statuses(input: &ConditionInput<'_>) -> bool {
    input.init_statuses.is_empty() && input.statuses.is_empty()
}

fn initialized_condition(input: &ConditionInput<'_>) -> PodCondition {
    let inits = input.spec.init_containers.as_deref().unwrap_or_default();
    if no_statuses(input) && !inits.is_empty() {
        return condition(
            CONDITION_INITIALIZED,
            false,
            Some(REASON_UNKNOWN_CONTAINER_STATUSES),
            None,
        );
    }
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in inits {
        match find(input.init_statuses, &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(s) if !init_done(c, s) => incomplete.push(c.name.as_str()),
            Some(_) => {}
        }
    }
    if input.phase == PHASE_SUCCEEDED && unknown.is_empty() {
        return condition(CONDITION_INITIALIZED, true, Some(REASON_POD_COMPLETED), None);
    }
    // Once a regular container has started the Pod was initialized, even while a sidecar restarts.
    if any_regular_container_started(input.spec, input.statuses) {
        return condition(CONDITION_INITIALIZED, true, None, None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!("containers with unknown status: {}", go_list(&unknown)));
    }
    if !incomplete.is_empty() {
        messages.push(format!("containers with incomplete status: {}", go_list(&incomplete)));
    }
    if messages.is_empty() {
        condition(CONDITION_INITIALIZED, true, None, None)
    } else {
        condition(
            CONDITION_INITIALIZED,
            false,
            Some(REASON_CONTAINERS_NOT_INITIALIZED),
            Some(messages.join(", ")),
        )
    }
}

fn containers_ready_condition(input: &ConditionInput<'_>) -> PodCondition {
    if no_statuses(input) {
        return condition(
            CONDITION_CONTAINERS_READY,
            false,
            Some(REASON_UNKNOWN_CONTAINER_STATUSES),
            None,
        );
    }
    let inits = input.spec.init_containers.as_deref().unwrap_or_default();
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = inits.iter().filter(|c| is_sidecar(c)).map(|c| (c, input.init_statuses));
    let regular = input.spec.containers.iter().map(|c| (c, input.statuses));
    for (c, statuses) in sidecars.chain(regular) {
        match find(statuses, &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(s) if !s.ready => unready.push(c.name.as_str()),
            Some(_) => {}
        }
    }
    if input.phase == PHASE_SUCCEEDED && unknown.is_empty() {
        return condition(CONDITION_CONTAINERS_READY, false, Some(REASON_POD_COMPLETED), None);
    }
    // A failed Pod's containers may still be terminating: never ready.
    if input.phase == PHASE_FAILED {
        return condition(CONDITION_CONTAINERS_READY, false, Some(REASON_POD_FAILED), None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!("containers with unknown status: {}", go_list(&unknown)));
    }
    if !unready.is_empty() {
        messages.push(format!("containers with unready status: {}", go_list(&unready)));
    }
    if messages.is_empty() {
        condition(CONDITION_CONTAINERS_READY, true, None, None)
    } else {
        condition(
            CONDITION_CONTAINERS_READY,
            false,
            Some(REASON_CONTAINERS_NOT_READY),
            Some(messages.join(", ")),
        )
    }
}

fn ready_condition(
    input: &ConditionInput<'_>,
    containers_ready: &PodCondition,
    others: &[PodCondition],
) -> PodCondition {
    if containers_ready.status != "True" {
        return PodCondition {
            type_: CONDITION_READY.to_string(),
            ..containers_ready.clone()
        };
    }
    let mut messages = Vec::new();
    for gate in input.spec.readiness_gates.as_deref().unwrap_or_default() {
        let t = &gate.condition_type;
        match others.iter().find(|c| &c.type_ == t) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate {} does not exist.",
                crate::errors::quote(t)
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate {} is not \"True\", but {}",
                crate::errors::quote(t),
                c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        condition(CONDITION_READY, true, None, None)
    } else {
        condition(
            CONDITION_READY,
            false,
            Some(REASON_READINESS_GATES_NOT_READY),
            Some(messages.join(", ")),
        )
    }
}

fn is_kubelet_owned(type_: &str) -> bool {
    matches!(
        type_,
        CONDITION_READY_TO_START_CONTAINERS
            | CONDITION_INITIALIZED
            | CONDITION_READY
            | CONDITION_CONTAINERS_READY
            | CONDITION_POD_SCHEDULED
            | CONDITION_RESIZE_IN_PROGRESS
            | CONDITION_RESIZE_PENDING
    )
}

/// The Pod's conditions as the kubelet writes them (§4.5): conditions it does not own (readiness-gate conditions,
/// `DisruptionTarget`, …) from `previous` first and untouched, then `PodReadyToStartContainers`, `Initialized`,
/// `Ready`, `ContainersReady`, `PodScheduled`. Each generated condition keeps its `lastTransitionTime` from
/// `previous` while its status is unchanged, else takes `now` (truncated to the second, the precision
/// `metav1.Time` has on the wire, so a status read back compares equal); `lastProbeTime` stays null.
pub fn compute_conditions(input: &ConditionInput<'_>, previous: &[PodCondition], now: Timestamp) -> Vec<PodCondition> {
    let mut out: Vec<PodCondition> = previous
        .iter()
        .filter(|c| !is_kubelet_owned(&c.type_))
        .cloned()
        .collect();
    let others = out.clone();

    let containers_ready = containers_ready_condition(input);
    let generated = [
        condition(CONDITION_READY_TO_START_CONTAINERS, input.sandbox_ready, None, None),
        initialized_condition(input),
        ready_condition(input, &containers_ready, &others),
        containers_ready,
        condition(CONDITION_POD_SCHEDULED, true, None, None),
    ];

    let now = truncate_to_second(now);
    for mut c in generated {
        let kept = previous
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
            .and_then(|p| p.last_transition_time.clone());
        c.last_transition_time = Some(kept.unwrap_or(Time(now)));
        c.last_probe_time = None;
        c.observed_generation = input.generation;
        out.push(c);
    }
    out
}

fn truncate_to_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Formats a duration as Go's `time.Duration.String()` does: `0s`, `500ms`, `1.5s`, `10s`, `1m20s`, `5m0s`,
/// `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let total_secs = d.as_secs();
    let (h, m) = (total_secs / 3600, (total_secs / 60) % 60);
    let secs = decimal(
        u128::from(total_secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{secs}s");
    out
}

/// `value / scale` in decimal with trailing fractional zeros dropped (`1500, 1000` → `1.5`).
fn decimal(value: u128, scale: u128) -> String {
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// kubelet's `format.Pod`: `name_namespace(uid)`.
pub fn format_pod(pod_name: &str, namespace: &str, uid: &str) -> String {
    format!("{pod_name}_{namespace}({uid})")
}

/// The `CrashLoopBackOff` waiting message: `back-off 40s restarting failed container=app pod=app_default(<uid>)`,
/// where `delay` is the current back-off ([`RestartBackoff::current_delay`]).
pub fn crash_loop_message(delay: Duration, container: &str, pod_name: &str, namespace: &str, uid: &str) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={}",
        go_duration(delay),
        format_pod(pod_name, namespace, uid)
    )
}

/// The `BackOff` (Warning) event message while a container crash-loops:
/// `Back-off restarting failed container app in pod app_default(<uid>)`.
pub fn crash_loop_event_message(container: &str, pod_name: &str, namespace: &str, uid: &str) -> String {
    format!(
        "Back-off restarting failed container {container} in pod {}",
        format_pod(pod_name, namespace, uid)
    )
}

/// The `BackOff` (Normal) event message and older `ImagePullBackOff` waiting message: `Back-off pulling image "x"`.
pub fn image_pull_back_off_message(image: &str) -> String {
    format!("Back-off pulling image {}", crate::errors::quote(image))
}

/// One key's entry of client-go's `flowcontrol.Backoff` as the kubelet configures it, with no jitter: the
/// crash-loop back-off of one container (key: pod + container + spec hash) or the pull back-off of one image in one
/// Pod. The agent keeps one per key, and drops it when the key goes away (spec changed, Pod deleted).
///
/// Crash loop (§5.2), at each exit of the container with `finished_at`:
/// 1. if [`in_backoff_since`](Self::in_backoff_since)`(finished_at, now)` is `Some(wait)`, show `CrashLoopBackOff`
///    with [`crash_loop_message`] and retry after `wait`;
/// 2. otherwise call [`next`](Self::next)`(finished_at, now)` and start the container.
///
/// So the first crash restarts at once and later ones wait 10 s, 20 s, 40 s … 300 s after the exit; an exit more than
/// 600 s after the last restart starts over.
///
/// Image pull (§5.7): before pulling, [`in_backoff_since_update`](Self::in_backoff_since_update)`(now)` gives the
/// remaining wait (`ImagePullBackOff`); after a failed pull call `next(now, now)`; after a successful one drop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartBackoff {
    /// First delay after the entry is created or expired.
    initial: Duration,
    /// Ceiling of the doubling.
    max: Duration,
    /// Event times this long after the last update forget the entry.
    reset_after: Duration,
    /// `(current delay, time of the last update)`; `None` before the first `next`.
    entry: Option<(Duration, Timestamp)>,
}

impl RestartBackoff {
    /// A back-off with its own schedule (the kubelet config `maxContainerRestartPeriod` can lower the maximum).
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Self {
            initial: initial.min(max),
            max,
            reset_after,
            entry: None,
        }
    }

    /// The kubelet's crash-loop schedule: 10 s doubling to 300 s, forgotten 600 s after the last update.
    pub fn crash_loop() -> Self {
        Self::new(
            CRASH_LOOP_INITIAL_BACK_OFF,
            CRASH_LOOP_MAX_BACK_OFF,
            CRASH_LOOP_RESET_AFTER,
        )
    }

    /// The kubelet's image pull schedule: 10 s doubling to 300 s, forgotten after 600 s.
    pub fn image_pull() -> Self {
        Self::new(
            IMAGE_PULL_INITIAL_BACK_OFF,
            IMAGE_PULL_MAX_BACK_OFF,
            IMAGE_PULL_RESET_AFTER,
        )
    }

    /// The delay in force, `None` before the first [`next`](Self::next).
    pub fn current_delay(&self) -> Option<Duration> {
        self.entry.map(|(d, _)| d)
    }

    /// client-go's `hasExpired`: the event happened more than `reset_after` after the last update.
    fn expired(&self, event_time: Timestamp, last_update: Timestamp) -> bool {
        event_time.duration_since(last_update) > signed(self.reset_after)
    }

    /// `Backoff.Next(key, event_time)`: start at the initial delay if there is no entry or it expired, else double
    /// up to the maximum; the entry's last update becomes `now`. Returns the new delay.
    pub fn next(&mut self, event_time: Timestamp, now: Timestamp) -> Duration {
        let delay = match self.entry {
            Some((delay, last)) if !self.expired(event_time, last) => delay.saturating_mul(2).min(self.max),
            _ => self.initial,
        };
        self.entry = Some((delay, now));
        delay
    }

    /// `Backoff.IsInBackOffSince(key, event_time)`: the remaining wait if `now` is still within the current delay
    /// counted from `event_time` (a container's `finishedAt`), else `None` (no entry, expired, or waited out).
    pub fn in_backoff_since(&self, event_time: Timestamp, now: Timestamp) -> Option<Duration> {
        let (delay, last) = self.entry?;
        if self.expired(event_time, last) {
            return None;
        }
        remaining(delay, now.duration_since(event_time))
    }

    /// `Backoff.IsInBackOffSinceUpdate(key, now)`: the remaining wait if `now` is within the current delay counted
    /// from the last update (the image back-off), else `None`.
    pub fn in_backoff_since_update(&self, now: Timestamp) -> Option<Duration> {
        let (delay, last) = self.entry?;
        if self.expired(now, last) {
            return None;
        }
        remaining(delay, now.duration_since(last))
    }
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// `delay - elapsed` when positive. A negative `elapsed` (clock skew) leaves the whole delay plus the skew.
fn remaining(delay: Duration, elapsed: SignedDuration) -> Option<Duration> {
    let left = signed(delay).checked_sub(elapsed)?;
    if left.is_positive() {
        Duration::try_from(left).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, PodReadinessGate,
    };

    fn container(name: &str) -> Container {
        Container {
            name: name.to_string(),
            ..Container::default()
        }
    }

    fn sidecar(name: &str) -> Container {
        Container {
            restart_policy: Some(RESTART_ALWAYS.to_string()),
            ..container(name)
        }
    }

    fn spec(policy: &str, inits: Vec<Container>, containers: &[&str]) -> PodSpec {
        PodSpec {
            restart_policy: Some(policy.to_string()),
            init_containers: if inits.is_empty() { None } else { Some(inits) },
            containers: containers.iter().map(|n| container(n)).collect(),
            ..PodSpec::default()
        }
    }

    fn terminated(code: i32) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(terminated_reason(code, false).to_string()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    fn status(name: &str, state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            name: name.to_string(),
            state: Some(state),
            ..ContainerStatus::default()
        }
    }

    fn running(name: &str, ready: bool) -> ContainerStatus {
        ContainerStatus {
            ready,
            started: Some(true),
            ..status(
                name,
                ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                },
            )
        }
    }

    fn waiting(name: &str, reason: &str) -> ContainerStatus {
        status(
            name,
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.to_string()),
                    message: None,
                }),
                ..ContainerState::default()
            },
        )
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            ready: false,
            ..status(name, terminated(code))
        }
    }

    /// Waiting in CrashLoopBackOff after an exit with `code`.
    fn crash_looping(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            last_state: Some(terminated(code)),
            restart_count: 3,
            ..waiting(name, REASON_CRASH_LOOP_BACK_OFF)
        }
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    // ---- phase ----

    #[test]
    fn single_running_container_is_running() {
        let s = spec(RESTART_ALWAYS, vec![], &["app"]);
        assert_eq!(compute_phase(&s, &[], &[running("app", true)], false), PHASE_RUNNING);
    }

    #[test]
    fn no_status_yet_is_pending() {
        let s = spec(RESTART_ALWAYS, vec![], &["app"]);
        assert_eq!(compute_phase(&s, &[], &[], false), PHASE_PENDING);
        assert_eq!(
            compute_phase(&s, &[], &[waiting("app", "ContainerCreating")], false),
            PHASE_PENDING
        );
    }

    #[test]
    fn crash_looping_single_container_stays_running() {
        let s = spec(RESTART_ALWAYS, vec![], &["app"]);
        assert_eq!(compute_phase(&s, &[], &[crash_looping("app", 1)], false), PHASE_RUNNING);
        // Exited and not yet restarted (status between exit and back-off) is Running too under Always.
        assert_eq!(compute_phase(&s, &[], &[exited("app", 1)], false), PHASE_RUNNING);
        assert_eq!(compute_phase(&s, &[], &[exited("app", 0)], false), PHASE_RUNNING);
    }

    #[test]
    fn never_with_failure_is_failed_and_all_zero_succeeded() {
        let s = spec(RESTART_NEVER, vec![], &["app"]);
        assert_eq!(compute_phase(&s, &[], &[exited("app", 1)], false), PHASE_FAILED);
        assert_eq!(compute_phase(&s, &[], &[exited("app", 0)], false), PHASE_SUCCEEDED);
        let two = spec(RESTART_NEVER, vec![], &["a", "b"]);
        assert_eq!(
            compute_phase(&two, &[], &[exited("a", 0), exited("b", 2)], false),
            PHASE_FAILED
        );
        // One still running keeps the Pod Running.
        assert_eq!(
            compute_phase(&two, &[], &[exited("a", 1), running("b", true)], false),
            PHASE_RUNNING
        );
    }

    #[test]
    fn on_failure_all_zero_succeeded_and_failure_keeps_running() {
        let s = spec(RESTART_ON_FAILURE, vec![], &["a", "b"]);
        assert_eq!(
            compute_phase(&s, &[], &[exited("a", 0), exited("b", 0)], false),
            PHASE_SUCCEEDED
        );
        assert_eq!(
            compute_phase(&s, &[], &[exited("a", 0), crash_looping("b", 1)], false),
            PHASE_RUNNING
        );
    }

    #[test]
    fn a_missing_status_makes_phase_pending() {
        let s = spec(RESTART_NEVER, vec![], &["a", "b"]);
        assert_eq!(compute_phase(&s, &[], &[exited("a", 0)], false), PHASE_PENDING);
        assert_eq!(compute_phase(&s, &[], &[running("a", true)], false), PHASE_PENDING);
    }

    #[test]
    fn terminal_pod_uses_exit_codes_regardless_of_policy() {
        let s = spec(RESTART_ALWAYS, vec![], &["app"]);
        assert_eq!(compute_phase(&s, &[], &[exited("app", 137)], true), PHASE_FAILED);
        assert_eq!(compute_phase(&s, &[], &[exited("app", 143)], true), PHASE_FAILED);
        assert_eq!(compute_phase(&s, &[], &[exited("app", 0)], true), PHASE_SUCCEEDED);
        // Still running containers keep it Running even when terminal was requested.
        assert_eq!(compute_phase(&s, &[], &[running("app", true)], true), PHASE_RUNNING);
    }

    #[test]
    fn init_pending_then_failed_under_never() {
        let s = spec(RESTART_NEVER, vec![container("init")], &["app"]);
        let app = waiting("app", "PodInitializing");
        assert_eq!(compute_phase(&s, &[], std::slice::from_ref(&app), false), PHASE_PENDING);
        assert_eq!(
            compute_phase(&s, &[running("init", false)], std::slice::from_ref(&app), false),
            PHASE_PENDING
        );
        assert_eq!(
            compute_phase(&s, &[exited("init", 1)], std::slice::from_ref(&app), false),
            PHASE_FAILED
        );
        assert_eq!(
            compute_phase(&s, &[exited("init", 0)], &[running("app", true)], false),
            PHASE_RUNNING
        );
    }

    #[test]
    fn init_failing_under_always_is_pending_while_it_retries() {
        let s = spec(RESTART_ALWAYS, vec![container("init")], &["app"]);
        let app = waiting("app", "PodInitializing");
        // Terminated with non-zero counts as failed, but only Never makes that Failed; the app still waits.
        assert_eq!(
            compute_phase(&s, &[exited("init", 1)], std::slice::from_ref(&app), false),
            PHASE_PENDING
        );
        assert_eq!(
            compute_phase(&s, &[crash_looping("init", 1)], std::slice::from_ref(&app), false),
            PHASE_PENDING
        );
        let never = spec(RESTART_NEVER, vec![container("init")], &["app"]);
        assert_eq!(
            compute_phase(&never, &[crash_looping("init", 1)], std::slice::from_ref(&app), false),
            PHASE_FAILED
        );
    }

    #[test]
    fn second_init_pending_after_first_completed() {
        let s = spec(RESTART_ALWAYS, vec![container("one"), container("two")], &["app"]);
        let app = waiting("app", "PodInitializing");
        assert_eq!(
            compute_phase(
                &s,
                &[exited("one", 0), waiting("two", "PodInitializing")],
                std::slice::from_ref(&app),
                false
            ),
            PHASE_PENDING
        );
    }

    #[test]
    fn sidecar_running_with_app_is_running() {
        let s = spec(RESTART_ALWAYS, vec![sidecar("proxy")], &["app"]);
        assert_eq!(
            compute_phase(&s, &[running("proxy", true)], &[running("app", true)], false),
            PHASE_RUNNING
        );
    }

    #[test]
    fn sidecar_not_started_before_init_is_pending() {
        let s = spec(RESTART_ALWAYS, vec![sidecar("proxy")], &["app"]);
        let mut proxy = running("proxy", false);
        proxy.started = Some(false);
        assert_eq!(
            compute_phase(&s, &[proxy.clone()], &[waiting("app", "PodInitializing")], false),
            PHASE_PENDING
        );
        // Once the app has run, a restarting sidecar no longer holds the Pod in Pending.
        assert_eq!(
            compute_phase(&s, &[proxy], &[running("app", true)], false),
            PHASE_RUNNING
        );
    }

    #[test]
    fn sidecar_waiting_without_history_is_pending_and_crash_looping_sidecar_is_ignored() {
        let s = spec(RESTART_NEVER, vec![sidecar("proxy")], &["app"]);
        assert_eq!(
            compute_phase(
                &s,
                &[waiting("proxy", "ContainerCreating")],
                &[waiting("app", "PodInitializing")],
                false
            ),
            PHASE_PENDING
        );
        assert_eq!(
            compute_phase(&s, &[crash_looping("proxy", 1)], &[running("app", true)], false),
            PHASE_RUNNING
        );
    }

    #[test]
    fn terminated_sidecar_does_not_affect_phase() {
        let s = spec(RESTART_NEVER, vec![sidecar("proxy")], &["app"]);
        assert_eq!(
            compute_phase(&s, &[exited("proxy", 137)], &[exited("app", 0)], false),
            PHASE_SUCCEEDED
        );
        assert_eq!(
            compute_phase(&s, &[exited("proxy", 0)], &[exited("app", 1)], false),
            PHASE_FAILED
        );
        // A running sidecar after the app finished still counts as running.
        assert_eq!(
            compute_phase(&s, &[running("proxy", true)], &[exited("app", 0)], false),
            PHASE_RUNNING
        );
    }

    #[test]
    fn missing_sidecar_status_is_unknown() {
        let s = spec(RESTART_NEVER, vec![sidecar("proxy")], &["app"]);
        assert_eq!(compute_phase(&s, &[], &[exited("app", 0)], false), PHASE_PENDING);
    }

    #[test]
    fn default_policy_is_always() {
        let mut s = spec(RESTART_ALWAYS, vec![], &["app"]);
        s.restart_policy = None;
        assert_eq!(compute_phase(&s, &[], &[exited("app", 1)], false), PHASE_RUNNING);
    }

    // ---- helpers ----

    #[test]
    fn restart_rules_and_reasons() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(should_restart("", 0));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 137));
        assert!(!should_restart("Never", 1));
        assert_eq!(terminated_reason(0, false), "Completed");
        assert_eq!(terminated_reason(1, false), "Error");
        assert_eq!(terminated_reason(137, true), "OOMKilled");
        assert!(is_sidecar(&sidecar("x")));
        assert!(!is_sidecar(&container("x")));
        let mut never = container("x");
        never.restart_policy = Some("Never".into());
        assert!(!is_sidecar(&never));
    }

    #[test]
    fn statuses_sort_by_name() {
        let mut v = vec![running("web", true), running("app", true), running("db", true)];
        sort_container_statuses(&mut v);
        let names: Vec<_> = v.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["app", "db", "web"]);
    }

    #[test]
    fn go_durations() {
        let s = Duration::from_secs;
        assert_eq!(go_duration(s(0)), "0s");
        assert_eq!(go_duration(s(10)), "10s");
        assert_eq!(go_duration(s(80)), "1m20s");
        assert_eq!(go_duration(s(300)), "5m0s");
        assert_eq!(go_duration(s(3600)), "1h0m0s");
        assert_eq!(go_duration(s(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_nanos(7)), "7ns");
        assert_eq!(go_duration(Duration::from_nanos(2_500)), "2.5µs");
    }

    #[test]
    fn back_off_messages() {
        assert_eq!(
            crash_loop_message(Duration::from_secs(40), "app", "app", "default", "u-1"),
            "back-off 40s restarting failed container=app pod=app_default(u-1)"
        );
        assert_eq!(
            crash_loop_message(Duration::from_secs(300), "app", "web", "prod", "u-2"),
            "back-off 5m0s restarting failed container=app pod=web_prod(u-2)"
        );
        assert_eq!(
            crash_loop_event_message("app", "app", "default", "u-1"),
            "Back-off restarting failed container app in pod app_default(u-1)"
        );
        assert_eq!(
            image_pull_back_off_message("nginx:1.27"),
            "Back-off pulling image \"nginx:1.27\""
        );
    }

    // ---- back-off ----

    /// Simulates a container that crashes `run` seconds after each start, with the kubelet restarting it the
    /// moment its back-off allows; returns the wait before each restart.
    fn simulate_crash_loop(crashes: usize, run: i64) -> Vec<u64> {
        let mut b = RestartBackoff::crash_loop();
        let mut now = ts(0);
        let mut waits = Vec::new();
        for _ in 0..crashes {
            now += SignedDuration::from_secs(run);
            let finished = now;
            let wait = b.in_backoff_since(finished, now).unwrap_or(Duration::ZERO);
            waits.push(wait.as_secs());
            now += signed(wait);
            assert_eq!(b.in_backoff_since(finished, now), None, "waited out at {now}");
            b.next(finished, now);
        }
        waits
    }

    #[test]
    fn crash_loop_schedule() {
        assert_eq!(simulate_crash_loop(8, 1), [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn crash_loop_resets_after_ten_minutes_running() {
        let mut b = RestartBackoff::crash_loop();
        assert_eq!(b.next(ts(0), ts(0)), Duration::from_secs(10));
        assert_eq!(b.next(ts(20), ts(30)), Duration::from_secs(20));
        assert_eq!(b.next(ts(40), ts(60)), Duration::from_secs(40));
        assert_eq!(b.current_delay(), Some(Duration::from_secs(40)));
        // Exactly 600 s after the last update is not yet expired.
        assert_eq!(b.in_backoff_since(ts(660), ts(661)), Some(Duration::from_secs(39)));
        // Ran more than ten minutes since the restart: expired, restart at once and start over at 10 s.
        assert_eq!(b.in_backoff_since(ts(661), ts(661)), None);
        assert_eq!(b.next(ts(661), ts(661)), Duration::from_secs(10));
        assert_eq!(b.in_backoff_since(ts(670), ts(675)), Some(Duration::from_secs(5)));
    }

    #[test]
    fn in_backoff_counts_from_finished_at() {
        let mut b = RestartBackoff::crash_loop();
        assert_eq!(
            b.in_backoff_since(ts(0), ts(0)),
            None,
            "no entry: first crash restarts at once"
        );
        b.next(ts(0), ts(0));
        b.next(ts(5), ts(15));
        // Delay 20 s from finishedAt 30.
        assert_eq!(b.in_backoff_since(ts(30), ts(30)), Some(Duration::from_secs(20)));
        assert_eq!(b.in_backoff_since(ts(30), ts(45)), Some(Duration::from_secs(5)));
        assert_eq!(b.in_backoff_since(ts(30), ts(50)), None);
        // Clock skew (now before finishedAt) keeps the back-off.
        assert_eq!(b.in_backoff_since(ts(30), ts(28)), Some(Duration::from_secs(22)));
    }

    #[test]
    fn image_pull_schedule_counts_from_last_update() {
        let mut b = RestartBackoff::image_pull();
        assert_eq!(b.in_backoff_since_update(ts(0)), None);
        let mut now = ts(0);
        let mut delays = Vec::new();
        for _ in 0..7 {
            let d = b.next(now, now);
            delays.push(d.as_secs());
            assert_eq!(b.in_backoff_since_update(now), Some(d));
            now += signed(d);
            assert_eq!(b.in_backoff_since_update(now), None);
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        // After a long pause the schedule starts over.
        now += SignedDuration::from_secs(601);
        assert_eq!(b.next(now, now), Duration::from_secs(10));
    }

    #[test]
    fn lowered_maximum_lowers_initial() {
        let mut b = RestartBackoff::new(Duration::from_secs(10), Duration::from_secs(5), CRASH_LOOP_RESET_AFTER);
        assert_eq!(b.next(ts(0), ts(0)), Duration::from_secs(5));
        assert_eq!(b.next(ts(1), ts(1)), Duration::from_secs(5));
    }

    // ---- conditions ----

    fn input<'a>(
        spec: &'a PodSpec,
        init_statuses: &'a [ContainerStatus],
        statuses: &'a [ContainerStatus],
        phase: &'a str,
    ) -> ConditionInput<'a> {
        ConditionInput {
            spec,
            init_statuses,
            statuses,
            phase,
            sandbox_ready: true,
            generation: Some(1),
        }
    }

    fn get<'a>(conds: &'a [PodCondition], t: &str) -> &'a PodCondition {
        conds.iter().find(|c| c.type_ == t).unwrap()
    }

    fn summary(c: &PodCondition) -> (String, Option<String>, Option<String>) {
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    fn s(status: &str, reason: Option<&str>, message: Option<&str>) -> (String, Option<String>, Option<String>) {
        (status.into(), reason.map(Into::into), message.map(Into::into))
    }

    #[test]
    fn conditions_for_a_ready_pod_in_order() {
        let sp = spec(RESTART_ALWAYS, vec![], &["app"]);
        let st = [running("app", true)];
        let conds = compute_conditions(&input(&sp, &[], &st, PHASE_RUNNING), &[], ts(0));
        let types: Vec<_> = conds.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        for c in &conds {
            assert_eq!(summary(c), s("True", None, None), "{}", c.type_);
            assert_eq!(c.last_transition_time, Some(Time(ts(0))));
            assert_eq!(c.last_probe_time, None);
            assert_eq!(c.observed_generation, Some(1));
        }
    }

    #[test]
    fn conditions_while_initializing() {
        let sp = spec(RESTART_ALWAYS, vec![container("a"), container("b")], &["app"]);
        let inits = [running("a", false), waiting("b", "PodInitializing")];
        let st = [waiting("app", "PodInitializing")];
        let mut inp = input(&sp, &inits, &st, PHASE_PENDING);
        inp.sandbox_ready = false;
        let conds = compute_conditions(&inp, &[], ts(0));
        assert_eq!(
            summary(get(&conds, "PodReadyToStartContainers")),
            s("False", None, None)
        );
        assert_eq!(
            summary(get(&conds, "Initialized")),
            s(
                "False",
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [a b]")
            )
        );
        let not_ready = s(
            "False",
            Some("ContainersNotReady"),
            Some("containers with unready status: [app]"),
        );
        assert_eq!(summary(get(&conds, "Ready")), not_ready);
        assert_eq!(summary(get(&conds, "ContainersReady")), not_ready);
        assert_eq!(summary(get(&conds, "PodScheduled")), s("True", None, None));
    }

    #[test]
    fn conditions_with_no_statuses_at_all() {
        let sp = spec(RESTART_ALWAYS, vec![container("init")], &["app"]);
        let conds = compute_conditions(&input(&sp, &[], &[], PHASE_PENDING), &[], ts(0));
        let unknown = s("False", Some("UnknownContainerStatuses"), None);
        assert_eq!(summary(get(&conds, "Initialized")), unknown);
        assert_eq!(summary(get(&conds, "Ready")), unknown);
        assert_eq!(summary(get(&conds, "ContainersReady")), unknown);
    }

    #[test]
    fn conditions_with_unknown_init_status() {
        let sp = spec(RESTART_ALWAYS, vec![container("a"), container("b")], &["app"]);
        let inits = [exited("a", 0)];
        let conds = compute_conditions(&input(&sp, &inits, &[], PHASE_PENDING), &[], ts(0));
        assert_eq!(
            summary(get(&conds, "Initialized")),
            s(
                "False",
                Some("ContainersNotInitialized"),
                Some("containers with unknown status: [b]")
            )
        );
        assert_eq!(
            get(&conds, "ContainersReady").message.as_deref(),
            Some("containers with unknown status: [app]")
        );
    }

    #[test]
    fn sidecars_count_in_readiness_and_initialization() {
        let sp = spec(RESTART_ALWAYS, vec![sidecar("proxy")], &["app"]);
        let mut proxy = running("proxy", false);
        proxy.started = Some(false);
        let st = [waiting("app", "PodInitializing")];
        let inits = [proxy];
        let conds = compute_conditions(&input(&sp, &inits, &st, PHASE_PENDING), &[], ts(0));
        assert_eq!(
            get(&conds, "Initialized").message.as_deref(),
            Some("containers with incomplete status: [proxy]")
        );
        assert_eq!(
            get(&conds, "ContainersReady").message.as_deref(),
            Some("containers with unready status: [proxy app]")
        );
        // Once the app runs, Initialized is True even if the sidecar restarts.
        let st = [running("app", true)];
        let conds = compute_conditions(&input(&sp, &inits, &st, PHASE_RUNNING), &[], ts(0));
        assert_eq!(summary(get(&conds, "Initialized")), s("True", None, None));
        assert_eq!(
            get(&conds, "Ready").message.as_deref(),
            Some("containers with unready status: [proxy]")
        );
    }

    #[test]
    fn conditions_for_terminal_phases() {
        let sp = spec(RESTART_NEVER, vec![container("init")], &["app"]);
        let inits = [ContainerStatus {
            ready: true,
            ..exited("init", 0)
        }];
        let st = [exited("app", 0)];
        let conds = compute_conditions(&input(&sp, &inits, &st, PHASE_SUCCEEDED), &[], ts(0));
        assert_eq!(
            summary(get(&conds, "Initialized")),
            s("True", Some("PodCompleted"), None)
        );
        assert_eq!(summary(get(&conds, "Ready")), s("False", Some("PodCompleted"), None));
        assert_eq!(
            summary(get(&conds, "ContainersReady")),
            s("False", Some("PodCompleted"), None)
        );

        let st = [exited("app", 1)];
        let conds = compute_conditions(&input(&sp, &inits, &st, PHASE_FAILED), &[], ts(0));
        assert_eq!(summary(get(&conds, "Initialized")), s("True", None, None));
        assert_eq!(summary(get(&conds, "Ready")), s("False", Some("PodFailed"), None));
        assert_eq!(
            summary(get(&conds, "ContainersReady")),
            s("False", Some("PodFailed"), None)
        );

        // Failed by its init container: not initialized.
        let inits = [exited("init", 1)];
        let st = [waiting("app", "PodInitializing")];
        let conds = compute_conditions(&input(&sp, &inits, &st, PHASE_FAILED), &[], ts(0));
        assert_eq!(
            summary(get(&conds, "Initialized")),
            s(
                "False",
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [init]")
            )
        );
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let sp = spec(RESTART_ALWAYS, vec![], &["app"]);
        let unready = [running("app", false)];
        let first = compute_conditions(&input(&sp, &[], &unready, PHASE_RUNNING), &[], ts(0));
        // Same statuses later: every lastTransitionTime stays.
        let second = compute_conditions(&input(&sp, &[], &unready, PHASE_RUNNING), &first, ts(30));
        assert_eq!(first, second);
        // Ready flips at t=60: Ready and ContainersReady transition, the others keep t=0.
        let ready = [running("app", true)];
        let third = compute_conditions(&input(&sp, &[], &ready, PHASE_RUNNING), &second, ts(60));
        assert_eq!(get(&third, "Ready").last_transition_time, Some(Time(ts(60))));
        assert_eq!(get(&third, "ContainersReady").last_transition_time, Some(Time(ts(60))));
        assert_eq!(get(&third, "Initialized").last_transition_time, Some(Time(ts(0))));
        assert_eq!(get(&third, "PodScheduled").last_transition_time, Some(Time(ts(0))));
        assert_eq!(get(&third, "Ready").status, "True");
        assert_eq!(get(&third, "Ready").reason, None);
    }

    #[test]
    fn transition_time_is_whole_seconds() {
        let sp = spec(RESTART_ALWAYS, vec![], &["app"]);
        let st = [running("app", true)];
        let now = ts(5) + SignedDuration::from_millis(750);
        let conds = compute_conditions(&input(&sp, &[], &st, PHASE_RUNNING), &[], now);
        assert_eq!(get(&conds, "Ready").last_transition_time, Some(Time(ts(5))));
    }

    #[test]
    fn foreign_conditions_are_kept_first_and_gate_readiness() {
        let mut sp = spec(RESTART_ALWAYS, vec![], &["app"]);
        sp.readiness_gates = Some(vec![
            PodReadinessGate {
                condition_type: "example.com/lb".into(),
            },
            PodReadinessGate {
                condition_type: "example.com/missing".into(),
            },
        ]);
        let st = [running("app", true)];
        let lb = PodCondition {
            type_: "example.com/lb".into(),
            status: "False".into(),
            last_transition_time: Some(Time(ts(-100))),
            ..PodCondition::default()
        };
        let old_ready = PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some(Time(ts(-50))),
            ..PodCondition::default()
        };
        let previous = [old_ready, lb.clone()];
        let conds = compute_conditions(&input(&sp, &[], &st, PHASE_RUNNING), &previous, ts(0));
        assert_eq!(conds[0], lb);
        assert_eq!(conds.len(), 6);
        assert_eq!(
            summary(get(&conds, "Ready")),
            s(
                "False",
                Some("ReadinessGatesNotReady"),
                Some(
                    "the status of pod readiness gate \"example.com/lb\" is not \"True\", but False, \
                     corresponding condition of pod readiness gate \"example.com/missing\" does not exist."
                )
            )
        );
        // Ready stayed False: its transition time is kept.
        assert_eq!(get(&conds, "Ready").last_transition_time, Some(Time(ts(-50))));
        assert_eq!(summary(get(&conds, "ContainersReady")), s("True", None, None));
    }
}
