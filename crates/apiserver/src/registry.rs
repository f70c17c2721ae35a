//! Objects in the store: JSON encoding, `metadata.resourceVersion` from the store's revisions, and a cache of
//! decoded objects so that lists and watches do not parse the same bytes twice.
//!
//! Objects are stored without `resourceVersion` (the revision is only known once the write commits) and get it on
//! the way out. Writes run on the blocking pool because they wait for the store's fsync. Every store error is
//! turned into Kubernetes' error for the resource and name at hand.

use peapod_api::resources::ResourceInfo;
use peapod_api::ApiError;
use peapod_store::{Event, KeyValue, ListOptions, Revision, Store, StoreError, Watch};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A decoded object with its resourceVersion set.
pub type Object = Arc<Value>;

/// The objects of the cluster, on top of the store.
pub struct Registry {
    store: Arc<dyn Store>,
    /// Decoded objects by key, each with the revision it was decoded at.
    cache: Mutex<HashMap<String, (Revision, Object)>>,
}

/// Maps a store error to the API error a client should see for `info`/`name`.
pub fn store_error(info: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists { .. } => ApiError::already_exists(info.group, info.plural, name),
        StoreError::NotFound { .. } => ApiError::not_found(info.group, info.plural, name),
        StoreError::Conflict { .. } => ApiError::modified(info.group, info.plural, name),
        StoreError::Compacted { requested, compacted } => ApiError::expired(requested, compacted),
        StoreError::FutureRevision { requested, current } => ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        ),
        StoreError::Backend { context, message } => {
            tracing::error!(%context, %message, "store failure");
            if message.contains("full") || message.contains("readonly") || message.contains("read-only") {
                ApiError::insufficient_storage(format!("storage is unavailable: {context}: {message}"))
            } else {
                ApiError::internal(format!("{context}: {message}"))
            }
        }
        StoreError::Closed => ApiError::service_unavailable("the store is shutting down"),
    }
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Decodes a stored value, from the cache when this revision was decoded before.
    pub fn decode(&self, kv: &KeyValue) -> Result<Object, ApiError> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((rev, obj)) = cache.get(&kv.key) {
                if *rev == kv.mod_revision {
                    return Ok(obj.clone());
                }
            }
        }
        let obj = Arc::new(decode_value(kv)?);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(&kv.key) {
            // Keep the newer entry if a concurrent reader decoded a later revision.
            Some((rev, _)) if *rev > kv.mod_revision => {}
            _ => {
                cache.insert(kv.key.clone(), (kv.mod_revision, obj.clone()));
            }
        }
        Ok(obj)
    }

    /// Decodes a value that is not the key's latest (a watch's previous value, a delete's last state) without
    /// touching the cache.
    pub fn decode_uncached(&self, kv: &KeyValue) -> Result<Object, ApiError> {
        decode_value(kv).map(Arc::new)
    }

    fn forget(&self, key: &str) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// The current object at `key`.
    pub fn get(&self, info: &ResourceInfo, key: &str, name: &str) -> Result<Option<Object>, ApiError> {
        match self.store.get(key).map_err(|e| store_error(info, name, e))? {
            Some(kv) => self.decode(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// The objects under `prefix` (see [`ListOptions`]), the revision they were read at and how many remain.
    pub fn list(
        &self,
        info: &ResourceInfo,
        prefix: &str,
        opts: &ListOptions,
    ) -> Result<(Vec<Object>, Revision, u64), ApiError> {
        let res = self.store.list(prefix, opts).map_err(|e| store_error(info, "", e))?;
        let latest = opts.revision.is_none();
        let mut out = Vec::with_capacity(res.items.len());
        for kv in &res.items {
            out.push(if latest {
                self.decode(kv)?
            } else {
                self.decode_uncached(kv)?
            });
        }
        Ok((out, res.revision, res.remaining))
    }

    /// Creates the object at `key`; returns it with its resourceVersion.
    pub async fn create(&self, info: &ResourceInfo, key: &str, name: &str, obj: &Value) -> Result<Object, ApiError> {
        let bytes = encode(obj)?;
        let store = self.store.clone();
        let k = key.to_string();
        let rev = blocking(move || store.create(&k, bytes))
            .await?
            .map_err(|e| store_error(info, name, e))?;
        Ok(self.with_revision(key, obj, rev))
    }

    /// Replaces the object at `key` if its resourceVersion is still `expected`.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        key: &str,
        name: &str,
        obj: &Value,
        expected: Revision,
    ) -> Result<Object, ApiError> {
        let bytes = encode(obj)?;
        let store = self.store.clone();
        let k = key.to_string();
        let rev = blocking(move || store.update(&k, bytes, expected))
            .await?
            .map_err(|e| store_error(info, name, e))?;
        Ok(self.with_revision(key, obj, rev))
    }

    /// Removes the object at `key` (only at revision `expected`, if given); returns its last state.
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        key: &str,
        name: &str,
        expected: Option<Revision>,
    ) -> Result<Object, ApiError> {
        let store = self.store.clone();
        let k = key.to_string();
        let (_rev, last) = blocking(move || store.delete(&k, expected))
            .await?
            .map_err(|e| store_error(info, name, e))?;
        self.forget(key);
        // The last state carries the resourceVersion it had before the delete, as kube-apiserver returns it.
        let mut v = decode_value(&last)?;
        if let Some(prev) = expected {
            set_resource_version(&mut v, prev);
        }
        Ok(Arc::new(v))
    }

    /// Changes under `prefix` after revision `after`.
    pub fn watch(&self, info: &ResourceInfo, prefix: &str, after: Revision) -> Result<Watch, ApiError> {
        self.store.watch(prefix, after).map_err(|e| store_error(info, "", e))
    }

    pub fn current_revision(&self) -> Result<Revision, ApiError> {
        self.store.current_revision().map_err(ApiError::internal)
    }

    /// Decodes a watch event's object (the new state, or for deletes the last state).
    pub fn decode_event(&self, ev: &Event) -> Result<Object, ApiError> {
        match ev.kind {
            peapod_store::EventKind::Deleted => {
                let mut v = decode_value(&ev.kv)?;
                set_resource_version(&mut v, ev.kv.mod_revision);
                Ok(Arc::new(v))
            }
            _ => self.decode_uncached(&ev.kv),
        }
    }

    fn with_revision(&self, key: &str, obj: &Value, rev: Revision) -> Object {
        let mut v = obj.clone();
        set_resource_version(&mut v, rev);
        let o = Arc::new(v);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key.to_string(), (rev, o.clone()));
        o
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("store task failed: {e}")))
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(v: &mut Value, rev: Revision) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
}

/// The resourceVersion an object carries, if any and numeric.
pub fn resource_version(v: &Value) -> Option<Revision> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&v).map_err(|e| ApiError::internal(format!("encode object: {e}")))
}

fn decode_value(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("decode stored object {}: {e}", kv.key)))?;
    set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}
