//! Building replies: JSON bodies, `metav1.Status` errors, content negotiation (`as=Table`,
//! `as=PartialObjectMetadata`), list and Table bodies shaped as kube-apiserver shapes them.

use axum::body::Body;
use http::{header, HeaderValue, Response, StatusCode};
use peapod_api::resources::ResourceInfo;
use peapod_api::ApiError;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// What representation the client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The plain object or list.
    Object,
    /// A `meta.k8s.io/v1` Table (kubectl get).
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList` (metadata-only clients).
    PartialMetadata,
}

/// Picks the representation from an `Accept` header: the first media type we can produce wins, as kube-apiserver
/// negotiates.
pub fn negotiate(accept: Option<&str>) -> Representation {
    let Some(accept) = accept else {
        return Representation::Object;
    };
    for part in accept.split(',') {
        let p = part.trim();
        if p.contains("as=Table") && p.contains("g=meta.k8s.io") {
            return Representation::Table;
        }
        if p.contains("as=PartialObjectMetadata") && p.contains("g=meta.k8s.io") {
            return Representation::PartialMetadata;
        }
        let mime = p.split(';').next().unwrap_or("").trim();
        if matches!(mime, "application/json" | "*/*" | "application/*" | "") || p.starts_with("application/json") {
            return Representation::Object;
        }
    }
    Representation::Object
}

/// A JSON reply.
pub fn json_response(code: StatusCode, body: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => raw_response(code, "application/json", bytes),
        Err(e) => error_response(&ApiError::internal(format!("encode reply: {e}"))),
    }
}

/// A reply with the given content type.
pub fn raw_response(code: StatusCode, content_type: &str, bytes: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A `metav1.Status` error reply.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match serde_json::to_vec(&e.to_status()) {
        Ok(bytes) => raw_response(code, "application/json", bytes),
        Err(_) => raw_response(code, "text/plain", e.message.clone().into_bytes()),
    }
}

/// Adds `Warning: 299 - "<text>"` headers (kubectl prints them as `Warning: <text>`).
pub fn add_warnings(r: &mut Response<Body>, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append("Warning", v);
        }
    }
}

/// Serializes an object map leaving out `kind` and `apiVersion`, as list items are written by kube-apiserver.
struct ListItem<'a>(&'a Value);

impl Serialize for ListItem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(m) => {
                let mut map = s.serialize_map(None)?;
                for (k, v) in m {
                    if k != "kind" && k != "apiVersion" {
                        map.serialize_entry(k, v)?;
                    }
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}

/// The list metadata: resourceVersion, continue token and remaining count.
pub fn list_meta(rev: i64, continue_token: Option<&str>, remaining: Option<u64>) -> Value {
    let mut m = Map::new();
    m.insert("resourceVersion".into(), json!(rev.to_string()));
    if let Some(c) = continue_token {
        m.insert("continue".into(), json!(c));
    }
    if let Some(r) = remaining {
        m.insert("remainingItemCount".into(), json!(r));
    }
    Value::Object(m)
}

#[derive(Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<ListItem<'a>>,
}

/// A `<Kind>List` body.
pub fn list_body(info: &ResourceInfo, items: &[std::sync::Arc<Value>], meta: Value) -> Response<Body> {
    let body = ListBody {
        kind: info.list_kind(),
        api_version: info.api_version(),
        metadata: meta,
        items: items.iter().map(|o| ListItem(o)).collect(),
    };
    json_response(StatusCode::OK, &body)
}

/// The `metadata` of an object as `PartialObjectMetadata`.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `PartialObjectMetadataList` body.
pub fn partial_list_body(items: &[std::sync::Arc<Value>], meta: Value) -> Response<Body> {
    let items: Vec<Value> = items.iter().map(|o| partial_metadata(o)).collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
    )
}

/// What `includeObject` asked to embed in each Table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// One Table row for `obj`.
pub fn table_row(info: &ResourceInfo, obj: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let cells = peapod_api::table::cells(info.group, info.plural, obj, now);
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => partial_metadata(obj),
        IncludeObject::Object => obj.clone(),
    };
    let mut row = json!({ "cells": cells, "object": object });
    if let Some(c) = peapod_api::table::row_conditions(info.group, info.plural, obj) {
        row["conditions"] = c;
    }
    row
}

/// A Table of `objs`; `with_columns` false sends `columnDefinitions: null` (watch events after the first).
pub fn table(
    info: &ResourceInfo,
    objs: &[std::sync::Arc<Value>],
    meta: Value,
    include: IncludeObject,
    with_columns: bool,
    now: jiff::Timestamp,
) -> Value {
    let rows: Vec<Value> = objs.iter().map(|o| table_row(info, o, include, now)).collect();
    let columns = if with_columns {
        Value::Array(peapod_api::table::columns(info.group, info.plural))
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl_get)), Representation::Table);
        assert_eq!(negotiate(Some("application/json, */*")), Representation::Object);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json")),
            Representation::Object
        );
        assert_eq!(negotiate(None), Representation::Object);
        assert_eq!(
            negotiate(Some("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")),
            Representation::PartialMetadata
        );
    }

    #[test]
    fn list_items_drop_type_meta() {
        let v = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a"}});
        let s = serde_json::to_string(&ListItem(&v)).unwrap();
        assert_eq!(s, r#"{"metadata":{"name":"a"}}"#);
    }
}
