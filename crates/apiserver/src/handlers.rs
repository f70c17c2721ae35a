//! The verbs: get, list, create, update, patch, delete, deletecollection, and the Pod subresources `status`,
//! `binding` and `log`, with kube-apiserver's semantics (defaulting, validation, optimistic concurrency, graceful
//! deletion, finalizers, dry runs, strict field validation).
//!
//! Every handler returns a finished reply; errors are `metav1.Status` bodies built in `peapod_api::errors`.

use crate::auth::{Authenticator, User};
use crate::node_proxy::{self, NodeProxy, PodLogOptions};
use crate::registry::{resource_version, Object, Registry};
use crate::response::{self, IncludeObject, Representation};
use crate::route::{self, ResourceRoute, Route};
use crate::service_accounts::{self, ServiceAccounts};
use crate::{discovery, openapi, watch, MAX_REQUEST_BYTES};
use axum::body::Body;
use base64::Engine;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use peapod_api::resources::{self, ResourceInfo};
use peapod_api::selectors::{FieldSelector, LabelSelector};
use peapod_api::{errors, ApiError, FieldError};
use peapod_store::{ListOptions, Revision};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Namespaces that can never be deleted (kube-apiserver's NamespaceLifecycle admission).
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// How often an update from a patch is retried when another writer got in between (kube-apiserver retries
/// patches on conflict when the client set no resourceVersion).
const PATCH_RETRIES: usize = 5;

/// Shared state of every request.
pub struct State {
    pub registry: Arc<Registry>,
    pub auth: Authenticator,
    pub ready: AtomicBool,
    /// How `pods/log` reaches nodes; `None` when the server has no kubelet-client credentials.
    pub node_proxy: Option<NodeProxy>,
    /// The service-account token key and published CA; `None` in servers built without a PKI.
    pub service_accounts: Option<Arc<ServiceAccounts>>,
}

impl State {
    pub fn new(registry: Arc<Registry>, auth: Authenticator) -> Self {
        Self {
            registry,
            auth,
            ready: AtomicBool::new(true),
            node_proxy: None,
            service_accounts: None,
        }
    }

    /// Issues and accepts service-account tokens and publishes the root CA with `sas`.
    pub fn with_service_accounts(mut self, sas: ServiceAccounts) -> Self {
        self.service_accounts = Some(Arc::new(sas));
        self
    }

    /// Lets `pods/log` reach nodes through `proxy`.
    pub fn with_node_proxy(mut self, proxy: NodeProxy) -> Self {
        self.node_proxy = Some(proxy);
        self
    }
}

/// Query parameters (a name may repeat, e.g. `command=` for exec).
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
            m.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Self(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }
    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True"))
    }
}

/// Now, as Kubernetes writes timestamps in metadata (RFC 3339, seconds).
pub fn now_rfc3339() -> String {
    format_time(jiff::Timestamp::now())
}

pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Entry point for every request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>, cert_user: Option<User>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let route = route::parse(&path);
    let public = matches!(route, Route::Health(_) | Route::Version);
    let user = match req.headers().get(http::header::AUTHORIZATION) {
        Some(h) => h.to_str().ok().and_then(|h| {
            state.auth.authenticate_header(h).or_else(|| {
                let token = h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))?.trim();
                service_accounts::authenticate(&state, token)
            })
        }),
        None => cert_user,
    };
    if user.is_none() && !public {
        return response::error_response(&ApiError::unauthorized());
    }
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    let started = std::time::Instant::now();
    let resp = match route {
        Route::Version => response::json_response(StatusCode::OK, &discovery::version()),
        Route::Health(_) => {
            if state.ready.load(Ordering::Relaxed) {
                response::raw_response(StatusCode::OK, "text/plain; charset=utf-8", b"ok".to_vec())
            } else {
                response::raw_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    b"not ready".to_vec(),
                )
            }
        }
        Route::Metrics => response::raw_response(StatusCode::OK, "text/plain; version=0.0.4", Vec::new()),
        Route::Api | Route::Apis | Route::CoreResources | Route::Group(_) | Route::GroupResources(..) => {
            discovery::serve(&route, req.headers())
        }
        Route::OpenApiV2 | Route::OpenApiV3Index | Route::OpenApiV3(_) => openapi::serve(&route, req.headers()),
        Route::Resource(r) => match resource(state, &method, r, query, req).await {
            Ok(resp) => resp,
            Err(e) => response::error_response(&e),
        },
        Route::NotFound => response::error_response(&ApiError::path_not_found()),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "request");
    resp
}

async fn resource(
    state: Arc<State>,
    method: &Method,
    r: ResourceRoute,
    q: Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let rep = response::negotiate(req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()));
    let sub = r.subresource.as_deref();
    if r.info.group.is_empty() && r.info.plural == "serviceaccounts" && sub == Some("token") {
        // TokenRequest is create-only and its Kind lives in authentication.k8s.io, outside the resource table.
        let (&Method::POST, Some(ns), Some(name)) = (method, r.namespace.as_deref(), r.name.as_deref()) else {
            return Err(ApiError::method_not_allowed());
        };
        let (ns, name) = (ns.to_string(), name.to_string());
        let (headers, body) = read_body(req).await?;
        let obj = decode_body(&headers, &body)?;
        return service_accounts::create_token(&state, &ns, &name, &obj);
    }
    if let Some(s) = sub {
        if !r.info.subresources.iter().any(|x| x.name == s) {
            return Err(ApiError::path_not_found());
        }
    }
    match (method.clone(), r.name.is_some(), sub) {
        (Method::GET, false, None) => {
            if q.flag("watch") || r.legacy_watch {
                watch::serve(state, r, q, rep).await
            } else {
                list(&state, &r, &q, rep)
            }
        }
        (Method::GET, true, None | Some("status")) => get(&state, &r, &q, rep),
        (Method::GET, true, Some("log")) => logs(&state, &r, &q).await,
        (Method::GET | Method::POST, true, Some("exec" | "attach" | "portforward")) => not_running(&state, &r),
        (Method::POST, false, None) => {
            let (headers, body) = read_body(req).await?;
            create(&state, &r, &q, &headers, body).await
        }
        (Method::POST, true, Some("binding")) => {
            let (headers, body) = read_body(req).await?;
            binding(&state, &r, &headers, body).await
        }
        (Method::PUT, true, None | Some("status") | Some("finalize")) => {
            let (headers, body) = read_body(req).await?;
            let obj = decode_body(&headers, &body)?;
            let (obj, warnings) = check_fields(&r, &q, obj)?;
            let mut resp = replace(&state, &r, &q, obj, rep).await?;
            response::add_warnings(&mut resp, &warnings);
            Ok(resp)
        }
        (Method::PATCH, true, None | Some("status")) => {
            let (headers, body) = read_body(req).await?;
            patch(&state, &r, &q, &headers, body, rep).await
        }
        (Method::DELETE, true, None) => {
            let (headers, body) = read_body(req).await?;
            delete(&state, &r, &q, &headers, body, rep).await
        }
        (Method::DELETE, false, None) => {
            let (headers, body) = read_body(req).await?;
            delete_collection(&state, &r, &q, &headers, body).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Reads the request body, refusing more than [`MAX_REQUEST_BYTES`] with 413.
async fn read_body(req: Request<Incoming>) -> Result<(HeaderMap, bytes::Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
    {
        if len.parse::<usize>().map(|n| n > MAX_REQUEST_BYTES).unwrap_or(false) {
            return Err(ApiError::too_large(MAX_REQUEST_BYTES));
        }
    }
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BYTES);
    match limited.collect().await {
        Ok(c) => Ok((parts.headers, c.to_bytes())),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::too_large(MAX_REQUEST_BYTES))
        }
        Err(e) => Err(ApiError::bad_request(format!("reading the request body: {e}"))),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Decodes a JSON or YAML body into a JSON value.
fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    match ct.as_str() {
        "" | "application/json" | "*/*" => decode_json(body),
        "application/yaml" | "application/apply-patch+yaml" => decode_yaml(body),
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}"))),
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml"],
        )),
    }
}

fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))
}

fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

/// Checks `apiVersion`/`kind`, applies `fieldValidation` (Strict rejects unknown fields, Warn reports them), and
/// returns the object with its type meta set and any warnings.
fn check_fields(r: &ResourceRoute, q: &Query, mut obj: Value) -> Result<(Value, Vec<String>), ApiError> {
    let info = r.info;
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (not a JSON object)",
        ));
    }
    let kind_expected = match r.subresource.as_deref() {
        Some("binding") => "Binding",
        _ => info.kind,
    };
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if !k.is_empty() && k != kind_expected {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({kind_expected})"
            )));
        }
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if !av.is_empty() && av != info.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                info.api_version()
            )));
        }
    }
    obj["kind"] = json!(kind_expected);
    obj["apiVersion"] = json!(info.api_version());
    let mode = q.get("fieldValidation").unwrap_or("Warn");
    let mut warnings = Vec::new();
    if mode != "Ignore" && kind_expected == info.kind {
        let unknown = peapod_api::strict::unknown_fields(info.kind, &obj).map_err(|msg| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {msg}",
                info.kind, info.version, info.kind
            ))
        })?;
        if !unknown.is_empty() {
            let texts: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {}", errors::quote(f)))
                .collect();
            match mode {
                "Strict" => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        info.kind,
                        info.version,
                        info.kind,
                        texts.join(", ")
                    )))
                }
                _ => warnings = texts,
            }
        }
    }
    Ok((obj, warnings))
}

fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").map(Value::is_object).unwrap_or(false) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        // Unreachable: metadata was just made an object above.
        None => unreachable!("metadata is an object"),
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}

fn object_key(r: &ResourceRoute, name: &str) -> String {
    r.info.key(r.namespace.as_deref(), name)
}

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Parsed label and field selectors of a list or watch.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(info: &ResourceInfo, q: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
        for req in &fields.requirements {
            if !info.supports_field_label(&req.field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    req.field
                )));
            }
        }
        Ok(Self { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.fields.requirements.is_empty() && self.labels == LabelSelector::default()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(&labels_of(obj))
            && self
                .fields
                .matches(&|label: &str| peapod_api::selectors::field_value(obj, label))
    }

    /// A field selector on `metadata.name=X` lets a watch or list look at one key only.
    pub fn single_name(&self) -> Option<&str> {
        self.fields
            .requirements
            .iter()
            .find(|r| r.field == "metadata.name" && r.op == peapod_api::selectors::FieldOp::Equals)
            .map(|r| r.value.as_str())
    }
}

/// The continue token: where a paged list resumes and at which revision, as kube-apiserver encodes it.
fn encode_continue(rev: Revision, last_key: &str) -> String {
    let t = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(t.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: expected a base64 encoded continue token");
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rev = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rev, start.trim_end_matches('\u{0}').to_string()))
}

/// Lists objects of a resource (in one namespace or all) matching the selectors, paged by `limit`/`continue`.
/// One page of a list.
pub struct ListPage {
    pub items: Vec<Object>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// Where the next page starts, if there is one.
    pub continue_token: Option<String>,
    /// How many objects follow (only known without selectors).
    pub remaining: Option<u64>,
}

pub fn list_objects(state: &State, r: &ResourceRoute, q: &Query, sel: &Selectors) -> Result<ListPage, ApiError> {
    let info = r.info;
    let prefix = info.collection_prefix(r.namespace.as_deref());
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let (mut revision, mut start_after) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let (rev, start) = decode_continue(c)?;
            (
                Some(rev),
                Some(format!("{}{}", prefix, start.strip_prefix(&prefix).unwrap_or(&start))),
            )
        }
        None => (None, None),
    };
    if revision.is_none() && q.get("resourceVersionMatch") == Some("Exact") {
        revision = q.get("resourceVersion").and_then(|v| v.parse().ok());
    }
    // Read from the store in pages until `limit` matching objects are found (selectors filter after reading).
    let mut out = Vec::new();
    let batch = if limit == 0 { 0 } else { limit.max(64) };
    loop {
        let opts = ListOptions {
            start_after: start_after.clone(),
            limit: batch,
            revision,
        };
        let (objs, rev, remaining) = state.registry.list(info, &prefix, &opts).map_err(|e| {
            if e.code == 410 && q.get("continue").is_some() {
                ApiError::continue_expired()
            } else {
                e
            }
        })?;
        revision = Some(rev);
        let fetched = objs.len();
        let mut last_read = None;
        for (i, o) in objs.into_iter().enumerate() {
            let key = info.key(meta_str(&o, "namespace"), meta_str(&o, "name").unwrap_or(""));
            let matched = sel.matches(&o);
            if matched {
                out.push(o);
            }
            if matched && limit > 0 && out.len() == limit {
                if remaining > 0 || i + 1 < fetched {
                    let left = if sel.is_empty() {
                        Some(remaining + (fetched - i - 1) as u64)
                    } else {
                        None
                    };
                    let token = encode_continue(rev, key.strip_prefix(&prefix).unwrap_or(&key));
                    return Ok(ListPage {
                        items: out,
                        revision: rev,
                        continue_token: Some(token),
                        remaining: left,
                    });
                }
                return Ok(ListPage {
                    items: out,
                    revision: rev,
                    continue_token: None,
                    remaining: None,
                });
            }
            last_read = Some(key);
        }
        if remaining == 0 || fetched == 0 || batch == 0 {
            return Ok(ListPage {
                items: out,
                revision: rev,
                continue_token: None,
                remaining: None,
            });
        }
        start_after = last_read;
    }
}

fn list(state: &State, r: &ResourceRoute, q: &Query, rep: Representation) -> Result<Response<Body>, ApiError> {
    let sel = Selectors::parse(r.info, q)?;
    let ListPage {
        items,
        revision: rev,
        continue_token: cont,
        remaining,
    } = list_objects(state, r, q, &sel)?;
    let meta = response::list_meta(rev, cont.as_deref(), remaining);
    Ok(match rep {
        Representation::Object => response::list_body(r.info, &items, meta),
        Representation::PartialMetadata => response::partial_list_body(&items, meta),
        Representation::Table => {
            let include = IncludeObject::parse(q.get("includeObject"));
            let t = response::table(r.info, &items, meta, include, true, jiff::Timestamp::now());
            response::json_response(StatusCode::OK, &t)
        }
    })
}

fn get_current(state: &State, r: &ResourceRoute, name: &str) -> Result<Object, ApiError> {
    state
        .registry
        .get(r.info, &object_key(r, name), name)?
        .ok_or_else(|| ApiError::not_found(r.info.group, r.info.plural, name))
}

fn get(state: &State, r: &ResourceRoute, q: &Query, rep: Representation) -> Result<Response<Body>, ApiError> {
    let name = r.name.as_deref().unwrap_or("");
    let obj = get_current(state, r, name)?;
    Ok(match rep {
        Representation::Object => response::json_response(StatusCode::OK, &*obj),
        Representation::PartialMetadata => response::json_response(StatusCode::OK, &response::partial_metadata(&obj)),
        Representation::Table => {
            let include = IncludeObject::parse(q.get("includeObject"));
            let meta = json!({"resourceVersion": meta_str(&obj, "resourceVersion").unwrap_or("")});
            let t = response::table(
                r.info,
                std::slice::from_ref(&obj),
                meta,
                include,
                true,
                jiff::Timestamp::now(),
            );
            response::json_response(StatusCode::OK, &t)
        }
    })
}

/// Replies for the object just written, in the representation asked for.
fn object_reply(code: StatusCode, info: &ResourceInfo, obj: &Object, rep: Representation) -> Response<Body> {
    match rep {
        Representation::Table => {
            let meta = json!({"resourceVersion": meta_str(obj, "resourceVersion").unwrap_or("")});
            let t = response::table(
                info,
                std::slice::from_ref(obj),
                meta,
                IncludeObject::Metadata,
                true,
                jiff::Timestamp::now(),
            );
            response::json_response(code, &t)
        }
        _ => response::json_response(code, &**obj),
    }
}

/// Characters kube-apiserver uses for `generateName` suffixes (no vowels, no confusable digits).
const NAME_SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub(crate) fn random_suffix(n: usize) -> String {
    (0..n)
        .map(|_| NAME_SUFFIX_ALPHABET[rand::random_range(0..NAME_SUFFIX_ALPHABET.len())] as char)
        .collect()
}

/// The namespace must exist and not be terminating before anything is created in it.
fn check_namespace_open(state: &State, r: &ResourceRoute, name: &str) -> Result<(), ApiError> {
    let Some(ns) = r.namespace.as_deref().filter(|_| r.info.namespaced) else {
        return Ok(());
    };
    let ns_info = resources::find("", "v1", "namespaces").ok_or_else(|| ApiError::internal("namespaces not served"))?;
    let Some(nso) = state.registry.get(ns_info, &ns_info.key(None, ns), ns)? else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    if nso.pointer("/metadata/deletionTimestamp").is_some() {
        let mut e = ApiError::forbidden(
            r.info.group,
            r.info.plural,
            name,
            &format!("unable to create new content in namespace {ns} because it is being terminated"),
        );
        if let Some(d) = e.details.as_mut() {
            d["causes"] = json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
        }
        return Err(e);
    }
    Ok(())
}

/// A `managedFields` entry for a write by `manager`.
fn managed_entry(manager: &str, operation: &str, api_version: &str, subresource: Option<&str>) -> Value {
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    });
    if let Some(s) = subresource {
        e["subresource"] = json!(s);
    }
    e
}

/// Records a write by `manager` in `managedFields`: one entry per manager, operation and subresource.
fn record_manager(obj: &mut Value, manager: Option<&str>, operation: &str, subresource: Option<&str>) {
    let Some(manager) = manager.filter(|m| !m.is_empty()) else {
        return;
    };
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1")
        .to_string();
    let m = metadata_mut(obj);
    let mut list: Vec<Value> = m
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.retain(|e| {
        !(e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some(operation)
            && e.get("subresource").and_then(Value::as_str) == subresource)
    });
    list.push(managed_entry(manager, operation, &api_version, subresource));
    m.insert("managedFields".into(), Value::Array(list));
}

fn default_manager(headers: &HeaderMap) -> Option<String> {
    // kube-apiserver names the manager after the User-Agent's program name when the client sets none.
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
}

/// Prepares a decoded object for creation: system metadata, status reset, defaults; then validates it.
fn prepare_create(state: &State, r: &ResourceRoute, obj: &mut Value) -> Result<String, ApiError> {
    let info = r.info;
    let path_ns = r.namespace.clone();
    {
        let m = metadata_mut(obj);
        if info.namespaced {
            match (m.get("namespace").and_then(Value::as_str), path_ns.as_deref()) {
                (Some(b), Some(p)) if !b.is_empty() && b != p => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                (_, Some(p)) => {
                    m.insert("namespace".into(), json!(p));
                }
                (_, None) => return Err(ApiError::method_not_allowed()),
            }
        } else {
            m.remove("namespace");
        }
        let name = m.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty() {
            if let Some(g) = m.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty()) {
                let generated = format!("{g}{}", random_suffix(5));
                m.insert("name".into(), json!(generated));
            }
        }
        for f in [
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "generation",
        ] {
            m.remove(f);
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
    }
    if info.kind == "Pod" && info.group.is_empty() {
        // PrepareForCreate: a new Pod's status is the server's, never the client's.
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    if info.kind == "Namespace" && info.group.is_empty() {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    peapod_api::defaults::default_object(info.kind, obj);
    if info.kind == "Pod" && info.group.is_empty() {
        if let Some(ns) = path_ns.as_deref() {
            service_accounts::admit_pod(&state.registry, ns, obj)?;
        }
    }
    let name = meta_str(obj, "name").unwrap_or("").to_string();
    let errs = peapod_api::validation::validate_create(info.kind, obj);
    if !errs.is_empty() {
        return Err(ApiError::invalid(info.group, info.kind, &name, &errs));
    }
    check_namespace_open(state, r, &name)?;
    Ok(name)
}

async fn create(
    state: &State,
    r: &ResourceRoute,
    q: &Query,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    let obj = decode_body(headers, &body)?;
    let (mut obj, warnings) = check_fields(r, q, obj)?;
    let manager = q
        .get("fieldManager")
        .map(str::to_string)
        .or_else(|| default_manager(headers));
    let name = prepare_create(state, r, &mut obj)?;
    record_manager(&mut obj, manager.as_deref(), "Update", None);
    let rep = response::negotiate(headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()));
    let created: Object = if q.get("dryRun") == Some("All") {
        Arc::new(obj)
    } else {
        let key = object_key(r, &name);
        state.registry.create(r.info, &key, &name, &obj).await?
    };
    let mut resp = object_reply(StatusCode::CREATED, r.info, &created, rep);
    response::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// Resources whose PUT creates a missing object (kube-apiserver's `AllowCreateOnUpdate`).
fn allow_create_on_update(info: &ResourceInfo) -> bool {
    matches!(
        (info.group, info.plural),
        ("", "events") | ("events.k8s.io", "events") | ("coordination.k8s.io", "leases")
    )
}

/// Whether the resource has a `status` subresource (then main writes keep the old status and status writes keep
/// everything else).
fn has_status(info: &ResourceInfo) -> bool {
    info.subresources.iter().any(|s| s.name == "status")
}

/// System metadata that only the server sets, carried over from the stored object on every update.
const SYSTEM_META: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
];

/// Builds the new state of an object from the stored one and what the client sent, by subresource.
fn merge_for_update(info: &ResourceInfo, sub: Option<&str>, old: &Value, new: Value) -> Value {
    match sub {
        Some("status") => {
            // Status writes change status (and labels/annotations, as Kubernetes allows) and nothing else.
            let mut out = old.clone();
            out["status"] = new.get("status").cloned().unwrap_or_else(|| json!({}));
            if let (Some(om), Some(nm)) = (
                out.get_mut("metadata").and_then(Value::as_object_mut),
                new.get("metadata"),
            ) {
                for f in ["labels", "annotations"] {
                    match nm.get(f) {
                        Some(v) => {
                            om.insert(f.into(), v.clone());
                        }
                        None => {
                            om.remove(f);
                        }
                    }
                }
            }
            out
        }
        Some("finalize") => {
            let mut out = old.clone();
            out["spec"]["finalizers"] = new.pointer("/spec/finalizers").cloned().unwrap_or_else(|| json!([]));
            out
        }
        _ => {
            let mut out = new;
            if has_status(info) {
                match old.get("status") {
                    Some(s) => out["status"] = s.clone(),
                    None => {
                        if let Some(o) = out.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            if info.kind == "Namespace" && info.group.is_empty() {
                // spec.finalizers of a namespace change only through the finalize subresource.
                if let Some(f) = old.pointer("/spec/finalizers") {
                    out["spec"]["finalizers"] = f.clone();
                }
            }
            let om = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let m = metadata_mut(&mut out);
            for f in SYSTEM_META {
                match om.get(*f) {
                    Some(v) => {
                        m.insert((*f).into(), v.clone());
                    }
                    None => {
                        m.remove(*f);
                    }
                }
            }
            out
        }
    }
}

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

/// The result of writing an update.
enum Written {
    Updated(Object),
    /// The last finalizer of a deleted object went away and the object is gone.
    Deleted(Object),
}

/// Validates and writes `new` (already merged) over `old` with compare-and-swap on `expected`.
/// Who writes and how, for `managedFields`.
struct WriteBy<'a> {
    manager: Option<&'a str>,
    operation: &'a str,
}

async fn write_update(
    state: &State,
    r: &ResourceRoute,
    q: &Query,
    old: &Object,
    mut new: Value,
    expected: Revision,
    by: WriteBy<'_>,
) -> Result<Written, ApiError> {
    let WriteBy { manager, operation } = by;
    let info = r.info;
    let name = r.name.as_deref().unwrap_or("");
    let sub = r.subresource.as_deref();
    // Kubernetes defaults every object it decodes, updates and patched objects included.
    peapod_api::defaults::default_object(info.kind, &mut new);
    let errs = match sub {
        Some("status") => peapod_api::validation::validate_status_update(info.kind, &new, old),
        _ => peapod_api::validation::validate_update(info.kind, &new, old),
    };
    if !errs.is_empty() {
        return Err(ApiError::invalid(info.group, info.kind, name, &errs));
    }
    if strip_rv(&new) == strip_rv(old) {
        // A no-op write stores nothing and keeps the resourceVersion, as kube-apiserver does.
        return Ok(Written::Updated(old.clone()));
    }
    record_manager(&mut new, manager, operation, sub.filter(|s| *s == "status"));
    if q.get("dryRun") == Some("All") {
        return Ok(Written::Updated(Arc::new(new)));
    }
    let key = object_key(r, name);
    let finalizers_empty = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.is_empty())
        .unwrap_or(true);
    let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
    let grace_done = new
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        == 0;
    if deleting && finalizers_empty && grace_done && !(info.kind == "Namespace" && info.group.is_empty()) {
        let last = state.registry.delete(info, &key, name, Some(expected)).await?;
        return Ok(Written::Deleted(last));
    }
    Ok(Written::Updated(
        state.registry.update(info, &key, name, &new, expected).await?,
    ))
}

/// Makes an update's name, namespace and type meta those of the URL (a body may not move an object).
fn pin_identity(r: &ResourceRoute, name: &str, obj: &mut Value) {
    let info = r.info;
    let m = metadata_mut(obj);
    m.insert("name".into(), json!(name));
    if let Some(ns) = r.namespace.as_deref().filter(|_| info.namespaced) {
        m.insert("namespace".into(), json!(ns));
    }
    obj["kind"] = json!(info.kind);
    obj["apiVersion"] = json!(info.api_version());
}

/// PUT: replace an object (or its status) with optimistic concurrency.
async fn replace(
    state: &State,
    r: &ResourceRoute,
    q: &Query,
    obj: Value,
    rep: Representation,
) -> Result<Response<Body>, ApiError> {
    let info = r.info;
    let name = r.name.clone().unwrap_or_default();
    if let Some(body_name) = meta_str(&obj, "name") {
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
    }
    if let (Some(bn), Some(pn)) = (meta_str(&obj, "namespace"), r.namespace.as_deref()) {
        if info.namespaced && !bn.is_empty() && bn != pn {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let manager = q.get("fieldManager").map(str::to_string);
    let current = state.registry.get(info, &object_key(r, &name), &name)?;
    let Some(old) = current else {
        if allow_create_on_update(info) && r.subresource.is_none() {
            let mut obj = obj;
            let name = prepare_create(state, r, &mut obj)?;
            record_manager(&mut obj, manager.as_deref(), "Update", None);
            let created = state.registry.create(info, &object_key(r, &name), &name, &obj).await?;
            return Ok(object_reply(StatusCode::CREATED, info, &created, rep));
        }
        return Err(ApiError::not_found(info.group, info.plural, &name));
    };
    let current_rv = resource_version(&old).unwrap_or(0);
    let expected = match meta_str(&obj, "resourceVersion").filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse::<Revision>()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {}", errors::quote(s))))?,
        None => current_rv,
    };
    if expected != current_rv {
        return Err(ApiError::modified(info.group, info.plural, &name));
    }
    let mut obj = obj;
    pin_identity(r, &name, &mut obj);
    let new = merge_for_update(info, r.subresource.as_deref(), &old, obj);
    match write_update(
        state,
        r,
        q,
        &old,
        new,
        expected,
        WriteBy {
            manager: manager.as_deref(),
            operation: "Update",
        },
    )
    .await?
    {
        Written::Updated(o) | Written::Deleted(o) => Ok(object_reply(StatusCode::OK, info, &o, rep)),
    }
}

/// PATCH: JSON patch, JSON merge patch, strategic merge patch, or server-side apply.
async fn patch(
    state: &State,
    r: &ResourceRoute,
    q: &Query,
    headers: &HeaderMap,
    body: bytes::Bytes,
    rep: Representation,
) -> Result<Response<Body>, ApiError> {
    let info = r.info;
    let name = r.name.clone().unwrap_or_default();
    let ct = content_type(headers);
    const ACCEPTED: &[&str] = &[
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
        "application/strategic-merge-patch+json",
    ];
    if !ACCEPTED.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media_type(&ct, ACCEPTED));
    }
    let patch_doc = if ct == "application/apply-patch+yaml" {
        decode_yaml(&body)?
    } else {
        decode_json(&body)?
    };
    let is_apply = ct == "application/apply-patch+yaml";
    let manager = q.get("fieldManager").map(str::to_string);
    if is_apply && manager.as_deref().unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(
            "PATCH, fieldManager is required for apply requests",
        ));
    }
    let manager = manager.or_else(|| default_manager(headers));
    let mut warnings = Vec::new();
    if is_apply {
        let (_, w) = check_fields(r, q, patch_doc.clone())?;
        warnings = w;
    }
    for attempt in 0..PATCH_RETRIES {
        let current = state.registry.get(info, &object_key(r, &name), &name)?;
        let Some(old) = current else {
            if is_apply && r.subresource.is_none() {
                let (mut obj, _) = check_fields(r, q, patch_doc.clone())?;
                let name_in = meta_str(&obj, "name").unwrap_or("").to_string();
                if name_in != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({name_in}) does not match the name on the URL ({name})"
                    )));
                }
                let name = prepare_create(state, r, &mut obj)?;
                record_manager(&mut obj, manager.as_deref(), "Apply", None);
                let created: Object = if q.get("dryRun") == Some("All") {
                    Arc::new(obj)
                } else {
                    state.registry.create(info, &object_key(r, &name), &name, &obj).await?
                };
                let mut resp = object_reply(StatusCode::CREATED, info, &created, rep);
                response::add_warnings(&mut resp, &warnings);
                return Ok(resp);
            }
            return Err(ApiError::not_found(info.group, info.plural, &name));
        };
        let current_rv = resource_version(&old).unwrap_or(0);
        let patched = match ct.as_str() {
            "application/json-patch+json" => peapod_api::patch::json_patch(&old, &patch_doc),
            "application/merge-patch+json" => peapod_api::patch::json_merge(&old, &patch_doc),
            "application/strategic-merge-patch+json" => peapod_api::patch::strategic_merge(info.kind, &old, &patch_doc),
            _ => peapod_api::patch::apply_patch_merge(info.kind, &old, &patch_doc),
        }
        .map_err(|e| ApiError::new(e.code(), e.reason(), e.to_string()))?;
        if !patched.is_object() {
            return Err(ApiError::bad_request("the patched object is not a JSON object"));
        }
        // A resourceVersion inside the patch is a precondition; otherwise the patch applies to whatever is current.
        let explicit = meta_str(&patched, "resourceVersion").and_then(|s| s.parse::<Revision>().ok());
        if let Some(rv) = explicit {
            if rv != current_rv {
                return Err(ApiError::modified(info.group, info.plural, &name));
            }
        }
        let mut patched = patched;
        pin_identity(r, &name, &mut patched);
        let new = merge_for_update(info, r.subresource.as_deref(), &old, patched);
        let op = if is_apply { "Apply" } else { "Update" };
        match write_update(
            state,
            r,
            q,
            &old,
            new,
            current_rv,
            WriteBy {
                manager: manager.as_deref(),
                operation: op,
            },
        )
        .await
        {
            Ok(Written::Updated(o)) | Ok(Written::Deleted(o)) => {
                let mut resp = object_reply(StatusCode::OK, info, &o, rep);
                response::add_warnings(&mut resp, &warnings);
                return Ok(resp);
            }
            Err(e) if e.code == 409 && explicit.is_none() && attempt + 1 < PATCH_RETRIES => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::modified(info.group, info.plural, &name))
}

/// `DeleteOptions` from the body or the query.
#[derive(Debug, Default)]
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut o = DeleteOptions {
        grace: q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()),
        propagation: q.get("propagationPolicy").map(str::to_string),
        dry_run: q.get("dryRun") == Some("All"),
        ..Default::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = decode_body(headers, body)?;
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            o.grace = Some(g);
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation = Some(p.to_string());
        }
        if let Some(p) = v.get("preconditions") {
            o.uid = p.get("uid").and_then(Value::as_str).map(str::to_string);
            o.resource_version = p.get("resourceVersion").and_then(Value::as_str).map(str::to_string);
        }
        if v.get("dryRun")
            .and_then(Value::as_array)
            .map(|a| a.iter().any(|x| x == "All"))
            .unwrap_or(false)
        {
            o.dry_run = true;
        }
        if let Some(p) = v.get("orphanDependents").and_then(Value::as_bool) {
            if p {
                o.propagation = Some("Orphan".into());
            }
        }
    }
    if let Some(p) = o.propagation.as_deref() {
        if !matches!(p, "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::invalid(
                "",
                "DeleteOptions",
                "",
                &[FieldError::not_supported(
                    "propagationPolicy",
                    errors::quote(p),
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            ));
        }
    }
    Ok(o)
}

/// The grace period a Pod deletion gets (`CheckGracefulDelete` in kube-apiserver's pod strategy).
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let mut period = requested
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(0);
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() || phase == "Failed" || phase == "Succeeded" {
        period = 0;
    }
    if period < 0 {
        period = 1;
    }
    period
}

/// Deletes one object: graceful for Pods on a node, deferred while finalizers remain, immediate otherwise.
async fn delete_one(
    state: &State,
    r: &ResourceRoute,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(StatusCode, Object, bool), ApiError> {
    let info = r.info;
    let key = object_key(r, name);
    let old = get_current(state, r, name)?;
    if let Some(uid) = opts.uid.as_deref() {
        let have = meta_str(&old, "uid").unwrap_or("");
        if uid != have {
            return Err(ApiError::conflict(
                info.group,
                info.plural,
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
            ));
        }
    }
    if let Some(rv) = opts.resource_version.as_deref() {
        let have = meta_str(&old, "resourceVersion").unwrap_or("");
        if rv != have {
            return Err(ApiError::conflict(
                info.group,
                info.plural,
                name,
                &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
            ),
            ));
        }
    }
    let rev = resource_version(&old).unwrap_or(0);
    let is_ns = info.kind == "Namespace" && info.group.is_empty();
    if is_ns && IMMORTAL_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            info.group,
            info.plural,
            name,
            "this namespace may not be deleted",
        ));
    }
    let mut new = (*old).clone();
    let now = jiff::Timestamp::now();
    if is_ns {
        // The namespace controller empties the namespace, then removes it (see bootstrap).
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok((StatusCode::OK, old, false));
        }
        metadata_mut(&mut new).insert("deletionTimestamp".into(), json!(format_time(now)));
        metadata_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(0));
        new["status"]["phase"] = json!("Terminating");
        if opts.dry_run {
            return Ok((StatusCode::OK, Arc::new(new), false));
        }
        let o = state.registry.update(info, &key, name, &new, rev).await?;
        return Ok((StatusCode::OK, o, false));
    }
    let is_pod = info.kind == "Pod" && info.group.is_empty();
    let grace = if is_pod { pod_grace_period(&old, opts.grace) } else { 0 };
    let has_finalizers = old
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| !a.is_empty())
        .unwrap_or(false);
    if grace > 0 || has_finalizers {
        let current_grace = old
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        let already = old.pointer("/metadata/deletionTimestamp").is_some();
        if already && current_grace.map(|c| c <= grace).unwrap_or(true) {
            // A second delete may only shorten the grace period.
            return Ok((StatusCode::OK, old, false));
        }
        let m = metadata_mut(&mut new);
        let deadline = now.checked_add(jiff::SignedDuration::from_secs(grace)).unwrap_or(now);
        m.insert("deletionTimestamp".into(), json!(format_time(deadline)));
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if opts.dry_run {
            return Ok((StatusCode::OK, Arc::new(new), false));
        }
        let o = state.registry.update(info, &key, name, &new, rev).await?;
        return Ok((StatusCode::OK, o, false));
    }
    if opts.dry_run {
        return Ok((StatusCode::OK, old, true));
    }
    let last = state.registry.delete(info, &key, name, Some(rev)).await?;
    Ok((StatusCode::OK, last, true))
}

/// Kinds whose DELETE returns the deleted object (kube-apiserver's `ReturnDeletedObject`); others return a Status.
fn returns_deleted_object(info: &ResourceInfo) -> bool {
    matches!(
        (info.group, info.plural),
        ("", "pods") | ("", "namespaces") | ("", "nodes") | ("", "services")
    )
}

/// Deletes one object with default options (used by the namespace controller).
pub async fn delete_object(state: &State, r: &ResourceRoute, name: &str) -> Result<Object, ApiError> {
    delete_one(state, r, name, &DeleteOptions::default())
        .await
        .map(|(_, o, _)| o)
}

async fn delete(
    state: &State,
    r: &ResourceRoute,
    q: &Query,
    headers: &HeaderMap,
    body: bytes::Bytes,
    rep: Representation,
) -> Result<Response<Body>, ApiError> {
    let name = r.name.clone().unwrap_or_default();
    let opts = delete_options(q, headers, &body)?;
    let (code, obj, gone) = delete_one(state, r, &name, &opts).await?;
    if gone && !returns_deleted_object(r.info) {
        let uid = meta_str(&obj, "uid").unwrap_or("");
        return Ok(response::json_response(
            code,
            &errors::success_status(r.info.group, r.info.plural, &name, uid),
        ));
    }
    Ok(object_reply(code, r.info, &obj, rep))
}

async fn delete_collection(
    state: &State,
    r: &ResourceRoute,
    q: &Query,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    let opts = delete_options(q, headers, &body)?;
    let sel = Selectors::parse(r.info, q)?;
    let ListPage {
        items, revision: rev, ..
    } = list_objects(state, r, &Query::default(), &sel)?;
    let mut deleted = Vec::new();
    for o in items {
        let Some(name) = meta_str(&o, "name") else { continue };
        let rr = ResourceRoute {
            namespace: meta_str(&o, "namespace").map(str::to_string),
            name: Some(name.to_string()),
            ..r.clone()
        };
        match delete_one(state, &rr, name, &opts).await {
            Ok((_, obj, _)) => deleted.push(obj),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(response::list_body(
        r.info,
        &deleted,
        response::list_meta(rev, None, None),
    ))
}

/// How often a binding is re-applied when the Pod changed under it.
const BINDING_ATTEMPTS: u32 = 5;

/// `pods/binding`: assigns a Pod to a node (what the scheduler posts).
async fn binding(
    state: &State,
    r: &ResourceRoute,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    let name = r.name.clone().unwrap_or_default();
    let b = decode_body(headers, &body)?;
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &name,
            &[FieldError::required("target.name", "")],
        ));
    }
    let pr = ResourceRoute {
        subresource: None,
        ..r.clone()
    };
    // Like kube-apiserver's GuaranteedUpdate: a concurrent write to the Pod (its status, say) makes the
    // compare-and-swap fail; the binding is then re-applied to the new version instead of failing.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let old = get_current(state, &pr, &name)?;
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                "",
                "pods/binding",
                &name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        let current = old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict(
                "",
                "pods/binding",
                &name,
                &format!("pod {name} is already assigned to node {}", errors::quote(current)),
            ));
        }
        let mut new = (*old).clone();
        new["spec"]["nodeName"] = json!(node);
        let now = now_rfc3339();
        let mut conds: Vec<Value> = new
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        new["status"]["conditions"] = Value::Array(conds);
        let rev = resource_version(&old).unwrap_or(0);
        match state
            .registry
            .update(r.info, &object_key(&pr, &name), &name, &new, rev)
            .await
        {
            Ok(_) => break,
            Err(e) if e.code == 409 && attempts < BINDING_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(response::json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// The names of the containers listed at `pointer` (`/spec/containers`, `/spec/initContainers`).
fn container_names(pod: &Value, pointer: &str) -> Vec<String> {
    pod.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a log/exec request is for: the `container` parameter, or the only container.
fn pick_container(pod: &Value, name: &str, q: &Query) -> Result<String, ApiError> {
    let names = container_names(pod, "/spec/containers");
    let init = container_names(pod, "/spec/initContainers");
    match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.iter().chain(init.iter()).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// `pods/log`: the options are checked first (422/400, as kube-apiserver does before it reads the Pod), then the
/// container is picked; an unscheduled Pod has an empty log; otherwise the node that runs the Pod is asked and its
/// reply streamed back (see [`node_proxy`]).
async fn logs(state: &State, r: &ResourceRoute, q: &Query) -> Result<Response<Body>, ApiError> {
    let name = r.name.clone().unwrap_or_default();
    let opts = PodLogOptions::from_query(|k| q.get(k))?;
    opts.validate(&name)?;
    let pr = ResourceRoute {
        subresource: None,
        ..r.clone()
    };
    let pod = get_current(state, &pr, &name)?;
    let container = pick_container(&pod, &name, q)?;
    let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    if node_name.is_empty() {
        return Ok(response::raw_response(StatusCode::OK, "text/plain", Vec::new()));
    }
    let nodes = resources::find("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let node = state
        .registry
        .get(nodes, &nodes.key(None, node_name), node_name)?
        .ok_or_else(|| ApiError::not_found("", "nodes", node_name))?;
    // kube-apiserver returns this as a plain error: a 500 without a reason.
    let (host, port) = node_proxy::kubelet_endpoint(&node).map_err(|m| ApiError::new(500, "", m))?;
    let proxy = state
        .node_proxy
        .as_ref()
        .ok_or_else(|| ApiError::internal("the API server has no credentials for reaching nodes"))?;
    let namespace = r.namespace.as_deref().unwrap_or("default");
    proxy
        .container_logs(&host, port, namespace, &name, &container, &opts)
        .await
}

/// exec/attach/portforward need a running container on a node.
fn not_running(state: &State, r: &ResourceRoute) -> Result<Response<Body>, ApiError> {
    let name = r.name.clone().unwrap_or_default();
    let pr = ResourceRoute {
        subresource: None,
        ..r.clone()
    };
    let pod = get_current(state, &pr, &name)?;
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    Err(ApiError::bad_request(format!(
        "unable to upgrade connection: container not found ({name})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_round_trip() {
        let t = encode_continue(42, "default/nginx");
        assert_eq!(decode_continue(&t).unwrap(), (42, "default/nginx".to_string()));
        assert!(decode_continue("!!!").is_err());
    }

    #[test]
    fn grace_periods() {
        let scheduled =
            json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        assert_eq!(pod_grace_period(&scheduled, None), 30);
        assert_eq!(pod_grace_period(&scheduled, Some(0)), 0);
        assert_eq!(pod_grace_period(&scheduled, Some(-5)), 1);
        let pending = json!({"spec": {"terminationGracePeriodSeconds": 30}});
        assert_eq!(pod_grace_period(&pending, None), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(pod_grace_period(&done, Some(10)), 0);
    }

    #[test]
    fn status_update_keeps_spec() {
        let info = resources::find("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "a", "uid": "u"}, "spec": {"x": 1}, "status": {"phase": "Pending"}});
        let new = json!({"metadata": {"name": "a", "uid": "evil"}, "spec": {"x": 2}, "status": {"phase": "Running"}});
        let m = merge_for_update(info, Some("status"), &old, new.clone());
        assert_eq!(m["spec"]["x"], 1);
        assert_eq!(m["status"]["phase"], "Running");
        let m = merge_for_update(info, None, &old, new);
        assert_eq!(m["spec"]["x"], 2);
        assert_eq!(m["status"]["phase"], "Pending");
        assert_eq!(m["metadata"]["uid"], "u");
    }
}
