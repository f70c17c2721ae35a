//! The resources Peapod serves: group, version, kind, plural and short names, scope, verbs, subresources and the
//! field-selector labels each supports.
//!
//! This is the one table discovery, routing, storage keys and field selectors read from, so adding a resource is
//! one entry here (plus its defaulting/validation/table code). Pure data.

/// One served resource, as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The resource name in URLs (`pods`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub categories: &'static [&'static str],
    /// Subresources (`status`, `binding`, `log`, `exec`, …).
    pub subresources: &'static [Subresource],
    /// Field-selector labels beyond `metadata.name` and `metadata.namespace` (which every resource supports).
    pub field_labels: &'static [&'static str],
}

/// A subresource and the Kind it accepts/returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// Verbs of every resource collection Peapod serves (all of them are full CRUD + watch).
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const STATUS_SUB: Subresource = Subresource {
    name: "status",
    kind: "",
    verbs: &["get", "patch", "update"],
};

/// Every resource Peapod serves, core group first.
pub const RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        namespaced: true,
        categories: &["all"],
        subresources: &[
            Subresource {
                name: "attach",
                kind: "PodAttachOptions",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "binding",
                kind: "Binding",
                verbs: &["create"],
            },
            Subresource {
                name: "eviction",
                kind: "Eviction",
                verbs: &["create"],
            },
            Subresource {
                name: "exec",
                kind: "PodExecOptions",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "log",
                kind: "Pod",
                verbs: &["get"],
            },
            Subresource {
                name: "portforward",
                kind: "PodPortForwardOptions",
                verbs: &["create", "get"],
            },
            STATUS_SUB,
        ],
        field_labels: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        short_names: &["no"],
        namespaced: false,
        categories: &[],
        subresources: &[STATUS_SUB],
        field_labels: &["spec.unschedulable"],
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        namespaced: false,
        categories: &[],
        subresources: &[
            STATUS_SUB,
            Subresource {
                name: "finalize",
                kind: "Namespace",
                verbs: &["update"],
            },
        ],
        field_labels: &["status.phase"],
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        namespaced: true,
        categories: &[],
        subresources: &[],
        field_labels: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
        namespaced: true,
        categories: &[],
        subresources: &[],
        field_labels: &[],
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
        namespaced: true,
        categories: &[],
        subresources: &[],
        field_labels: &["type"],
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        short_names: &["sa"],
        namespaced: true,
        categories: &[],
        subresources: &[],
        field_labels: &[],
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        short_names: &[],
        namespaced: true,
        categories: &[],
        subresources: &[],
        field_labels: &[],
    },
    ResourceInfo {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        namespaced: true,
        categories: &[],
        subresources: &[],
        field_labels: &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "reportingController",
            "type",
        ],
    },
];

impl ResourceInfo {
    /// `v1` for core, `group/version` otherwise (the `apiVersion` of objects of this resource).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The `kind` of list replies (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether `label` may be used in a field selector for this resource.
    pub fn supports_field_label(&self, label: &str) -> bool {
        label == "metadata.name"
            || (self.namespaced && label == "metadata.namespace")
            || self.field_labels.contains(&label)
    }

    /// The storage key prefix of this resource's objects (`/registry/<group>/<plural>/`); namespaced objects add
    /// `<namespace>/`, and the object key appends its name.
    pub fn key_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/registry/core/{}/", self.plural)
        } else {
            format!("/registry/{}/{}/", self.group, self.plural)
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/{}", self.key_prefix(), ns, name),
            _ => format!("{}{}", self.key_prefix(), name),
        }
    }

    /// The prefix of every object of this resource in a namespace (or all objects for `None`).
    pub fn collection_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/", self.key_prefix(), ns),
            _ => self.key_prefix(),
        }
    }
}

/// Finds a served resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a served resource by apiVersion and kind (what a manifest names).
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The API groups other than core, in the order discovery lists them, each with its versions.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lookup() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "nginx"), "/registry/core/pods/default/nginx");
        assert_eq!(pods.collection_prefix(None), "/registry/core/pods/");
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(ns.key(Some("ignored"), "default"), "/registry/core/namespaces/default");
        assert_eq!(find_kind("coordination.k8s.io/v1", "Lease").unwrap().plural, "leases");
        assert!(pods.supports_field_label("spec.nodeName"));
        assert!(!pods.supports_field_label("spec.bogus"));
        assert_eq!(groups(), vec!["coordination.k8s.io", "events.k8s.io"]);
    }

    #[test]
    fn key_prefixes_do_not_overlap() {
        // `events` exists in two groups; their keys must not collide.
        let a = find("", "v1", "events").unwrap().key_prefix();
        let b = find("events.k8s.io", "v1", "events").unwrap().key_prefix();
        assert!(!a.starts_with(&b) && !b.starts_with(&a));
    }
}
