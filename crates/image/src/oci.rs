//! The OCI and Docker image documents Peapod reads: descriptors, manifests, indexes (manifest lists) and image
//! configs. Deliberately tolerant structs of our own (unknown fields ignored, Docker and OCI media types alike),
//! parsed only from bytes whose digest was checked first. Pure: no IO.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The annotation holding an image's full name in the store's `index.json` (as containerd's exports do).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI layout annotation for a reference's tag.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Largest manifest, index or config document accepted (containerd uses 4 MiB for manifests).
pub const MAX_DOCUMENT: u64 = 8 << 20;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index / manifest list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// The parts of an image config a node uses.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub config: ContainerConfig,
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// A top-level document: a manifest or an index, told apart by media type or shape.
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

impl Document {
    pub fn parse(bytes: &[u8]) -> Result<Document, String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let media = v.get("mediaType").and_then(|m| m.as_str()).unwrap_or_default();
        if v.get("schemaVersion").and_then(|s| s.as_u64()) != Some(2) {
            return Err("unsupported manifest schema version (want 2)".into());
        }
        let is_index = media == OCI_INDEX || media == DOCKER_LIST || (media.is_empty() && v.get("manifests").is_some());
        if is_index {
            serde_json::from_value(v)
                .map(Document::Index)
                .map_err(|e| format!("bad image index: {e}"))
        } else if media.is_empty() || media == OCI_MANIFEST || media == DOCKER_MANIFEST {
            serde_json::from_value(v)
                .map(Document::Manifest)
                .map_err(|e| format!("bad image manifest: {e}"))
        } else {
            Err(format!("unsupported manifest media type {media:?}"))
        }
    }
}

/// This machine's platform in Go's names (`linux/amd64`, `linux/arm64`, `linux/arm/v7`).
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", None),
        "x86" => ("386", None),
        "arm" => ("arm", Some("v7")),
        "powerpc64" => ("ppc64le", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        other => (other, None),
    };
    Platform {
        architecture: architecture.into(),
        os: "linux".into(),
        variant: variant.map(str::to_string),
    }
}

/// Picks the manifest for `want` from an index, as containerd's default platform matcher does (an arm64
/// variant of `v8` or none matches either).
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let norm_variant = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", Some("v8")) | ("arm64", None) => None,
        (_, v) => v.map(str::to_string),
    };
    let matches = |d: &&Descriptor| match &d.platform {
        Some(p) => {
            p.os == want.os
                && p.architecture == want.architecture
                && (norm_variant(p) == norm_variant(want) || p.variant.is_none())
        }
        None => false,
    };
    index
        .manifests
        .iter()
        .filter(|d| d.media_type != "application/vnd.in-toto+json")
        .find(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_this_platform() {
        let idx: Index = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,
               "platform":{"architecture":"arm","os":"linux","variant":"v6"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,
               "platform":{"architecture":"amd64","os":"linux"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":1,
               "platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#,
        )
        .unwrap();
        let amd = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(select_platform(&idx, &amd).unwrap().digest, "sha256:b");
        let arm64 = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(select_platform(&idx, &arm64).unwrap().digest, "sha256:c");
        let arm7 = Platform {
            architecture: "arm".into(),
            os: "linux".into(),
            variant: Some("v7".into()),
        };
        assert!(select_platform(&idx, &arm7).is_none());
    }

    #[test]
    fn tells_documents_apart() {
        assert!(matches!(
            Document::parse(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"x","digest":"sha256:a","size":1},"layers":[]}"#),
            Ok(Document::Manifest(_))
        ));
        assert!(matches!(
            Document::parse(br#"{"schemaVersion":2,"manifests":[]}"#),
            Ok(Document::Index(_))
        ));
        assert!(Document::parse(br#"{"schemaVersion":1}"#).is_err());
        assert!(Document::parse(b"\xff").is_err());
    }
}
