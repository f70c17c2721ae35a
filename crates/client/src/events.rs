//! Events as client-go's core/v1 recorder (`tools/record`) writes them: a new Event named
//! `<object name>.<hex nanoseconds>` with `count: 1` and `firstTimestamp == lastTimestamp`; a repeat of the same
//! event (same source, involved object incl. `fieldPath`, type, reason and message) PATCHes the existing one
//! (`count + 1`, new `lastTimestamp`), which is what makes `kubectl describe` print `(x3 over 40s)`.
//!
//! Recording never fails the caller: errors are logged. The repeat cache is bounded (least recently used entries
//! go first), as client-go's is. Not done here: client-go's aggregation of >10 similar messages and its per-object
//! spam filter.

use crate::{Client, ClientError, PatchType};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// How many distinct events the recorder remembers for repeats (client-go's `maxLruCacheEntries`).
pub const MAX_CACHED_EVENTS: usize = 4096;

/// The object an event is about (`involvedObject`, a core/v1 `ObjectReference`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ObjectRef {
    pub kind: String,
    /// Empty for cluster-scoped objects (their events go to the `default` namespace).
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub api_version: String,
    pub resource_version: String,
    /// A part of the object, e.g. `spec.containers{app}` for a container's events.
    pub field_path: Option<String>,
}

impl ObjectRef {
    /// The reference to an object as the API returned it (kind and apiVersion from the object; a Pod's JSON from a
    /// list may lack them, so they default to `Pod` and `v1`).
    pub fn from_object(obj: &Value) -> Self {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
        let or = |v: String, d: &str| if v.is_empty() { d.to_string() } else { v };
        Self {
            kind: or(s("/kind"), "Pod"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            uid: s("/metadata/uid"),
            api_version: or(s("/apiVersion"), "v1"),
            resource_version: s("/metadata/resourceVersion"),
            field_path: None,
        }
    }

    /// The reference to a Pod (kind `Pod`, apiVersion `v1` whatever the JSON says).
    pub fn from_pod(pod: &Value) -> Self {
        Self {
            kind: "Pod".into(),
            api_version: "v1".into(),
            ..Self::from_object(pod)
        }
    }

    /// The same reference narrowed to a part of the object (`spec.containers{app}`).
    pub fn with_field_path(mut self, field_path: impl Into<String>) -> Self {
        self.field_path = Some(field_path.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": self.kind,
            "name": self.name,
            "apiVersion": self.api_version,
        });
        for (k, val) in [
            ("namespace", &self.namespace),
            ("uid", &self.uid),
            ("resourceVersion", &self.resource_version),
        ] {
            if !val.is_empty() {
                v[k] = json!(val);
            }
        }
        if let Some(f) = &self.field_path {
            v["fieldPath"] = json!(f);
        }
        v
    }

    /// The namespace the event lives in: the object's, or `default` for cluster-scoped objects.
    fn event_namespace(&self) -> &str {
        if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }
}

/// What makes two events "the same" (client-go's `getEventKey`; the resourceVersion is not part of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    component: String,
    host: String,
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    api_version: String,
    field_path: String,
    type_: String,
    reason: String,
    message: String,
}

/// The Event already written for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedEvent {
    name: String,
    namespace: String,
    count: i64,
    /// Tick of the last use, for eviction.
    last_used: u64,
}

/// A bounded map from event key to the Event written for it; the least recently used entry goes first.
#[derive(Debug)]
struct EventCache {
    entries: HashMap<EventKey, CachedEvent>,
    capacity: usize,
    tick: u64,
}

impl EventCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            tick: 0,
        }
    }

    fn get(&mut self, key: &EventKey) -> Option<CachedEvent> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.last_used = tick;
            e.clone()
        })
    }

    fn put(&mut self, key: EventKey, name: String, namespace: String, count: i64) {
        self.tick += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            // One linear scan per insertion into a full cache: 4096 entries, far cheaper than the API call that
            // accompanies every insertion.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            key,
            CachedEvent {
                name,
                namespace,
                count,
                last_used: self.tick,
            },
        );
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// `util.GenerateEventName`: the object's name, a dot and the time in nanoseconds in lowercase hex.
fn event_name(object_name: &str, unix_nanos: i128) -> String {
    format!("{object_name}.{unix_nanos:x}")
}

/// Kubernetes' `metav1.Time` wire format (RFC 3339, seconds, UTC).
fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A new core/v1 Event (`makeEvent` + the recorder's source and reporting fields).
fn new_event(
    object: &ObjectRef,
    component: &str,
    host: Option<&str>,
    type_: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> Value {
    let ts = format_time(now);
    let mut source = json!({ "component": component });
    if let Some(h) = host {
        source["host"] = json!(h);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(&object.name, now.as_nanosecond()),
            "namespace": object.event_namespace(),
        },
        "involvedObject": object.to_json(),
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
        "type": type_,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": host.unwrap_or(""),
    })
}

struct Inner {
    client: Client,
    component: String,
    host: Option<String>,
    /// Held across the API call that creates or patches an event, so repeats of one event are counted in order
    /// (client-go's broadcaster also writes events one at a time).
    cache: tokio::sync::Mutex<EventCache>,
}

/// Records events for one component (`kubelet`, `default-scheduler`). Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct EventRecorder {
    inner: Arc<Inner>,
}

impl EventRecorder {
    /// A recorder whose events say `source: {component, host}`.
    pub fn new(client: Client, component: &str, host: Option<&str>) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                component: component.to_string(),
                host: host.map(str::to_string),
                cache: tokio::sync::Mutex::new(EventCache::new(MAX_CACHED_EVENTS)),
            }),
        }
    }

    /// Records an event about `object`; `type_` is `Normal` or `Warning`. Never fails: errors are logged.
    pub async fn record(&self, object: &ObjectRef, type_: &str, reason: &str, message: &str) {
        let inner = &self.inner;
        let key = EventKey {
            component: inner.component.clone(),
            host: inner.host.clone().unwrap_or_default(),
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: object.uid.clone(),
            api_version: object.api_version.clone(),
            field_path: object.field_path.clone().unwrap_or_default(),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let mut cache = inner.cache.lock().await;
        let now = jiff::Timestamp::now();
        if let Some(prev) = cache.get(&key) {
            let count = prev.count + 1;
            let path = format!("/api/v1/namespaces/{}/events/{}", prev.namespace, prev.name);
            let patch = json!({"count": count, "lastTimestamp": format_time(now)});
            match inner.client.patch(&path, PatchType::Merge, &patch).await {
                Ok(_) => {
                    cache.put(key, prev.name, prev.namespace, count);
                    return;
                }
                // The event expired or was deleted: start a new one, as client-go does.
                Err(ClientError::Status { code: 404, .. }) => {}
                Err(e) => {
                    tracing::warn!(event = %prev.name, namespace = %prev.namespace, reason, error = %e, "could not update event");
                    return;
                }
            }
        }
        let event = new_event(
            object,
            &inner.component,
            inner.host.as_deref(),
            type_,
            reason,
            message,
            now,
        );
        let namespace = object.event_namespace().to_string();
        let name = event["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let path = format!("/api/v1/namespaces/{namespace}/events");
        match inner.client.create(&path, &event).await {
            Ok(_) => cache.put(key, name, namespace, 1),
            Err(e) => {
                tracing::warn!(object = %object.name, namespace = %namespace, reason, error = %e, "could not record event")
            }
        }
    }

    /// How many distinct events are remembered for repeats (at most [`MAX_CACHED_EVENTS`]).
    pub async fn cached(&self) -> usize {
        self.inner.cache.lock().await.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(message: &str, field_path: &str) -> EventKey {
        EventKey {
            component: "kubelet".into(),
            host: "n1".into(),
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
            api_version: "v1".into(),
            field_path: field_path.into(),
            type_: "Normal".into(),
            reason: "Pulled".into(),
            message: message.into(),
        }
    }

    #[test]
    fn event_names_are_the_object_name_and_hex_nanoseconds() {
        assert_eq!(event_name("nginx", 0x17a2b3c4d5e6f708), "nginx.17a2b3c4d5e6f708");
        assert_eq!(event_name("a.b", 255), "a.b.ff");
    }

    #[test]
    fn a_new_event_looks_like_client_gos() {
        let pod = json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42"},
                         "spec": {}});
        let r = ObjectRef::from_pod(&pod);
        let now = jiff::Timestamp::new(1_700_000_000, 123).unwrap();
        let e = new_event(
            &r,
            "default-scheduler",
            None,
            "Normal",
            "Scheduled",
            "Successfully assigned shop/web to n1",
            now,
        );
        assert_eq!(e["metadata"]["namespace"], "shop");
        assert_eq!(
            e["metadata"]["name"],
            format!("web.{:x}", 1_700_000_000_000_000_123i128)
        );
        assert_eq!(
            e["involvedObject"],
            json!({"kind": "Pod", "namespace": "shop", "name": "web", "uid": "u-1", "apiVersion": "v1", "resourceVersion": "42"})
        );
        assert_eq!(e["firstTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(e["lastTimestamp"], e["firstTimestamp"]);
        assert_eq!(e["count"], 1);
        assert_eq!(e["type"], "Normal");
        assert_eq!(e["source"], json!({"component": "default-scheduler"}));
        assert_eq!(e["reportingComponent"], "default-scheduler");
        assert_eq!(e["reportingInstance"], "");

        let c = r.clone().with_field_path("spec.containers{app}");
        let e = new_event(&c, "kubelet", Some("n1"), "Warning", "BackOff", "m", now);
        assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{app}");
        assert_eq!(e["source"], json!({"component": "kubelet", "host": "n1"}));
        assert_eq!(e["reportingInstance"], "n1");
    }

    #[test]
    fn cluster_scoped_objects_have_their_events_in_default() {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "x"}});
        let r = ObjectRef::from_object(&node);
        assert_eq!(r.kind, "Node");
        assert_eq!(r.event_namespace(), "default");
        let e = new_event(
            &r,
            "kubelet",
            Some("n1"),
            "Normal",
            "Starting",
            "s",
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(e["metadata"]["namespace"], "default");
        assert!(e["involvedObject"].get("namespace").is_none());
    }

    #[test]
    fn the_key_tells_field_paths_and_messages_apart() {
        assert_eq!(key("m", ""), key("m", ""));
        assert_ne!(key("m", ""), key("m", "spec.containers{a}"));
        assert_ne!(key("m", ""), key("n", ""));
    }

    #[test]
    fn the_cache_counts_and_forgets_the_least_recently_used() {
        let mut c = EventCache::new(2);
        c.put(key("a", ""), "p.1".into(), "default".into(), 1);
        c.put(key("b", ""), "p.2".into(), "default".into(), 1);
        // Touch "a" so that "b" is the oldest.
        assert_eq!(c.get(&key("a", "")).map(|e| e.count), Some(1));
        c.put(key("a", ""), "p.1".into(), "default".into(), 2);
        c.put(key("c", ""), "p.3".into(), "default".into(), 1);
        assert_eq!(c.len(), 2);
        assert!(c.get(&key("b", "")).is_none());
        assert_eq!(c.get(&key("a", "")).map(|e| (e.name, e.count)), Some(("p.1".into(), 2)));
        assert!(c.get(&key("c", "")).is_some());
    }

    #[test]
    fn the_cache_is_bounded_at_its_capacity() {
        let mut c = EventCache::new(MAX_CACHED_EVENTS);
        for i in 0..MAX_CACHED_EVENTS + 100 {
            c.put(key(&i.to_string(), ""), format!("p.{i}"), "default".into(), 1);
        }
        assert_eq!(c.len(), MAX_CACHED_EVENTS);
        assert!(c.get(&key("0", "")).is_none());
        assert!(c.get(&key(&(MAX_CACHED_EVENTS + 99).to_string(), "")).is_some());
    }
}
