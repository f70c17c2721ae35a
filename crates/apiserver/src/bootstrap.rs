//! What every cluster starts with and the API's own housekeeping: the namespaces `default`, `kube-system`,
//! `kube-public` and `kube-node-lease`; a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap in every
//! namespace; namespace deletion (a
//! terminating namespace is emptied, then removed); and compaction of the store's history.
//!
//! These loops run inside the server and write through the same registry and delete semantics as API requests
//! (graceful for Pods on a node), so what they do is what a client would see a controller do.

use crate::handlers::{self, State};
use crate::registry::{resource_version, Registry};
use crate::route::ResourceRoute;
use crate::service_accounts;
use crate::ServerError;
use peapod_api::resources::{self, ResourceInfo};
use peapod_store::{EventKind, ListOptions};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The namespaces a new cluster has.
pub const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How often terminating namespaces are looked at again while they still hold objects (Pods on a node need their
/// agent to finish them, which shows up as a delete in the store but not as a namespace event).
const NAMESPACE_RESYNC: Duration = Duration::from_secs(2);

/// How often the store's history is compacted (kube-apiserver compacts etcd every 5 minutes).
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

fn info(group: &str, plural: &str) -> Result<&'static ResourceInfo, ServerError> {
    resources::find(group, "v1", plural).ok_or_else(|| ServerError::Bootstrap(format!("resource {plural} not served")))
}

fn new_object(kind: &str, api_version: &str, name: &str, namespace: Option<&str>) -> Value {
    let mut v = json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": handlers::now_rfc3339()},
    });
    if let Some(ns) = namespace {
        v["metadata"]["namespace"] = json!(ns);
    }
    peapod_api::defaults::default_object(kind, &mut v);
    v
}

async fn ensure(registry: &Registry, info: &ResourceInfo, ns: Option<&str>, name: &str) -> Result<(), ServerError> {
    let key = info.key(ns, name);
    if registry
        .get(info, &key, name)
        .map_err(|e| ServerError::Bootstrap(e.message))?
        .is_some()
    {
        return Ok(());
    }
    let obj = new_object(info.kind, &info.api_version(), name, ns);
    match registry.create(info, &key, name, &obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(ServerError::Bootstrap(e.message)),
    }
}

/// Creates the initial namespaces, their default service accounts and root-CA ConfigMaps (holding `ca_pem`), if
/// missing. (Namespaces created later get theirs from the namespace controller.)
pub async fn ensure_initial_objects(registry: &Registry, ca_pem: &str) -> Result<(), ServerError> {
    let ns = info("", "namespaces")?;
    let sa = info("", "serviceaccounts")?;
    for n in INITIAL_NAMESPACES {
        ensure(registry, ns, None, n).await?;
        ensure(registry, sa, Some(n), "default").await?;
        service_accounts::ensure_root_ca(registry, n, ca_pem)
            .await
            .map_err(|e| ServerError::Bootstrap(e.message))?;
    }
    Ok(())
}

/// Starts the namespace/service-account loop and compaction.
pub fn spawn_controllers(state: Arc<State>, keep_revisions: i64, compaction_interval: Duration) {
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = namespace_loop(&s).await {
                tracing::warn!(error = %e, "namespace controller restarting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(compaction_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let store = state.registry.store().clone();
            let r = tokio::task::spawn_blocking(move || {
                let cur = store.current_revision()?;
                let target = cur - keep_revisions;
                if target > store.compacted_revision()? {
                    store.compact(target)?;
                }
                Ok::<_, peapod_store::StoreError>(())
            })
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "compaction failed"),
                Err(e) => tracing::warn!(error = %e, "compaction task failed"),
            }
        }
    });
}

/// Watches namespaces: gives new ones a `default` ServiceAccount and the root-CA ConfigMap, empties and removes terminating ones.
async fn namespace_loop(state: &State) -> Result<(), String> {
    let ns_info = info("", "namespaces").map_err(|e| e.to_string())?;
    let sa_info = info("", "serviceaccounts").map_err(|e| e.to_string())?;
    let prefix = ns_info.collection_prefix(None);
    let (all, rev, _) = state
        .registry
        .list(ns_info, &prefix, &ListOptions::default())
        .map_err(|e| e.message)?;
    let mut watch = state.registry.watch(ns_info, &prefix, rev).map_err(|e| e.message)?;
    for ns in &all {
        reconcile_namespace(state, ns_info, sa_info, ns).await;
    }
    let mut resync = tokio::time::interval(NAMESPACE_RESYNC);
    loop {
        tokio::select! {
            ev = watch.next() => {
                let ev = match ev {
                    None => return Err("namespace watch closed".into()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(ev)) => ev,
                };
                if ev.kind == EventKind::Deleted {
                    continue;
                }
                let obj = state.registry.decode_uncached(&ev.kv).map_err(|e| e.message)?;
                reconcile_namespace(state, ns_info, sa_info, &obj).await;
            }
            _ = resync.tick() => {
                let (all, _, _) = state.registry.list(ns_info, &prefix, &ListOptions::default()).map_err(|e| e.message)?;
                for ns in all.iter().filter(|n| n.pointer("/metadata/deletionTimestamp").is_some()) {
                    reconcile_namespace(state, ns_info, sa_info, ns).await;
                }
            }
        }
    }
}

async fn reconcile_namespace(
    state: &State,
    ns_info: &'static ResourceInfo,
    sa_info: &'static ResourceInfo,
    ns: &Value,
) {
    let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) else {
        return;
    };
    if ns.pointer("/metadata/deletionTimestamp").is_none() {
        if let Err(e) = ensure(&state.registry, sa_info, Some(name), "default").await {
            tracing::warn!(namespace = name, error = %e, "creating the default service account failed");
        }
        if let Some(sas) = &state.service_accounts {
            if let Err(e) = service_accounts::ensure_root_ca(&state.registry, name, &sas.ca_pem).await {
                tracing::warn!(namespace = name, error = %e.message, "publishing the root CA failed");
            }
        }
        return;
    }
    match empty_namespace(state, name).await {
        Ok(true) => {
            let key = ns_info.key(None, name);
            let rev = resource_version(ns);
            match state.registry.delete(ns_info, &key, name, rev).await {
                Ok(_) => tracing::info!(namespace = name, "namespace deleted"),
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!(namespace = name, error = %e.message, "removing namespace failed"),
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(namespace = name, error = %e, "emptying namespace failed"),
    }
}

/// Deletes everything in namespace `ns`; true when nothing is left.
async fn empty_namespace(state: &State, ns: &str) -> Result<bool, String> {
    let mut empty = true;
    for info in resources::RESOURCES.iter().filter(|r| r.namespaced) {
        let prefix = info.collection_prefix(Some(ns));
        let (objs, _, _) = state
            .registry
            .list(info, &prefix, &ListOptions::default())
            .map_err(|e| e.message)?;
        for o in objs {
            empty = false;
            let Some(name) = o.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            if o.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let r = ResourceRoute {
                info,
                namespace: Some(ns.to_string()),
                name: Some(name.to_string()),
                subresource: None,
                legacy_watch: false,
            };
            match handlers::delete_object(state, &r, name).await {
                Ok(_) => {}
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.message),
            }
        }
    }
    Ok(empty)
}
