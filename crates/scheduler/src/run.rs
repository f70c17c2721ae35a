//! The scheduling loop: feeds watch events into the [`SchedulerState`], runs a pass after each batch, and carries
//! out its actions — `pods/binding` and the `Scheduled` event, or the `PodScheduled=False` status patch and the
//! `FailedScheduling` event. Event-driven: it wakes for watch events, bind outcomes, the earliest bind back-off and
//! the periodic flush of unschedulable Pods, and never polls.

use crate::fit::str_at;
use crate::queue::{
    pod_key, Action, BindOutcome, ClusterEvent, Kind, SchedulerState, SCHEDULER_NAME, UNSCHEDULABLE_FLUSH,
};
use crate::watch::list_and_watch;
use crate::SchedulerError;
use peapod_client::events::{EventRecorder, ObjectRef};
use peapod_client::{Client, ClientError, PatchType};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Watch events buffered between the watchers and the loop.
const EVENT_BUFFER: usize = 1024;

fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The message of an API error Status, or the error itself.
fn api_message(e: &ClientError) -> String {
    match e {
        ClientError::Status { body, .. } => match body.get("message").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => e.to_string(),
        },
        other => other.to_string(),
    }
}

/// Binds `pod` to `node`, records `Scheduled`, and says how it went.
async fn bind(client: Client, recorder: EventRecorder, pod: Value, node: String) -> BindOutcome {
    let ns = str_at(&pod, "/metadata/namespace");
    let name = str_at(&pod, "/metadata/name");
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}/binding");
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": str_at(&pod, "/metadata/uid")},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match client.create(&path, &binding).await {
        Ok(_) => {
            tracing::info!(pod.namespace = ns, pod.name = name, node = %node, "bound");
            let msg = format!("Successfully assigned {ns}/{name} to {node}");
            recorder
                .record(&ObjectRef::from_pod(&pod), "Normal", "Scheduled", &msg)
                .await;
            BindOutcome::Bound
        }
        // Gone, or bound by someone else meanwhile: the watch tells the rest.
        Err(ClientError::Status { code: 404 | 409, .. }) => BindOutcome::Moot,
        Err(e) => {
            tracing::warn!(pod.namespace = ns, pod.name = name, node = %node, error = %e, "bind failed");
            // kube-scheduler reports the binder's error as it is.
            let msg = api_message(&e);
            recorder
                .record(&ObjectRef::from_pod(&pod), "Warning", "FailedScheduling", &msg)
                .await;
            BindOutcome::Failed
        }
    }
}

/// Reports a Pod that fits nowhere: the condition (when it changed) and the event.
async fn report_unschedulable(
    client: Client,
    recorder: EventRecorder,
    pod: Value,
    message: String,
    status_patch: Option<Value>,
) {
    let ns = str_at(&pod, "/metadata/namespace");
    let name = str_at(&pod, "/metadata/name");
    tracing::info!(pod.namespace = ns, pod.name = name, reason = %message, "unschedulable");
    if let Some(patch) = status_patch {
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
        if let Err(e) = client.patch(&path, PatchType::StrategicMerge, &patch).await {
            tracing::warn!(pod.namespace = ns, pod.name = name, error = %e, "could not set PodScheduled=False");
        }
    }
    recorder
        .record(&ObjectRef::from_pod(&pod), "Warning", "FailedScheduling", &message)
        .await;
}

/// Runs the scheduler until its watches stop (they retry the API server forever, so in practice: forever).
/// Logs a cluster event at debug level (which object, which revision).
fn trace_event(ev: &ClusterEvent) {
    match ev {
        ClusterEvent::Listed { kind, items } => tracing::debug!(?kind, items = items.len(), "listed"),
        ClusterEvent::Applied { kind, object } | ClusterEvent::Deleted { kind, object } => tracing::debug!(
            ?kind,
            name = str_at(object, "/metadata/name"),
            rv = str_at(object, "/metadata/resourceVersion"),
            conditions = object
                .pointer("/status/conditions")
                .map(|c| c.to_string())
                .unwrap_or_default()
                .len(),
            "applied"
        ),
    }
}

pub async fn run(client: Client) -> Result<(), SchedulerError> {
    let (tx, mut events) = mpsc::channel(EVENT_BUFFER);
    tokio::spawn(list_and_watch(client.clone(), Kind::Node, tx.clone()));
    tokio::spawn(list_and_watch(client.clone(), Kind::Pod, tx));
    let recorder = EventRecorder::new(client.clone(), SCHEDULER_NAME, None);
    let (done_tx, mut done) = mpsc::unbounded_channel::<(String, String, BindOutcome)>();
    let mut state = SchedulerState::new();
    let mut flush = tokio::time::interval_at(Instant::now() + UNSCHEDULABLE_FLUSH, UNSCHEDULABLE_FLUSH);
    tracing::info!("scheduler started");
    loop {
        let backoff = state.next_backoff().map(Instant::from_std);
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return Err(SchedulerError::WatchesEnded) };
                trace_event(&ev);
                state.apply(ev);
                // Take in everything already waiting before scheduling, so a burst is one pass.
                while let Ok(ev) = events.try_recv() {
                    trace_event(&ev);
                    state.apply(ev);
                }
            }
            Some((key, uid, outcome)) = done.recv() => {
                state.bind_done(&key, &uid, outcome, Instant::now().into_std());
            }
            _ = flush.tick() => state.flush_unschedulable(),
            _ = async { if let Some(t) = backoff { tokio::time::sleep_until(t).await } }, if backoff.is_some() => {
                state.expire_backoffs(Instant::now().into_std());
            }
        }
        for action in state.schedule_pass(&now_rfc3339(), Instant::now().into_std()) {
            match action {
                Action::Bind { pod, node } => {
                    let (client, recorder, done_tx) = (client.clone(), recorder.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let key = pod_key(&pod);
                        let uid = str_at(&pod, "/metadata/uid").to_string();
                        let outcome = bind(client, recorder, pod, node).await;
                        let _ = done_tx.send((key, uid, outcome));
                    });
                }
                Action::Unschedulable {
                    pod,
                    message,
                    status_patch,
                } => {
                    tokio::spawn(report_unschedulable(
                        client.clone(),
                        recorder.clone(),
                        pod,
                        message,
                        status_patch,
                    ));
                }
            }
        }
    }
}
