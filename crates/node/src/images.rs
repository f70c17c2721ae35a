//! Images for a Pod's containers, as the kubelet's image manager does it: the pull policy (`Always`,
//! `IfNotPresent`, `Never`, with Kubernetes' default from the tag), `imagePullSecrets`, pulls deduplicated by the
//! image store, the events (`Pulling`, `Pulled`, `Failed`, `BackOff`, `ErrImageNeverPull`, `InspectFailed`) and the
//! image pull back-off per Pod and image (10 s doubling to 300 s).

use crate::AgentContext;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use peapod_api::pod_status::RestartBackoff;
use peapod_client::events::ObjectRef;
use peapod_image::reference::ImageRef;
use peapod_image::registry::DockerConfig;
use peapod_image::store::Image;
use std::collections::HashMap;

/// Why a container waits for its image: the reason and message of its `waiting` state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageWait {
    pub reason: &'static str,
    pub message: String,
}

/// Per-Pod state of image pulls: the back-off per image and the last error.
#[derive(Debug, Default)]
pub struct PullState {
    backoff: HashMap<String, RestartBackoff>,
    last_error: HashMap<String, String>,
}

impl PullState {
    /// The time the next pull of `image` may be tried, if it is backing off.
    pub fn retry_in(&self, image: &str, now: Timestamp) -> Option<std::time::Duration> {
        self.backoff.get(image).and_then(|b| b.in_backoff_since_update(now))
    }
}

/// The `imagePullSecrets` of a Pod, fetched and parsed (missing ones are skipped, as the kubelet does with a
/// warning).
pub async fn pull_secrets(ctx: &AgentContext, pod: &Pod) -> Vec<DockerConfig> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    for s in pod.spec.iter().flat_map(|s| s.image_pull_secrets.iter().flatten()) {
        let path = format!("/api/v1/namespaces/{ns}/secrets/{}", s.name);
        let Ok(v) = ctx.client.get(&path).await else { continue };
        for key in [".dockerconfigjson", ".dockercfg"] {
            let Some(b64) = v
                .pointer(&format!("/data/{}", key.replace('/', "~1")))
                .and_then(|x| x.as_str())
            else {
                continue;
            };
            use base64::Engine;
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
                if let Ok(cfg) = DockerConfig::parse(&bytes, &format!("secret {ns}/{}", s.name)) {
                    out.push(cfg);
                }
            }
        }
    }
    out
}

/// Makes the container's image available. `Err` is the waiting state to show (`ErrImagePull`, `ImagePullBackOff`,
/// `ErrImageNeverPull`, `InvalidImageName`).
/// Where events go: the worker's ordered queue (object, type, reason, message).
pub type EventQueue = tokio::sync::mpsc::UnboundedSender<(ObjectRef, &'static str, &'static str, String)>;

pub async fn ensure_image(
    ctx: &AgentContext,
    state: &mut PullState,
    pod: &Pod,
    c: &Container,
    secrets: &[DockerConfig],
    events: &EventQueue,
) -> Result<Image, ImageWait> {
    let image = c.image.clone().unwrap_or_default();
    let obj = crate::worker::pod_ref(pod).with_field_path(crate::worker::field_path(pod, &c.name));
    let rec = |type_: &'static str, reason: &'static str, message: String| {
        let _ = events.send((obj.clone(), type_, reason, message));
    };
    let r = match ImageRef::parse(&image) {
        Ok(r) => r,
        Err(e) => {
            let msg = peapod_image::reference::invalid_image_name_message(&image, &e);
            rec("Warning", "InspectFailed", msg.clone());
            return Err(ImageWait {
                reason: "InvalidImageName",
                message: msg,
            });
        }
    };
    let policy = c
        .image_pull_policy
        .clone()
        .unwrap_or_else(|| peapod_api::defaults::image_pull_policy_for(&image).to_string());
    let present = {
        let images = ctx.images.clone();
        let name = r.to_string();
        tokio::task::spawn_blocking(move || images.get(&name).ok())
            .await
            .ok()
            .flatten()
    };
    if policy == "Never" || (policy == "IfNotPresent" && present.is_some()) {
        return match present {
            Some(img) => {
                let msg = format!("Container image {image:?} already present on machine");
                rec("Normal", "Pulled", msg.to_string());
                Ok(img)
            }
            None => {
                let msg = format!("Container image {image:?} is not present with pull policy of Never");
                rec("Warning", "ErrImageNeverPull", msg.to_string());
                Err(ImageWait {
                    reason: "ErrImageNeverPull",
                    message: msg,
                })
            }
        };
    }
    let now = Timestamp::now();
    if state.retry_in(&image, now).is_some() {
        rec(
            "Normal",
            "BackOff",
            peapod_api::pod_status::image_pull_back_off_message(&image),
        );
        let last = state.last_error.get(&image).cloned().unwrap_or_default();
        return Err(ImageWait {
            reason: "ImagePullBackOff",
            message: format!("Back-off pulling image {image:?}: ErrImagePull: {last}"),
        });
    }
    rec("Normal", "Pulling", format!("Pulling image {image:?}"));
    let started = std::time::Instant::now();
    match ctx.puller.pull(&r, secrets, None).await {
        Ok(img) => {
            state.backoff.remove(&image);
            state.last_error.remove(&image);
            let took = started.elapsed();
            let size: u64 = img.layers.iter().map(|l| l.desc.size).sum::<u64>() + img.manifest.config.size;
            let msg = format!(
                "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {size} bytes.",
                go_ms(took),
                go_ms(took)
            );
            rec("Normal", "Pulled", msg.to_string());
            Ok(img)
        }
        Err(e) => {
            let msg = e.cri_message();
            rec("Warning", "Failed", format!("Failed to pull image {image:?}: {msg}"));
            state
                .backoff
                .entry(image.clone())
                .or_insert_with(RestartBackoff::image_pull)
                .next(now, Timestamp::now());
            state.last_error.insert(image, msg.clone());
            Err(ImageWait {
                reason: "ErrImagePull",
                message: msg,
            })
        }
    }
}

/// A duration as Go prints one truncated to milliseconds (`313ms`, `1.661s`).
pub fn go_ms(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_truncates_them() {
        assert_eq!(go_ms(std::time::Duration::from_micros(313_400)), "313ms");
        assert_eq!(go_ms(std::time::Duration::from_millis(1661)), "1.661s");
        assert_eq!(go_ms(std::time::Duration::from_millis(2000)), "2s");
        assert_eq!(go_ms(std::time::Duration::from_millis(1500)), "1.5s");
    }
}
