//! Watch streams: newline-delimited JSON events over a chunked (or HTTP/2) response, as kube-apiserver sends them.
//!
//! `resourceVersion` empty or `0` starts with a synthetic `ADDED` for every matching object; `N` replays every
//! change after N from the store's log; a compacted N gets one `ERROR` event with a 410 `Expired` Status and the
//! stream ends. An object that stops matching a label or field selector is sent as `DELETED` (with its previous
//! state), one that starts matching as `ADDED`. With a Table `Accept`, each event's object is a one-row Table and
//! only the first carries column definitions (apiserver's watch encoder does the same).

use crate::handlers::{Query, Selectors, State};
use crate::registry::{set_resource_version, Object};
use crate::response::{self, IncludeObject, Representation};
use crate::route::ResourceRoute;
use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use peapod_api::ApiError;
use peapod_store::{Event, EventKind, ListOptions, Revision};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a watch that allows bookmarks gets one (kube-apiserver sends them about once a minute).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// Events buffered per watch before the sender waits for the client.
const WATCH_BUFFER: usize = 256;

/// Encodes watch events for one client.
struct Encoder {
    rep: Representation,
    include: IncludeObject,
    info: &'static peapod_api::ResourceInfo,
    columns_sent: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.rep {
            Representation::Object => obj.clone(),
            Representation::PartialMetadata => response::partial_metadata(obj),
            Representation::Table => {
                let meta =
                    json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
                let t = response::table(
                    self.info,
                    &[Arc::new(obj.clone())],
                    meta,
                    self.include,
                    !self.columns_sent,
                    jiff::Timestamp::now(),
                );
                self.columns_sent = true;
                t
            }
        };
        let mut bytes = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }
}

fn error_line(e: &ApiError) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark_line(info: &peapod_api::ResourceInfo, rev: Revision, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta});
    let mut bytes = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Decides what one store event means for a watcher with these selectors.
fn translate(state: &State, sel: &Selectors, ev: &Event) -> Result<Option<(&'static str, Object)>, ApiError> {
    let rev = ev.revision();
    match ev.kind {
        EventKind::Created => {
            let obj = state.registry.decode_uncached(&ev.kv)?;
            Ok(sel.matches(&obj).then_some(("ADDED", obj)))
        }
        EventKind::Deleted => {
            let obj = state.registry.decode_event(ev)?;
            Ok(sel.matches(&obj).then_some(("DELETED", obj)))
        }
        EventKind::Updated => {
            let obj = state.registry.decode_uncached(&ev.kv)?;
            let now = sel.matches(&obj);
            let before = match &ev.prev {
                Some(p) if !sel.is_empty() => {
                    let mut o = state.registry.decode_uncached(p)?;
                    let m = sel.matches(&o);
                    set_resource_version(Arc::make_mut(&mut o), rev);
                    Some((m, o))
                }
                _ => None,
            };
            Ok(match (now, before) {
                (true, Some((false, _))) => Some(("ADDED", obj)),
                (true, _) => Some(("MODIFIED", obj)),
                (false, Some((true, old))) => Some(("DELETED", old)),
                (false, _) => None,
            })
        }
    }
}

/// Serves `?watch=true`.
pub async fn serve(
    state: Arc<State>,
    r: ResourceRoute,
    q: Query,
    rep: Representation,
) -> Result<Response<Body>, ApiError> {
    let info = r.info;
    let sel = Selectors::parse(info, &q)?;
    let prefix = info.collection_prefix(r.namespace.as_deref());
    let rv = q.get("resourceVersion").unwrap_or("");
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.flag("sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut enc = Encoder {
        rep,
        include: IncludeObject::parse(q.get("includeObject")),
        info,
        columns_sent: false,
    };

    let (tx, rx) = mpsc::channel::<Bytes>(WATCH_BUFFER);
    // Work out the starting point and the initial events before answering, so errors are plain replies.
    let mut initial: Vec<Bytes> = Vec::new();
    let start: Revision;
    let mut store_watch = None;
    if rv.is_empty() || rv == "0" || send_initial {
        let (objs, rev, _) = state.registry.list(info, &prefix, &ListOptions::default())?;
        for o in objs.iter().filter(|o| sel.matches(o)) {
            initial.push(enc.line("ADDED", o));
        }
        start = rev;
        if send_initial && bookmarks {
            initial.push(bookmark_line(info, rev, true));
        }
    } else {
        start = rv
            .parse::<Revision>()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
    }
    match state.registry.watch(info, &prefix, start) {
        Ok(w) => store_watch = Some(w),
        Err(e) if e.code == 410 => initial.push(error_line(&e)),
        Err(e) => return Err(e),
    }

    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let Some(mut w) = store_watch else { return };
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut last_rev = start;
        let mut bookmark_timer = tokio::time::interval(BOOKMARK_INTERVAL);
        bookmark_timer.tick().await;
        loop {
            let ev = tokio::select! {
                ev = w.next() => ev,
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return,
                _ = bookmark_timer.tick(), if bookmarks => {
                    if tx.send(bookmark_line(info, last_rev, false)).await.is_err() { return; }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let ev = match ev {
                None => return,
                Some(Ok(ev)) => ev,
                Some(Err(e)) => {
                    let err = match e {
                        peapod_store::StoreError::Compacted { requested, compacted } => {
                            ApiError::expired(requested, compacted)
                        }
                        other => ApiError::internal(other),
                    };
                    let _ = tx.send(error_line(&err)).await;
                    return;
                }
            };
            last_rev = ev.revision();
            match translate(&state, &sel, &ev) {
                Ok(Some((kind, obj))) => {
                    if tx.send(enc.line(kind, &obj)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(error_line(&e)).await;
                    return;
                }
            }
        }
    });

    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}
