//! OpenAPI documents: the `/openapi/v3` index and one document per group-version.
//!
//! kubectl's `apply`/`create` validate by default; they look for a PATCH operation per Kind that declares the
//! `fieldValidation` parameter, and when they find it they leave validation to the server (which Peapod does,
//! strictly). Each document also names every Kind's schema so `kubectl explain` finds the Kind. `/openapi/v2` is
//! not served: kubectl falls back to its compiled-in types for merge keys.

use crate::response;
use crate::route::Route;
use axum::body::Body;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use peapod_api::resources::{self, ResourceInfo};
use peapod_api::ApiError;
use serde_json::{json, Map, Value};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn operation_id(r: &ResourceInfo) -> String {
    let group: String = r
        .group
        .split('.')
        .next()
        .map(|g| {
            let mut c = g.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let group = if group.is_empty() { "Core".to_string() } else { group };
    let scope = if r.namespaced { "Namespaced" } else { "" };
    format!("patch{group}V1{scope}{}", r.kind)
}

fn schema_name(r: &ResourceInfo) -> String {
    let g = if r.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else {
        format!("io.k8s.api.{}", r.group.split('.').next().unwrap_or(r.group))
    };
    format!("{g}.{}.{}", r.version, r.kind)
}

/// The document for one group-version.
pub fn document(group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&ResourceInfo> = resources::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in rs {
        let path = if r.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}/{{name}}",
                gv_path(group, version),
                r.plural
            )
        } else {
            format!("/{}/{}/{{name}}", gv_path(group, version), r.plural)
        };
        let params: Vec<Value> = ["fieldManager", "fieldValidation", "dryRun"]
            .iter()
            .map(|p| json!({"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
            .chain(std::iter::once(
                json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}),
            ))
            .collect();
        paths.insert(
            path,
            json!({"patch": {
                "operationId": operation_id(r),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            }}),
        );
        schemas.insert(
            schema_name(r),
            json!({
                "type": "object",
                "description": format!("{} is served by Peapod.", r.kind),
                "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": r.kind}],
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// A stable hash of a document, for its URL and ETag (FNV-1a, 64 bits).
fn hash(v: &Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in resources::RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Serves an OpenAPI route.
pub fn serve(route: &Route, headers: &HeaderMap) -> Response<Body> {
    match route {
        Route::OpenApiV3Index => {
            let mut paths = Map::new();
            for (g, v) in group_versions() {
                if let Some(doc) = document(g, v) {
                    let p = gv_path(g, v);
                    paths.insert(
                        p.clone(),
                        json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
                    );
                }
            }
            response::json_response(StatusCode::OK, &json!({"paths": paths}))
        }
        Route::OpenApiV3(p) => {
            let doc = group_versions()
                .into_iter()
                .find(|(g, v)| gv_path(g, v) == *p)
                .and_then(|(g, v)| document(g, v));
            let Some(doc) = doc else {
                return response::error_response(&ApiError::path_not_found());
            };
            let etag = format!("\"{}\"", hash(&doc));
            if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                let mut r = response::raw_response(StatusCode::NOT_MODIFIED, "application/json", Vec::new());
                if let Ok(v) = HeaderValue::from_str(&etag) {
                    r.headers_mut().insert(header::ETAG, v);
                }
                return r;
            }
            let mut r = response::json_response(StatusCode::OK, &doc);
            if let Ok(v) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
            r
        }
        _ => response::error_response(&ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_patch_declares_field_validation() {
        let d = document("", "v1").unwrap();
        let op = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert_eq!(op["operationId"], "patchCoreV1NamespacedPod");
        assert!(document("apps", "v1").is_none());
    }
}
