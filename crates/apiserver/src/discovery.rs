//! Discovery: `/version`, `/api`, `/apis`, aggregated discovery (`apidiscovery.k8s.io/v2` and `v2beta1`) and the
//! legacy `APIVersions`/`APIGroupList`/`APIResourceList` documents, all generated from the resource table in
//! `peapod_api::resources`.
//!
//! kubectl reads these before anything else: without them it cannot map `pods` or `po` to a URL.

use crate::response;
use crate::route::Route;
use axum::body::Body;
use http::{HeaderMap, Response, StatusCode};
use peapod_api::resources::{self, ResourceInfo};
use peapod_api::ApiError;
use serde_json::{json, Value};

/// The Kubernetes minor version Peapod reports. The kubectl on these machines is a dispatcher that runs the
/// kubectl matching the server's minor; 32 selects the built-in 1.32.
pub const KUBE_MINOR: &str = "32";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-peapod.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "peapod",
        "gitTreeState": "clean",
        "buildDate": "2026-11-25T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
    })
}

fn scope(r: &ResourceInfo) -> &'static str {
    if r.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

/// Core `serviceaccounts`, which also serve `token` (a TokenRequest of `authentication.k8s.io/v1`).
fn is_service_accounts(r: &ResourceInfo) -> bool {
    r.group.is_empty() && r.plural == "serviceaccounts"
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let kind = if s.kind.is_empty() { r.kind } else { s.kind };
            json!({"subresource": s.name, "responseKind": {"group": r.group, "version": r.version, "kind": kind}, "verbs": s.verbs})
        })
        .collect();
    if is_service_accounts(r) {
        subs.push(crate::service_accounts::discovery_token_subresource());
    }
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": scope(r),
        "singularResource": r.singular,
        "verbs": resources::VERBS,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        v["subresources"] = Value::Array(subs);
    }
    v
}

fn group_resources(group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    resources::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

fn aggregated_group(group: &str) -> Value {
    let resources: Vec<Value> = group_resources(group, "v1")
        .into_iter()
        .map(aggregated_resource)
        .collect();
    let mut meta = json!({"creationTimestamp": null});
    if !group.is_empty() {
        meta["name"] = json!(group);
    }
    json!({"metadata": meta, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
}

fn legacy_resource_list(group: &str, version: &str) -> Value {
    let mut out = Vec::new();
    for r in group_resources(group, version) {
        let mut v = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": resources::VERBS,
        });
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        out.push(v);
        if is_service_accounts(r) {
            out.push(crate::service_accounts::legacy_token_subresource());
        }
        for s in r.subresources {
            out.push(json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                "verbs": s.verbs,
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out})
}

fn api_group(group: &str) -> Value {
    let gv = format!("{group}/v1");
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": group,
        "versions": [{"groupVersion": gv, "version": "v1"}],
        "preferredVersion": {"groupVersion": gv, "version": "v1"},
    })
}

/// Which aggregated-discovery version the client accepts, if any.
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok())?;
    for part in accept.split(',') {
        if part.contains("as=APIGroupDiscoveryList") && part.contains("g=apidiscovery.k8s.io") {
            if part.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if part.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

fn aggregated(version: &str, items: Vec<Value>) -> Response<Body> {
    let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items});
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    match serde_json::to_vec(&body) {
        Ok(b) => response::raw_response(StatusCode::OK, &ct, b),
        Err(e) => response::error_response(&ApiError::internal(e)),
    }
}

/// Serves a discovery route.
pub fn serve(route: &Route, headers: &HeaderMap) -> Response<Body> {
    let agg = aggregated_version(headers);
    match route {
        Route::Api => match agg {
            Some(v) => aggregated(v, vec![aggregated_group("")]),
            None => response::json_response(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
            ),
        },
        Route::Apis => match agg {
            Some(v) => aggregated(v, resources::groups().into_iter().map(aggregated_group).collect()),
            None => {
                let groups: Vec<Value> = resources::groups().into_iter().map(api_group).collect();
                response::json_response(
                    StatusCode::OK,
                    &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                )
            }
        },
        Route::CoreResources => response::json_response(StatusCode::OK, &legacy_resource_list("", "v1")),
        Route::Group(g) if resources::groups().contains(&g.as_str()) => {
            response::json_response(StatusCode::OK, &api_group(g))
        }
        Route::GroupResources(g, v) if !group_resources(g, v).is_empty() => {
            response::json_response(StatusCode::OK, &legacy_resource_list(g, v))
        }
        _ => response::error_response(&ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_aggregated_has_pods_with_short_name() {
        let g = aggregated_group("");
        let pods = g["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"][0], "po");
        assert_eq!(pods["scope"], "Namespaced");
        assert!(g["metadata"].get("name").is_none());
    }

    #[test]
    fn negotiates_aggregated() {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json".parse().unwrap());
        assert_eq!(aggregated_version(&h), Some("v2"));
        h.insert(http::header::ACCEPT, "application/json".parse().unwrap());
        assert_eq!(aggregated_version(&h), None);
    }

    #[test]
    fn legacy_lists_subresources() {
        let l = legacy_resource_list("", "v1");
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/status") && names.contains(&"pods/log") && names.contains(&"namespaces"));
    }
}
