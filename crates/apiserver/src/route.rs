//! What a request URL names: a discovery document, a health endpoint, or a resource collection, object or
//! subresource, parsed by Kubernetes' URL scheme (`/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`,
//! `/apis/{group}/{version}/…`). Pure.

use peapod_api::resources::{self, ResourceInfo};

/// A parsed request path.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Version,
    /// `/healthz`, `/livez`, `/readyz` (and their sub-checks).
    Health(String),
    Metrics,
    /// `/api`
    Api,
    /// `/api/v1` (legacy discovery of the core group)
    CoreResources,
    /// `/apis`
    Apis,
    /// `/apis/{group}`
    Group(String),
    /// `/apis/{group}/{version}`
    GroupResources(String, String),
    OpenApiV2,
    OpenApiV3Index,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}` (the part after `/openapi/v3/`)
    OpenApiV3(String),
    Resource(ResourceRoute),
    NotFound,
}

/// A path that names resources.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRoute {
    pub info: &'static ResourceInfo,
    /// The namespace in the path (`None` for cluster-scoped resources and for lists across all namespaces).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/api/v1/watch/…` form was used.
    pub legacy_watch: bool,
}

/// Parses a request path (without the query).
pub fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        [h, ..] if matches!(*h, "healthz" | "livez" | "readyz") => Route::Health(h.to_string()),
        ["metrics"] => Route::Metrics,
        ["api"] => Route::Api,
        ["api", "v1"] => Route::CoreResources,
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupResources(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (legacy_watch, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let find = |plural: &str| resources::find(group, version, plural);
    let route = |info: &'static ResourceInfo, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourceRoute {
            info,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
            legacy_watch,
        })
    };
    // `namespaces/{ns}/{resource}…` when {resource} is a namespaced resource of this group/version.
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(info) = find(plural).filter(|i| i.namespaced) {
            return match tail {
                [] => route(info, Some(ns), None, None),
                [name] => route(info, Some(ns), Some(name), None),
                [name, sub] => route(info, Some(ns), Some(name), Some(sub)),
                _ => Route::NotFound,
            };
        }
    }
    match rest {
        [plural] => find(plural).map_or(Route::NotFound, |i| route(i, None, None, None)),
        [plural, name] => match find(plural) {
            Some(i) if !i.namespaced => route(i, None, Some(name), None),
            _ => Route::NotFound,
        },
        [plural, name, sub] => match find(plural) {
            Some(i) if !i.namespaced && i.subresources.iter().any(|s| s.name == *sub) => {
                route(i, None, Some(name), Some(sub))
            }
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(p: &str) -> ResourceRoute {
        match parse(p) {
            Route::Resource(r) => r,
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = res("/api/v1/namespaces/default/pods/nginx/status");
        assert_eq!(
            (
                r.info.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("pods", Some("default"), Some("nginx"), Some("status"))
        );
        let r = res("/api/v1/pods");
        assert_eq!((r.info.plural, r.namespace, r.name), ("pods", None, None));
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!((r.info.plural, r.name.as_deref()), ("namespaces", Some("kube-system")));
        let r = res("/api/v1/namespaces/x/finalize");
        assert_eq!(
            (r.info.plural, r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let r = res("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1");
        assert_eq!((r.info.plural, r.name.as_deref()), ("leases", Some("n1")));
        let r = res("/api/v1/watch/namespaces/default/pods");
        assert!(r.legacy_watch);
        assert_eq!(parse("/api/v1/namespaces/default/bogus"), Route::NotFound);
        assert_eq!(parse("/api/v1/pods/x"), Route::NotFound);
        assert_eq!(
            parse("/apis/apps/v1"),
            Route::GroupResources("apps".into(), "v1".into())
        );
        assert_eq!(parse("/openapi/v3/api/v1"), Route::OpenApiV3("api/v1".into()));
        assert_eq!(parse("/readyz/ping"), Route::Health("readyz".into()));
    }
}
