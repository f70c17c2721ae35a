//! The downward API's values: what a `fieldRef` or `resourceFieldRef` resolves to for a Pod, formatted as kubelet
//! formats them (`pkg/fieldpath` and `pkg/api/v1/resource`). Pure: shared by downwardAPI/projected volumes and by the
//! container environment resolver (`env[].valueFrom`); it never touches the disk.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use peapod_api::quantity::{Quantity, QuantityError};
use std::collections::BTreeMap;

/// Facts about where a Pod runs that the downward API exposes but the Pod object may not carry yet (the agent
/// prepares volumes before it has written `status.podIP`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodFacts {
    /// This node's name (`spec.nodeName` when the Pod has none).
    pub node_name: String,
    /// The Pod's IP once its sandbox has one (`status.podIP`).
    pub pod_ip: Option<String>,
    /// The node's IP (`status.hostIP`).
    pub host_ip: Option<String>,
    /// The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage`): what `limits.*` resolves to for a
    /// container without that limit, and the default size of memory-backed volumes. Empty when unknown.
    pub allocatable: BTreeMap<String, ApiQuantity>,
}

/// Why a downward API reference cannot be resolved, in kubelet's words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldRefError {
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    #[error("fieldPath {0:?} does not support subscript")]
    SubscriptNotSupported(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    #[error("invalid quantity {value:?} for {what}: {source}")]
    Quantity {
        value: String,
        what: String,
        #[source]
        source: QuantityError,
    },
}

/// The value of `fieldRef.fieldPath` for `pod`, as kubelet resolves it (`ExtractFieldPathAsString` plus the
/// runtime fields of `podFieldSelectorRuntimeValue`). `metadata.labels`/`metadata.annotations` are `key="value"`
/// lines sorted by key; a missing subscripted key is the empty string.
pub fn field_ref_value(pod: &Pod, field_path: &str, facts: &PodFacts) -> Result<String, FieldRefError> {
    let meta = &pod.metadata;
    if let Some((path, subscript)) = split_subscript(field_path) {
        let map = match path {
            "metadata.labels" => &meta.labels,
            "metadata.annotations" => &meta.annotations,
            _ => return Err(FieldRefError::SubscriptNotSupported(field_path.to_string())),
        };
        return Ok(map.as_ref().and_then(|m| m.get(subscript)).cloned().unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let value = match field_path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| facts.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" => facts
            .pod_ip
            .clone()
            .or_else(|| status.and_then(|s| s.pod_ip.clone()))
            .unwrap_or_default(),
        "status.podIPs" => match &facts.pod_ip {
            Some(ip) => ip.clone(),
            None => status
                .and_then(|s| s.pod_ips.as_ref())
                .map(|ips| ips.iter().map(|i| i.ip.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
        },
        "status.hostIP" => facts
            .host_ip
            .clone()
            .or_else(|| status.and_then(|s| s.host_ip.clone()))
            .unwrap_or_default(),
        "status.hostIPs" => match &facts.host_ip {
            Some(ip) => ip.clone(),
            None => status
                .and_then(|s| s.host_ips.as_ref())
                .map(|ips| ips.iter().map(|i| i.ip.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
        },
        _ => return Err(FieldRefError::UnsupportedFieldPath(field_path.to_string())),
    };
    Ok(value)
}

/// The value of a `resourceFieldRef` for container `container_name` of `pod` (kubelet's
/// `ExtractResourceValueByContainerNameAndNodeAllocatable`): the quantity divided by `divisor` (default 1), rounded
/// up; a missing or zero `limits.cpu`/`limits.memory`/`limits.ephemeral-storage` is the node's allocatable.
pub fn resource_field_value(
    pod: &Pod,
    container_name: &str,
    selector: &ResourceFieldSelector,
    allocatable: &BTreeMap<String, ApiQuantity>,
) -> Result<String, FieldRefError> {
    let container = find_container(pod, container_name)
        .ok_or_else(|| FieldRefError::ContainerNotFound(container_name.to_string()))?;
    let resource = selector.resource.as_str();
    let (list, name) = if let Some(name) = resource.strip_prefix("limits.") {
        (container.resources.as_ref().and_then(|r| r.limits.as_ref()), name)
    } else if let Some(name) = resource.strip_prefix("requests.") {
        (container.resources.as_ref().and_then(|r| r.requests.as_ref()), name)
    } else {
        return Err(FieldRefError::UnsupportedResource(resource.to_string()));
    };
    let supported = matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !supported {
        return Err(FieldRefError::UnsupportedResource(resource.to_string()));
    }
    let mut value = list.and_then(|l| l.get(name)).map(|q| parse(q, resource)).transpose()?;
    // Hugepages are never overcommitted, so kubelet merges only these three with the node's allocatable.
    let mergeable = matches!(name, "cpu" | "memory" | "ephemeral-storage");
    if resource.starts_with("limits.") && mergeable && value.as_ref().is_none_or(Quantity::is_zero) {
        if let Some(cap) = allocatable.get(name) {
            value = Some(parse(cap, &format!("allocatable {name}"))?);
        }
    }
    let divisor = match &selector.divisor {
        Some(d) => parse(d, "divisor")?,
        None => Quantity::new(1, 0, peapod_api::quantity::Format::DecimalSI),
    };
    let divisor = if divisor.is_zero() {
        Quantity::new(1, 0, peapod_api::quantity::Format::DecimalSI)
    } else {
        divisor
    };
    Ok(match value {
        Some(v) => ceil_ratio(&v, &divisor).to_string(),
        None => "0".to_string(),
    })
}

/// The container named `name` among the Pod's containers, then its init containers (kubelet's order).
fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

fn parse(q: &ApiQuantity, what: &str) -> Result<Quantity, FieldRefError> {
    Quantity::parse(&q.0).map_err(|source| FieldRefError::Quantity {
        value: q.0.clone(),
        what: what.to_string(),
        source,
    })
}

/// `ceil(value / divisor)` computed exactly (kubelet's `convertQuantityToString`): non-positive inputs give 0, the
/// result saturates at `i64::MAX`.
fn ceil_ratio(value: &Quantity, divisor: &Quantity) -> i64 {
    if value.sign() <= 0 || divisor.sign() <= 0 {
        return 0;
    }
    // Find the coarsest power of ten at which both are integers, so the integers stay small; parsed quantities
    // are always exact at nano scale, where the loop ends at the latest.
    let mut scale = 18;
    while scale > -9 && !(value.clone().round_up(scale) && divisor.clone().round_up(scale)) {
        scale -= 1;
    }
    let v = i128::from(value.scaled_value(scale));
    let d = i128::from(divisor.scaled_value(scale)).max(1);
    i64::try_from((v + d - 1) / d).unwrap_or(i64::MAX)
}

/// `metadata.labels['key']` → `("metadata.labels", "key")` (`fieldpath.SplitMaybeSubscriptedPath`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_suffix("']")?;
    let (base, key) = rest.split_once("['")?;
    Some((base, key))
}

/// Kubelet's `fieldpath.FormatMap`: `key="value"` lines sorted by key (Go `%q` quoting), no trailing newline.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let Some(map) = map else { return String::new() };
    // BTreeMap iterates in byte order of keys, which is Go's sort.Strings order.
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`: printable characters as they are, `"` and `\` escaped, the rest as `\n`-style, `\x`,
/// `\u` or `\U` escapes. Printability follows Go's `unicode.IsPrint` closely (control, format and non-ASCII space
/// characters are escaped).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let format_char =
        matches!(c as u32, 0xAD | 0x600..=0x605 | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0xFEFF);
    !c.is_control() && !c.is_whitespace() && !format_char
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn q(s: &str) -> ApiQuantity {
        ApiQuantity(s.to_string())
    }

    fn pod() -> Pod {
        let limits = BTreeMap::from([("cpu".to_string(), q("250m")), ("memory".to_string(), q("64Mi"))]);
        let requests = BTreeMap::from([("cpu".to_string(), q("100m"))]);
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("1234".into()),
                labels: Some(BTreeMap::from([
                    ("tier".to_string(), "front".to_string()),
                    ("app".to_string(), "say \"hi\"\n".to_string()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "c".into(),
                        resources: Some(ResourceRequirements {
                            limits: Some(limits),
                            requests: Some(requests),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Container {
                        name: "unlimited".into(),
                        ..Default::default()
                    },
                ],
                service_account_name: Some("builder".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                host_ip: Some("10.0.0.1".into()),
                ..Default::default()
            }),
        }
    }

    fn sel(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            container_name: None,
            divisor: divisor.map(q),
            resource: resource.into(),
        }
    }

    #[test]
    fn metadata_and_runtime_fields() {
        let facts = PodFacts {
            node_name: "node-1".into(),
            pod_ip: Some("10.244.0.5".into()),
            ..Default::default()
        };
        let p = pod();
        let v = |f: &str| field_ref_value(&p, f, &facts).unwrap();
        assert_eq!(v("metadata.name"), "web");
        assert_eq!(v("metadata.namespace"), "prod");
        assert_eq!(v("metadata.uid"), "1234");
        assert_eq!(v("metadata.labels"), "app=\"say \\\"hi\\\"\\n\"\ntier=\"front\"");
        assert_eq!(v("metadata.labels['tier']"), "front");
        assert_eq!(v("metadata.labels['absent']"), "");
        assert_eq!(v("metadata.annotations"), "");
        assert_eq!(v("spec.nodeName"), "node-1");
        assert_eq!(v("spec.serviceAccountName"), "builder");
        assert_eq!(v("status.podIP"), "10.244.0.5");
        assert_eq!(v("status.hostIP"), "10.0.0.1");
        assert_eq!(
            field_ref_value(&p, "spec.hostname", &facts).unwrap_err().to_string(),
            "unsupported fieldPath: spec.hostname"
        );
        assert_eq!(
            field_ref_value(&p, "metadata.name['x']", &facts)
                .unwrap_err()
                .to_string(),
            "fieldPath \"metadata.name['x']\" does not support subscript"
        );
    }

    #[test]
    fn go_quoting_escapes_like_strconv_quote() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("tab\there"), "\"tab\\there\"");
        assert_eq!(go_quote("\x01\x7f"), "\"\\x01\\x7f\"");
        assert_eq!(go_quote("é\u{a0}"), "\"é\\u00a0\"");
    }

    #[test]
    fn resources_round_up_and_fall_back_to_allocatable() {
        let p = pod();
        let alloc = BTreeMap::from([("cpu".to_string(), q("2")), ("memory".to_string(), q("8Gi"))]);
        let v = |c: &str, r: &str, d: Option<&str>| resource_field_value(&p, c, &sel(r, d), &alloc).unwrap();
        assert_eq!(v("c", "limits.cpu", None), "1"); // 250m rounds up to 1 core
        assert_eq!(v("c", "limits.cpu", Some("1m")), "250");
        assert_eq!(v("c", "limits.cpu", Some("100m")), "3");
        assert_eq!(v("c", "requests.cpu", Some("1m")), "100");
        assert_eq!(v("c", "limits.memory", None), "67108864");
        assert_eq!(v("c", "limits.memory", Some("1Mi")), "64");
        assert_eq!(v("c", "limits.memory", Some("1M")), "68"); // 67.1 MB rounds up
        assert_eq!(v("c", "requests.memory", None), "0");
        assert_eq!(v("unlimited", "limits.cpu", Some("1m")), "2000");
        assert_eq!(v("unlimited", "limits.memory", Some("1Gi")), "8");
        assert_eq!(
            resource_field_value(&p, "c", &sel("limits.gpu", None), &alloc)
                .unwrap_err()
                .to_string(),
            "unsupported container resource : limits.gpu"
        );
        assert_eq!(
            resource_field_value(&p, "nope", &sel("limits.cpu", None), &alloc)
                .unwrap_err()
                .to_string(),
            "container nope not found"
        );
        // Without a known allocatable, a missing limit is 0.
        let none = BTreeMap::new();
        assert_eq!(
            resource_field_value(&p, "unlimited", &sel("limits.cpu", None), &none).unwrap(),
            "0"
        );
    }

    #[test]
    fn huge_values_stay_exact() {
        let big = Quantity::parse("100Pi").unwrap();
        let one = Quantity::parse("1").unwrap();
        assert_eq!(ceil_ratio(&big, &one), 112_589_990_684_262_400);
        assert_eq!(
            ceil_ratio(&Quantity::parse("1n").unwrap(), &Quantity::parse("1Gi").unwrap()),
            1
        );
    }
}
