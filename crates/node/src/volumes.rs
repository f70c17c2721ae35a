//! Pod volumes on the node, as kubelet sets them up (DESIGN §5 "Volumes"): emptyDir, hostPath, configMap, secret,
//! downwardAPI and projected volumes under `<pod_dir>/volumes/<plugin>/<name>` (kubelet's layout:
//! `kubernetes.io~empty-dir`, `~configmap`, `~secret`, `~downward-api`, `~projected`), the OCI bind mounts of each
//! container (with safe `subPath`s), and their teardown from disk state alone.
//!
//! Owns the Pod's `volumes/` and `volume-subpaths/` directories and every mount below them; never anything a
//! hostPath points at. API objects (configMaps, secrets, the service-account token) are fetched by the caller
//! ([`referenced_objects`] says which) and passed in [`VolumeInputs`]; this module does no network IO.
//!
//! Security (reference/security-reliability.md §2.2, §2.4): configMap, secret, downwardAPI and projected volumes
//! are written with the atomic writer and always mounted read-only into containers (CVE-2017-1002102); secrets and
//! projected volumes live on tmpfs so they never reach disk; subPaths are resolved by the kernel beneath the volume
//! root and bind-mounted by fd (CVE-2017-1002101, CVE-2021-25741); teardown never follows symlinks and never
//! descends into another filesystem.

mod atomic_writer;
mod downward;
mod hostpath;
mod mounts;
mod subpath;

pub use atomic_writer::WriteError;
pub use downward::{field_ref_value, format_map, resource_field_value, FieldRefError, PodFacts};
pub use hostpath::HostPathError;
pub use subpath::SubPathError;

use atomic_writer::FileProjection;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use oci_spec::runtime::Mount;
use peapod_api::quantity::Quantity;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Kubelet's plugin directory names (`utilstrings.EscapeQualifiedName("kubernetes.io/empty-dir")` etc.).
pub const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";
pub const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
pub const SECRET_PLUGIN: &str = "kubernetes.io~secret";
pub const DOWNWARD_API_PLUGIN: &str = "kubernetes.io~downward-api";
pub const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";

/// Where a Pod's volumes live under its directory, and where its subPath bind mounts go (kubelet's names).
const VOLUMES_DIR: &str = "volumes";
const SUBPATHS_DIR: &str = "volume-subpaths";
/// File mode when a volume source sets no `defaultMode` (the API's default, 0644, for secrets too).
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Mode of a volume's root directory (`defaultPerm` in kubelet's empty_dir.go).
const VOLUME_DIR_MODE: u32 = 0o777;
/// The configMap the API server publishes the cluster CA in (kube-root-ca.crt publisher); when absent we serve
/// [`VolumeInputs::ca_crt`] under its `ca.crt` key, since our API server does not publish it yet.
const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// The kind of API object a volume needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

/// An object the caller must fetch (from the Pod's namespace) before [`prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectNeed {
    pub kind: ObjectKind,
    pub name: String,
    /// True when every reference to it is `optional: true`: a 404 is then not an error.
    pub optional: bool,
}

/// What [`prepare`] needs besides the Pod: the fetched objects and facts about where the Pod runs.
#[derive(Debug, Clone, Default)]
pub struct VolumeInputs {
    /// ConfigMaps of the Pod's namespace by name; a name missing here is "not found".
    pub config_maps: HashMap<String, ConfigMap>,
    /// Secrets of the Pod's namespace by name; a name missing here is "not found".
    pub secrets: HashMap<String, Secret>,
    /// The token for `serviceAccountToken` projections.
    pub service_account_token: Option<String>,
    /// The cluster CA (PEM), served as configMap `kube-root-ca.crt` key `ca.crt` when that object is absent.
    pub ca_crt: Option<Vec<u8>>,
    /// Node name, Pod and host IPs, node allocatable.
    pub facts: PodFacts,
}

/// The volume plugin that set a volume up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    EmptyDir { memory: bool },
    HostPath,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

impl VolumeKind {
    /// Whether containers always get it read-only (kubelet's `GetAttributes().ReadOnly` for API-data volumes).
    pub fn forced_read_only(self) -> bool {
        matches!(
            self,
            Self::ConfigMap | Self::Secret | Self::DownwardApi | Self::Projected
        )
    }
}

/// One set-up volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedVolume {
    /// The host path containers bind-mount (the hostPath itself for hostPath volumes).
    pub path: PathBuf,
    pub kind: VolumeKind,
}

/// Every volume of a Pod, ready to be mounted into its containers.
#[derive(Debug, Clone)]
pub struct PreparedVolumes {
    /// The Pod's directory (holds `volumes/` and `volume-subpaths/`).
    pub pod_dir: PathBuf,
    /// By volume name.
    pub volumes: BTreeMap<String, PreparedVolume>,
    /// The facts volumes were prepared with, reused to expand `subPathExpr`.
    pub facts: PodFacts,
}

/// Why one volume could not be set up; shown after kubelet's `MountVolume.SetUp failed for volume "x" : `.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKeyMissing(String),
    #[error("references non-existent secret key: {0}")]
    SecretKeyMissing(String),
    #[error(transparent)]
    HostPath(#[from] HostPathError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    DownwardApi(#[from] FieldRefError),
    #[error("failed to fetch token: no service account token was provided for this Pod")]
    NoServiceAccountToken,
    #[error("unknown storage medium {0:?}")]
    UnknownMedium(String),
    #[error("volume type {0} is not supported by this node")]
    Unsupported(&'static str),
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Errors of this module. Messages are kubelet's, for the `FailedMount` and `Failed` events.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("MountVolume.SetUp failed for volume {volume:?} : {cause}")]
    SetUp {
        volume: String,
        #[source]
        cause: SetupError,
    },
    #[error("cannot find volume {mount:?} to mount into container {container:?}")]
    VolumeNotFound { mount: String, container: String },
    /// The subPath escapes its volume or cannot be made (kubelet's `CreateContainerConfigError` message; the cause
    /// holds the detail).
    #[error("failed to prepare subPath for volumeMount {mount:?} of container {container:?}")]
    SubPath {
        mount: String,
        container: String,
        #[source]
        cause: SubPathError,
    },
    #[error("failed to expand subPathExpr {expr:?} for volumeMount {mount:?} of container {container:?}: {reason}")]
    SubPathExpr {
        mount: String,
        container: String,
        expr: String,
        reason: String,
    },
    #[error("Bidirectional mount propagation is available only to privileged containers")]
    Propagation { mount: String, container: String },
    #[error(transparent)]
    FieldRef(#[from] FieldRefError),
    #[error("failed to tear down volumes under {path}: {source}")]
    Teardown {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SetupError {
    let path = path.to_path_buf();
    move |source| SetupError::Io { op, path, source }
}

/// The configMaps and secrets the Pod's volumes reference (directly or through `projected`), each once, in order
/// of first reference. The `kube-root-ca.crt` configMap is listed like any other; if it cannot be fetched,
/// [`VolumeInputs::ca_crt`] stands in for it.
pub fn referenced_objects(pod: &Pod) -> Vec<ObjectNeed> {
    let mut needs: Vec<ObjectNeed> = Vec::new();
    let mut add = |kind, name: &str, optional: Option<bool>| {
        let optional = optional.unwrap_or(false);
        match needs.iter_mut().find(|n| n.kind == kind && n.name == name) {
            // One required reference makes the object required.
            Some(n) => n.optional &= optional,
            None => needs.push(ObjectNeed {
                kind,
                name: name.to_string(),
                optional,
            }),
        }
    };
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if let Some(cm) = &v.config_map {
            add(ObjectKind::ConfigMap, &cm.name, cm.optional);
        }
        if let Some(s) = &v.secret {
            add(ObjectKind::Secret, s.secret_name.as_deref().unwrap_or(""), s.optional);
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &src.config_map {
                add(ObjectKind::ConfigMap, &cm.name, cm.optional);
            }
            if let Some(s) = &src.secret {
                add(ObjectKind::Secret, &s.name, s.optional);
            }
        }
    }
    needs
}

/// Sets up every volume of `pod` under `pod_dir/volumes` (see the module doc). Idempotent: on an existing Pod it
/// re-checks hostPaths, keeps emptyDirs and their contents, and atomically updates changed configMap, secret,
/// downwardAPI and projected contents (kubelet's periodic resync). Stops at the first volume that fails.
pub fn prepare(pod: &Pod, pod_dir: &Path, inputs: &VolumeInputs) -> Result<PreparedVolumes, VolumeError> {
    let fs_group = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    let volumes_dir = pod_dir.join(VOLUMES_DIR);
    let mut prepared = BTreeMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let one = prepare_volume(pod, volume, &volumes_dir, inputs, fs_group).map_err(|cause| VolumeError::SetUp {
            volume: volume.name.clone(),
            cause,
        })?;
        prepared.insert(volume.name.clone(), one);
    }
    Ok(PreparedVolumes {
        pod_dir: pod_dir.to_path_buf(),
        volumes: prepared,
        facts: inputs.facts.clone(),
    })
}

fn prepare_volume(
    pod: &Pod,
    volume: &Volume,
    volumes_dir: &Path,
    inputs: &VolumeInputs,
    fs_group: Option<u32>,
) -> Result<PreparedVolume, SetupError> {
    let allocatable = &inputs.facts.allocatable;
    let plugin_dir = |plugin: &str| volumes_dir.join(plugin).join(&volume.name);
    if let Some(ed) = &volume.empty_dir {
        let dir = plugin_dir(EMPTY_DIR_PLUGIN);
        let memory = match ed.medium.as_deref().unwrap_or("") {
            "" => false,
            "Memory" => true,
            other => return Err(SetupError::UnknownMedium(other.to_string())),
        };
        let created = ensure_volume_dir(&dir)?;
        if memory && !mounts::is_tmpfs_mount(&dir).map_err(io_err("inspect", &dir))? {
            let size = memory_volume_size(pod, ed.size_limit.as_ref(), allocatable);
            mounts::mount_tmpfs(&dir, size).map_err(io_err("mount tmpfs on", &dir))?;
            tracing::debug!(volume = %volume.name, ?size, "emptyDir on tmpfs");
            apply_dir_fs_group(&dir, fs_group)?;
        } else if created {
            apply_dir_fs_group(&dir, fs_group)?;
        }
        return Ok(PreparedVolume {
            path: dir,
            kind: VolumeKind::EmptyDir { memory },
        });
    }
    if let Some(hp) = &volume.host_path {
        let path = PathBuf::from(&hp.path);
        hostpath::check_type(&path, hp.type_.as_deref())?;
        return Ok(PreparedVolume {
            path,
            kind: VolumeKind::HostPath,
        });
    }
    if let Some(cm) = &volume.config_map {
        let dir = plugin_dir(CONFIG_MAP_PLUGIN);
        let payload = config_map_payload(
            &cm.name,
            cm.items.as_deref(),
            mode_or(cm.default_mode, DEFAULT_FILE_MODE),
            cm.optional.unwrap_or(false),
            inputs,
        )?;
        ensure_volume_dir(&dir)?;
        write_payload(&dir, &payload, fs_group)?;
        return Ok(PreparedVolume {
            path: dir,
            kind: VolumeKind::ConfigMap,
        });
    }
    if let Some(s) = &volume.secret {
        let dir = plugin_dir(SECRET_PLUGIN);
        let payload = secret_payload(
            s.secret_name.as_deref().unwrap_or(""),
            s.items.as_deref(),
            mode_or(s.default_mode, DEFAULT_FILE_MODE),
            s.optional.unwrap_or(false),
            inputs,
        )?;
        ensure_memory_volume(pod, &dir, allocatable)?;
        write_payload(&dir, &payload, fs_group)?;
        return Ok(PreparedVolume {
            path: dir,
            kind: VolumeKind::Secret,
        });
    }
    if let Some(d) = &volume.downward_api {
        let dir = plugin_dir(DOWNWARD_API_PLUGIN);
        let payload = downward_payload(
            pod,
            d.items.as_deref().unwrap_or_default(),
            mode_or(d.default_mode, DEFAULT_FILE_MODE),
            &inputs.facts,
        )?;
        ensure_volume_dir(&dir)?;
        write_payload(&dir, &payload, fs_group)?;
        return Ok(PreparedVolume {
            path: dir,
            kind: VolumeKind::DownwardApi,
        });
    }
    if let Some(p) = &volume.projected {
        let dir = plugin_dir(PROJECTED_PLUGIN);
        let default_mode = mode_or(p.default_mode, DEFAULT_FILE_MODE);
        let mut payload = BTreeMap::new();
        for src in p.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                let optional = cm.optional.unwrap_or(false);
                payload.extend(config_map_payload(
                    &cm.name,
                    cm.items.as_deref(),
                    default_mode,
                    optional,
                    inputs,
                )?);
            }
            if let Some(s) = &src.secret {
                let optional = s.optional.unwrap_or(false);
                payload.extend(secret_payload(
                    &s.name,
                    s.items.as_deref(),
                    default_mode,
                    optional,
                    inputs,
                )?);
            }
            if let Some(d) = &src.downward_api {
                let items = d.items.as_deref().unwrap_or_default();
                payload.extend(downward_payload(pod, items, default_mode, &inputs.facts)?);
            }
            if let Some(t) = &src.service_account_token {
                let token = inputs
                    .service_account_token
                    .as_ref()
                    .ok_or(SetupError::NoServiceAccountToken)?;
                let file = FileProjection {
                    data: token.as_bytes().to_vec(),
                    mode: default_mode,
                };
                payload.insert(t.path.clone(), file);
            }
            if src.cluster_trust_bundle.is_some() {
                return Err(SetupError::Unsupported("projected clusterTrustBundle"));
            }
        }
        ensure_memory_volume(pod, &dir, allocatable)?;
        write_payload(&dir, &payload, fs_group)?;
        return Ok(PreparedVolume {
            path: dir,
            kind: VolumeKind::Projected,
        });
    }
    Err(SetupError::Unsupported(unsupported_kind(volume)))
}

/// The name of a volume source this node cannot set up, for the error.
fn unsupported_kind(v: &Volume) -> &'static str {
    if v.persistent_volume_claim.is_some() {
        "persistentVolumeClaim"
    } else if v.ephemeral.is_some() {
        "ephemeral"
    } else if v.csi.is_some() {
        "csi"
    } else if v.nfs.is_some() {
        "nfs"
    } else if v.image.is_some() {
        "image"
    } else {
        "unknown"
    }
}

fn mode_or(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(default) & 0o7777
}

/// Creates a volume's directory (parents 0750, itself 0777) if missing. Returns whether it was created; an
/// existing one is left as the Pod's containers made it.
fn ensure_volume_dir(dir: &Path) -> Result<bool, SetupError> {
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(io_err("create", parent))?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io_err("create", dir)(e)),
    }
    // Chmod because create_dir's mode is filtered by the umask.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(VOLUME_DIR_MODE)).map_err(io_err("chmod", dir))?;
    Ok(true)
}

/// A volume directory with a tmpfs on it (secret and projected volumes: kubelet wraps them in a memory emptyDir).
fn ensure_memory_volume(pod: &Pod, dir: &Path, allocatable: &BTreeMap<String, ApiQuantity>) -> Result<(), SetupError> {
    ensure_volume_dir(dir)?;
    if !mounts::is_tmpfs_mount(dir).map_err(io_err("inspect", dir))? {
        mounts::mount_tmpfs(dir, memory_volume_size(pod, None, allocatable)).map_err(io_err("mount tmpfs on", dir))?;
    }
    Ok(())
}

/// Group ownership for a writable volume root (kubelet's `SetVolumeOwnership`): the fsGroup, group rwx, setgid.
fn apply_dir_fs_group(dir: &Path, fs_group: Option<u32>) -> Result<(), SetupError> {
    let Some(gid) = fs_group else { return Ok(()) };
    rustix::fs::chown(dir, None, Some(rustix::fs::Gid::from_raw(gid))).map_err(|e| io_err("chown", dir)(e.into()))?;
    let mode = std::fs::metadata(dir)
        .map_err(io_err("stat", dir))?
        .permissions()
        .mode()
        & 0o7777;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o2070)).map_err(io_err("chmod", dir))
}

fn write_payload(
    dir: &Path,
    payload: &BTreeMap<String, FileProjection>,
    fs_group: Option<u32>,
) -> Result<(), SetupError> {
    if atomic_writer::write(dir, payload, fs_group)? {
        tracing::debug!(dir = %dir.display(), files = payload.len(), "volume contents written");
    }
    Ok(())
}

/// The tmpfs size of a memory-backed volume (kubelet's `calculateEmptyDirMemorySize`): node allocatable memory,
/// lowered to the Pod's memory limit and then to the volume's `sizeLimit` when those are positive and smaller.
/// `None` (no known bound) leaves the kernel default, half of RAM.
fn memory_volume_size(
    pod: &Pod,
    size_limit: Option<&ApiQuantity>,
    allocatable: &BTreeMap<String, ApiQuantity>,
) -> Option<i64> {
    let bytes = |q: &ApiQuantity| Quantity::parse(&q.0).ok().map(|q| q.value());
    let mut size = allocatable.get("memory").and_then(bytes);
    let mut lower = |candidate: Option<i64>| {
        if let Some(c) = candidate.filter(|c| *c > 0) {
            if size.is_none_or(|s| c <= s) {
                size = Some(c);
            }
        }
    };
    lower(pod_memory_limit(pod));
    lower(size_limit.and_then(bytes));
    size
}

/// The Pod's memory limit when every container declares one (kubelet's pod cgroup rule): the sum over app
/// containers, or the largest init container limit if that is bigger.
fn pod_memory_limit(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let limit = |c: &Container| -> Option<i64> {
        let q = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
        Quantity::parse(&q.0).ok().map(|q| q.value()).filter(|v| *v > 0)
    };
    let mut sum: i64 = 0;
    for c in &spec.containers {
        sum = sum.saturating_add(limit(c)?);
    }
    for c in spec.init_containers.iter().flatten() {
        sum = sum.max(limit(c)?);
    }
    Some(sum)
}

fn config_map_payload(
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
    inputs: &VolumeInputs,
) -> Result<BTreeMap<String, FileProjection>, SetupError> {
    let fallback;
    let cm = match inputs.config_maps.get(name) {
        Some(cm) => cm,
        None if name == ROOT_CA_CONFIG_MAP && inputs.ca_crt.is_some() => {
            let ca = inputs.ca_crt.clone().unwrap_or_default();
            fallback = ConfigMap {
                data: Some(BTreeMap::from([(
                    "ca.crt".to_string(),
                    String::from_utf8_lossy(&ca).into_owned(),
                )])),
                ..Default::default()
            };
            &fallback
        }
        None if optional => return Ok(BTreeMap::new()),
        None => return Err(SetupError::ConfigMapNotFound(name.to_string())),
    };
    let lookup = |key: &str| -> Option<Vec<u8>> {
        cm.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| cm.binary_data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone()))
    };
    let all_keys: Vec<String> = cm
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(cm.binary_data.iter().flat_map(|d| d.keys()))
        .cloned()
        .collect();
    project_keys(
        items,
        &all_keys,
        default_mode,
        optional,
        lookup,
        SetupError::ConfigMapKeyMissing,
    )
}

fn secret_payload(
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
    inputs: &VolumeInputs,
) -> Result<BTreeMap<String, FileProjection>, SetupError> {
    let Some(secret) = inputs.secrets.get(name) else {
        return if optional {
            Ok(BTreeMap::new())
        } else {
            Err(SetupError::SecretNotFound(name.to_string()))
        };
    };
    // stringData is write-only in the API and merged over data on write; honour it if an object still has it.
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    data.extend(
        secret
            .string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec())),
    );
    let all_keys: Vec<String> = data.keys().cloned().collect();
    project_keys(
        items,
        &all_keys,
        default_mode,
        optional,
        |k| data.get(k).cloned(),
        SetupError::SecretKeyMissing,
    )
}

/// The files of a configMap or secret: every key with `default_mode`, or the listed `items` (key → path, mode).
fn project_keys(
    items: Option<&[KeyToPath]>,
    all_keys: &[String],
    default_mode: u32,
    optional: bool,
    lookup: impl Fn(&str) -> Option<Vec<u8>>,
    missing: fn(String) -> SetupError,
) -> Result<BTreeMap<String, FileProjection>, SetupError> {
    let mut payload = BTreeMap::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for key in all_keys {
                if let Some(data) = lookup(key) {
                    payload.insert(
                        key.clone(),
                        FileProjection {
                            data,
                            mode: default_mode,
                        },
                    );
                }
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = lookup(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing(item.key.clone()));
                };
                let path = if item.path.is_empty() {
                    item.key.clone()
                } else {
                    item.path.clone()
                };
                payload.insert(
                    path,
                    FileProjection {
                        data,
                        mode: mode_or(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(payload)
}

fn downward_payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    facts: &PodFacts,
) -> Result<BTreeMap<String, FileProjection>, SetupError> {
    let mut payload = BTreeMap::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field_ref_value(pod, &f.field_path, facts)?
        } else if let Some(r) = &item.resource_field_ref {
            resource_field_value(pod, r.container_name.as_deref().unwrap_or(""), r, &facts.allocatable)?
        } else {
            String::new()
        };
        let file = FileProjection {
            data: value.into_bytes(),
            mode: mode_or(item.mode, default_mode),
        };
        payload.insert(item.path.clone(), file);
    }
    Ok(payload)
}

/// The OCI mounts of `container`: one bind mount per `volumeMount` (`rbind`, the propagation, `ro`/`rw`; API-data
/// volumes always `ro` and also `nosuid,nodev`), with `subPath`/`subPathExpr` bind-mounted safely first. Sorted by
/// destination depth so that a parent mount never hides a child (as containerd sorts).
pub fn container_mounts(
    pod: &Pod,
    container: &Container,
    prepared: &PreparedVolumes,
) -> Result<Vec<Mount>, VolumeError> {
    let privileged = container
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    let mut env: Option<HashMap<String, String>> = None;
    let mut out = Vec::new();
    for (index, vm) in container.volume_mounts.iter().flatten().enumerate() {
        let volume = prepared
            .volumes
            .get(&vm.name)
            .ok_or_else(|| VolumeError::VolumeNotFound {
                mount: vm.name.clone(),
                container: container.name.clone(),
            })?;
        let sub_path = match vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            Some(expr) => {
                let env = env.get_or_insert_with(|| container_env(pod, container, &prepared.facts));
                expand_sub_path_expr(expr, env).map_err(|reason| VolumeError::SubPathExpr {
                    mount: vm.name.clone(),
                    container: container.name.clone(),
                    expr: expr.to_string(),
                    reason,
                })?
            }
            None => vm.sub_path.clone().unwrap_or_default(),
        };
        let source = if sub_path.is_empty() {
            volume.path.clone()
        } else {
            subpath_source(prepared, volume, vm, container, index, &sub_path)?
        };
        let propagation = propagation_option(vm, container, privileged)?;
        let read_only = vm.read_only.unwrap_or(false) || volume.kind.forced_read_only();
        let mut options = vec!["rbind".to_string(), propagation.to_string()];
        options.push(if read_only { "ro" } else { "rw" }.to_string());
        if volume.kind.forced_read_only() {
            // Security: files we wrote ourselves never need setuid or device semantics.
            options.extend(["nosuid".to_string(), "nodev".to_string()]);
        }
        let mut mount = Mount::default();
        mount
            .set_destination(PathBuf::from(&vm.mount_path))
            .set_typ(Some("bind".to_string()))
            .set_source(Some(source))
            .set_options(Some(options));
        out.push(mount);
    }
    out.sort_by_key(|m| m.destination().components().count());
    Ok(out)
}

fn subpath_source(
    prepared: &PreparedVolumes,
    volume: &PreparedVolume,
    vm: &VolumeMount,
    container: &Container,
    index: usize,
    sub_path: &str,
) -> Result<PathBuf, VolumeError> {
    let wrap = |cause| VolumeError::SubPath {
        mount: vm.name.clone(),
        container: container.name.clone(),
        cause,
    };
    // A created subPath directory gets the volume root's mode, as kubelet's SafeMakeDir does.
    let mode = std::fs::metadata(&volume.path)
        .map(|m| m.permissions().mode() & 0o777)
        .map_err(|source| {
            wrap(SubPathError::Io {
                op: "stat",
                path: volume.path.clone(),
                source,
            })
        })?;
    let target = prepared
        .pod_dir
        .join(SUBPATHS_DIR)
        .join(&vm.name)
        .join(&container.name)
        .join(index.to_string());
    subpath::prepare(&volume.path, sub_path, &target, mode).map_err(wrap)
}

/// `rprivate` by default, `rslave` for HostToContainer, `rshared` for Bidirectional (privileged containers only).
fn propagation_option(vm: &VolumeMount, container: &Container, privileged: bool) -> Result<&'static str, VolumeError> {
    match vm.mount_propagation.as_deref() {
        Some("HostToContainer") => Ok("rslave"),
        Some("Bidirectional") if privileged => Ok("rshared"),
        Some("Bidirectional") => Err(VolumeError::Propagation {
            mount: vm.name.clone(),
            container: container.name.clone(),
        }),
        _ => Ok("rprivate"),
    }
}

/// The container's environment as far as `subPathExpr` needs it: plain `value`s (with `$(VAR)` references to
/// earlier variables expanded) and downward API `fieldRef`/`resourceFieldRef`s. configMap/secret references are
/// left out (they are the container env resolver's business).
fn container_env(pod: &Pod, container: &Container, facts: &PodFacts) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                field_ref_value(pod, &f.field_path, facts).ok()
            } else if let Some(r) = &from.resource_field_ref {
                let name = r
                    .container_name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&container.name);
                resource_field_value(pod, name, r, &facts.allocatable).ok()
            } else {
                None
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            Some(expand(&raw, |k| env.get(k).cloned()))
        };
        if let Some(v) = value {
            env.insert(var.name.clone(), v);
        }
    }
    env
}

/// Kubernetes' `$(VAR)` expansion (`third_party/forked/golang/expansion`): `$$` is a literal `$`, an unknown
/// `$(VAR)` stays as written.
fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Expands a `subPathExpr`; like kubelet, a referenced variable that is unset or empty is an error, and so is a
/// result that is absolute or climbs with `..`.
fn expand_sub_path_expr(expr: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let expanded = expand(expr, |k| match env.get(k).filter(|v| !v.is_empty()) {
        Some(v) => Some(v.clone()),
        None => {
            missing.borrow_mut().insert(k.to_string());
            Some(String::new())
        }
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if expanded.starts_with('/') {
        return Err(format!("subPath {expanded:?} must not be an absolute path"));
    }
    if expanded.split('/').any(|p| p == "..") {
        return Err(format!("subPath {expanded:?} must not contain '..'"));
    }
    Ok(expanded)
}

/// Unmounts every mount under `pod_dir/volumes` and `pod_dir/volume-subpaths` (found in `/proc/self/mountinfo`,
/// so no memory of [`prepare`] is needed) and removes both trees without following symlinks. hostPath contents are
/// never touched: hostPaths are not under the Pod's directory and teardown refuses to cross into any mount that
/// survived. Idempotent.
pub fn teardown(pod_dir: &Path) -> Result<(), VolumeError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VolumeError::Teardown { path, source }
    };
    // mountinfo shows resolved absolute paths, so compare against the resolved Pod directory.
    let pod_dir = match std::fs::canonicalize(pod_dir) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(pod_dir)(e)),
    };
    for sub in [SUBPATHS_DIR, VOLUMES_DIR] {
        let root = pod_dir.join(sub);
        mounts::unmount_all_under(&root).map_err(fail(&root))?;
        // Security: the tree is emptied only once no mount is left below it.
        mounts::remove_tree(&root).map_err(fail(&root))?;
    }
    tracing::debug!(pod_dir = %pod_dir.display(), "volumes torn down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeSource,
        EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource, ObjectFieldSelector, PodSpec,
        ProjectedVolumeSource, ResourceFieldSelector, ResourceRequirements, SecretVolumeSource,
        ServiceAccountTokenProjection, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    /// A Pod directory in a temp dir that is torn down even when an assertion fails, so no mount outlives a test.
    struct PodDir {
        dir: tempfile::TempDir,
    }

    impl PodDir {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self) -> &Path {
            self.dir.path()
        }
    }

    impl Drop for PodDir {
        fn drop(&mut self) {
            let _ = teardown(self.dir.path());
        }
    }

    fn is_root() -> bool {
        let root = rustix::process::geteuid().is_root();
        if !root {
            eprintln!("skipped: needs root for mounts");
        }
        root
    }

    fn mounts_below(dir: &Path) -> Vec<PathBuf> {
        mounts::mounts_under(&std::fs::canonicalize(dir).unwrap()).unwrap()
    }

    fn volume(name: &str) -> Volume {
        Volume {
            name: name.into(),
            ..Default::default()
        }
    }

    fn pod(volumes: Vec<Volume>, containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("uid-1".into()),
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(volumes),
                containers,
                ..Default::default()
            }),
            status: None,
        }
    }

    fn container(name: &str, mounts: Vec<VolumeMount>) -> Container {
        Container {
            name: name.into(),
            volume_mounts: Some(mounts),
            ..Default::default()
        }
    }

    fn vm(name: &str, path: &str, sub_path: Option<&str>) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            sub_path: sub_path.map(str::to_string),
            ..Default::default()
        }
    }

    fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn empty_dir_on_disk_and_memory_tmpfs_with_size_limit() {
        if !is_root() {
            return;
        }
        let pd = PodDir::new();
        let mut disk = volume("scratch");
        disk.empty_dir = Some(EmptyDirVolumeSource::default());
        let mut mem = volume("cache");
        mem.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(ApiQuantity("16Mi".into())),
        });
        let p = pod(vec![disk, mem], vec![]);
        let prepared = prepare(&p, pd.path(), &VolumeInputs::default()).unwrap();

        let scratch = pd.path().join("volumes/kubernetes.io~empty-dir/scratch");
        assert_eq!(prepared.volumes["scratch"].path, scratch);
        assert_eq!(mode(&scratch), 0o777);
        assert!(!mounts::is_tmpfs_mount(&scratch).unwrap());

        let cache = pd.path().join("volumes/kubernetes.io~empty-dir/cache");
        assert!(mounts::is_tmpfs_mount(&cache).unwrap());
        let fs = rustix::fs::statfs(&cache).unwrap();
        assert_eq!(fs.f_blocks as u64 * fs.f_bsize as u64, 16 * 1024 * 1024);

        // Contents survive a second prepare, which mounts nothing new.
        std::fs::write(cache.join("kept"), "x").unwrap();
        std::fs::write(scratch.join("kept"), "y").unwrap();
        prepare(&p, pd.path(), &VolumeInputs::default()).unwrap();
        assert_eq!(mounts_below(pd.path()).len(), 1);
        assert_eq!(std::fs::read_to_string(cache.join("kept")).unwrap(), "x");
        assert_eq!(std::fs::read_to_string(scratch.join("kept")).unwrap(), "y");

        teardown(pd.path()).unwrap();
        assert!(mounts_below(pd.path()).is_empty());
        assert!(!pd.path().join("volumes").exists());
        teardown(pd.path()).unwrap();
    }

    #[test]
    fn memory_size_defaults_to_pod_limit_then_allocatable() {
        let limited = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("memory".to_string(), ApiQuantity("64Mi".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let alloc = BTreeMap::from([("memory".to_string(), ApiQuantity("1Gi".into()))]);
        let p = pod(vec![], vec![limited.clone()]);
        assert_eq!(memory_volume_size(&p, None, &alloc), Some(64 << 20));
        assert_eq!(
            memory_volume_size(&p, Some(&ApiQuantity("8Mi".into())), &alloc),
            Some(8 << 20)
        );
        // A sizeLimit above what the Pod may use is ignored.
        assert_eq!(
            memory_volume_size(&p, Some(&ApiQuantity("2Gi".into())), &alloc),
            Some(64 << 20)
        );
        let p = pod(vec![], vec![limited, container("free", vec![])]);
        assert_eq!(memory_volume_size(&p, None, &alloc), Some(1 << 30));
        assert_eq!(memory_volume_size(&p, None, &BTreeMap::new()), None);
    }

    #[test]
    fn config_map_items_modes_and_atomic_update() {
        if !is_root() {
            return;
        }
        let pd = PodDir::new();
        let mut all = volume("all");
        all.config_map = Some(ConfigMapVolumeSource {
            name: "app-config".into(),
            default_mode: Some(0o640),
            ..Default::default()
        });
        let mut some = volume("some");
        some.config_map = Some(ConfigMapVolumeSource {
            name: "app-config".into(),
            items: Some(vec![KeyToPath {
                key: "a".into(),
                path: "conf/a.txt".into(),
                mode: Some(0o600),
            }]),
            ..Default::default()
        });
        let p = pod(vec![all, some], vec![]);
        assert_eq!(
            referenced_objects(&p),
            vec![ObjectNeed {
                kind: ObjectKind::ConfigMap,
                name: "app-config".into(),
                optional: false
            }]
        );
        let mut inputs = VolumeInputs::default();
        inputs
            .config_maps
            .insert("app-config".into(), config_map("app-config", &[("a", "1"), ("b", "2")]));
        prepare(&p, pd.path(), &inputs).unwrap();

        let all_dir = pd.path().join("volumes/kubernetes.io~configmap/all");
        assert_eq!(std::fs::read_to_string(all_dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_link(all_dir.join("b")).unwrap(), Path::new("..data/b"));
        assert_eq!(mode(&all_dir.join("b")), 0o640);
        let some_dir = pd.path().join("volumes/kubernetes.io~configmap/some");
        assert_eq!(std::fs::read_to_string(some_dir.join("conf/a.txt")).unwrap(), "1");
        assert_eq!(mode(&some_dir.join("conf/a.txt")), 0o600);
        assert!(std::fs::symlink_metadata(some_dir.join("b")).is_err());

        // An update swaps ..data to a new timestamped directory; an unchanged volume keeps its version.
        let before_all = std::fs::read_link(all_dir.join("..data")).unwrap();
        let before_some = std::fs::read_link(some_dir.join("..data")).unwrap();
        inputs
            .config_maps
            .insert("app-config".into(), config_map("app-config", &[("a", "1"), ("b", "3")]));
        prepare(&p, pd.path(), &inputs).unwrap();
        let after_all = std::fs::read_link(all_dir.join("..data")).unwrap();
        assert_ne!(before_all, after_all);
        assert!(!all_dir.join(&before_all).exists());
        assert_eq!(std::fs::read_to_string(all_dir.join("b")).unwrap(), "3");
        assert_eq!(std::fs::read_link(some_dir.join("..data")).unwrap(), before_some);

        // Data volumes are read-only in containers whatever the mount says.
        let c = container("app", vec![vm("all", "/etc/app", None)]);
        let prepared = prepare(&p, pd.path(), &inputs).unwrap();
        let m = container_mounts(&p, &c, &prepared).unwrap();
        assert_eq!(m[0].source().as_deref(), Some(all_dir.as_path()));
        assert_eq!(
            m[0].options().as_deref().unwrap(),
            ["rbind", "rprivate", "ro", "nosuid", "nodev"].map(String::from)
        );
    }

    #[test]
    fn missing_objects_required_and_optional() {
        if !is_root() {
            return;
        }
        let pd = PodDir::new();
        let mut cm = volume("config");
        cm.config_map = Some(ConfigMapVolumeSource {
            name: "app-config".into(),
            ..Default::default()
        });
        let err = prepare(&pod(vec![cm.clone()], vec![]), pd.path(), &VolumeInputs::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"config\" : configmap \"app-config\" not found"
        );

        let mut sec = volume("creds");
        sec.secret = Some(SecretVolumeSource {
            secret_name: Some("db".into()),
            ..Default::default()
        });
        let err = prepare(&pod(vec![sec.clone()], vec![]), pd.path(), &VolumeInputs::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"creds\" : secret \"db\" not found"
        );

        let mut inputs = VolumeInputs::default();
        inputs
            .config_maps
            .insert("app-config".into(), config_map("app-config", &[("a", "1")]));
        let mut keyed = cm.clone();
        keyed.config_map.as_mut().unwrap().items = Some(vec![KeyToPath {
            key: "nope".into(),
            path: "n".into(),
            mode: None,
        }]);
        let err = prepare(&pod(vec![keyed.clone()], vec![]), pd.path(), &inputs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"config\" : configmap references non-existent config key: nope"
        );

        // optional: a missing object or key gives an empty volume.
        keyed.config_map.as_mut().unwrap().optional = Some(true);
        sec.secret.as_mut().unwrap().optional = Some(true);
        let p = pod(vec![keyed, sec], vec![]);
        let prepared = prepare(&p, pd.path(), &inputs).unwrap();
        let dir = &prepared.volumes["config"].path;
        assert!(std::fs::symlink_metadata(dir.join("..data")).is_ok());
        assert!(std::fs::symlink_metadata(dir.join("n")).is_err());
        assert!(referenced_objects(&p).iter().all(|n| n.optional));
    }

    #[test]
    fn secret_lives_on_tmpfs_with_default_mode() {
        if !is_root() {
            return;
        }
        let pd = PodDir::new();
        let mut sec = volume("creds");
        sec.secret = Some(SecretVolumeSource {
            secret_name: Some("db".into()),
            ..Default::default()
        });
        let mut inputs = VolumeInputs::default();
        inputs.secrets.insert(
            "db".into(),
            Secret {
                data: Some(BTreeMap::from([(
                    "password".to_string(),
                    ByteString(b"s3cr3t".to_vec()),
                )])),
                ..Default::default()
            },
        );
        let p = pod(vec![sec], vec![]);
        let prepared = prepare(&p, pd.path(), &inputs).unwrap();
        let dir = pd.path().join("volumes/kubernetes.io~secret/creds");
        assert_eq!(prepared.volumes["creds"].path, dir);
        assert!(mounts::is_tmpfs_mount(&dir).unwrap());
        assert_eq!(std::fs::read(dir.join("password")).unwrap(), b"s3cr3t");
        assert_eq!(mode(&dir.join("password")), 0o644);
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info.lines().find(|l| l.contains("kubernetes.io~secret/creds")).unwrap();
        assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
        // Resync with the same data mounts nothing more.
        prepare(&p, pd.path(), &inputs).unwrap();
        assert_eq!(mounts_below(pd.path()).len(), 1);
    }

    #[test]
    fn downward_api_and_projected_contents() {
        if !is_root() {
            return;
        }
        let pd = PodDir::new();
        let field = |path: &str, fp: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: fp.into(),
                api_version: None,
            }),
            ..Default::default()
        };
        let mut d = volume("podinfo");
        d.downward_api = Some(DownwardAPIVolumeSource {
            items: Some(vec![
                field("labels", "metadata.labels"),
                field("name", "metadata.name"),
                DownwardAPIVolumeFile {
                    path: "cpu_limit".into(),
                    resource_field_ref: Some(ResourceFieldSelector {
                        container_name: Some("app".into()),
                        resource: "limits.cpu".into(),
                        divisor: Some(ApiQuantity("1m".into())),
                    }),
                    mode: Some(0o400),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        let mut proj = volume("kube-api-access-abcde");
        proj.projected = Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3607),
                        audience: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![field("namespace", "metadata.namespace")]),
                    }),
                    ..Default::default()
                },
            ]),
        });
        let app = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("cpu".to_string(), ApiQuantity("500m".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod(vec![d, proj], vec![app]);
        let inputs = VolumeInputs {
            service_account_token: Some("tok".into()),
            ca_crt: Some(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
            ..Default::default()
        };
        let prepared = prepare(&p, pd.path(), &inputs).unwrap();
        let dir = &prepared.volumes["podinfo"].path;
        assert_eq!(std::fs::read_to_string(dir.join("labels")).unwrap(), "app=\"web\"");
        assert_eq!(std::fs::read_to_string(dir.join("name")).unwrap(), "web");
        assert_eq!(std::fs::read_to_string(dir.join("cpu_limit")).unwrap(), "500");
        assert_eq!(mode(&dir.join("cpu_limit")), 0o400);

        let pdir = &prepared.volumes["kube-api-access-abcde"].path;
        assert!(mounts::is_tmpfs_mount(pdir).unwrap());
        assert_eq!(std::fs::read_to_string(pdir.join("token")).unwrap(), "tok");
        assert_eq!(std::fs::read_to_string(pdir.join("namespace")).unwrap(), "default");
        assert!(std::fs::read_to_string(pdir.join("ca.crt"))
            .unwrap()
            .starts_with("-----BEGIN"));

        // Without a token the projected volume cannot be set up.
        let err = prepare(&p, pd.path(), &VolumeInputs::default()).unwrap_err();
        assert!(
            matches!(err, VolumeError::SetUp { ref volume, cause: SetupError::NoServiceAccountToken } if volume == "kube-api-access-abcde")
        );
    }

    #[test]
    fn host_path_type_errors_name_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let mut hp = volume("host");
        hp.host_path = Some(HostPathVolumeSource {
            path: file.display().to_string(),
            type_: Some("Directory".into()),
        });
        let err = prepare(&pod(vec![hp], vec![]), dir.path(), &VolumeInputs::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
    }

    #[test]
    fn sub_path_cannot_escape_the_volume() {
        if !is_root() {
            return;
        }
        let pd = PodDir::new();
        let mut ed = volume("data");
        ed.empty_dir = Some(EmptyDirVolumeSource::default());
        let p = pod(vec![ed], vec![]);
        let prepared = prepare(&p, pd.path(), &VolumeInputs::default()).unwrap();
        let root = prepared.volumes["data"].path.clone();
        // What a hostile container could plant in its emptyDir.
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../../etc", root.join("climb")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc", root.join("magic")).unwrap();

        for sub in ["escape", "escape/passwd", "climb", "magic/passwd", "../x", "/etc"] {
            let c = container("app", vec![vm("data", "/mnt", Some(sub))]);
            let err = container_mounts(&p, &c, &prepared).unwrap_err();
            assert_eq!(
                err.to_string(),
                "failed to prepare subPath for volumeMount \"data\" of container \"app\"",
                "{sub}"
            );
        }
        let c = container("app", vec![vm("data", "/mnt", Some("escape"))]);
        match container_mounts(&p, &c, &prepared).unwrap_err() {
            VolumeError::SubPath {
                cause: SubPathError::Escapes { .. },
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
        // Nothing was created or mounted on the host's /etc side.
        assert!(mounts_below(pd.path()).is_empty());

        // A legitimate subPath is created (with the root's mode) and bind-mounted by fd.
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink("real", root.join("inside")).unwrap();
        let c = container(
            "app",
            vec![
                vm("data", "/var/www", Some("site/html")),
                vm("data", "/srv", Some("inside")),
            ],
        );
        let m = container_mounts(&p, &c, &prepared).unwrap();
        assert_eq!(mode(&root.join("site/html")), 0o777);
        let target = pd.path().join("volume-subpaths/data/app/0");
        // Sorted by depth: /srv before /var/www.
        assert_eq!(m[0].destination(), Path::new("/srv"));
        assert_eq!(m[1].source().as_deref(), Some(target.as_path()));
        assert_eq!(
            m[1].options().as_deref().unwrap(),
            ["rbind", "rprivate", "rw"].map(String::from)
        );
        std::fs::write(target.join("index.html"), "hi").unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("site/html/index.html")).unwrap(),
            "hi"
        );
        // A symlink that stays inside the volume is followed, as in kubelet.
        std::fs::write(pd.path().join("volume-subpaths/data/app/1/f"), "via link").unwrap();
        assert_eq!(std::fs::read_to_string(root.join("real/f")).unwrap(), "via link");
        // Idempotent: asking again reuses the mounts.
        container_mounts(&p, &c, &prepared).unwrap();
        assert_eq!(mounts_below(pd.path()).len(), 2);

        teardown(pd.path()).unwrap();
        assert!(mounts_below(pd.path()).is_empty());
        assert!(std::fs::read_dir(pd.path()).unwrap().next().is_none());
        assert!(std::path::Path::new("/etc/passwd").exists());
    }

    #[test]
    fn sub_path_expr_and_config_map_key_sub_path() {
        if !is_root() {
            return;
        }
        let pd = PodDir::new();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("keep.txt"), "host data").unwrap();
        let mut hp = volume("logs");
        hp.host_path = Some(HostPathVolumeSource {
            path: host.path().display().to_string(),
            type_: Some("Directory".into()),
        });
        let mut cm = volume("cfg");
        cm.config_map = Some(ConfigMapVolumeSource {
            name: "app".into(),
            ..Default::default()
        });
        let mut c = container(
            "app",
            vec![
                VolumeMount {
                    name: "logs".into(),
                    mount_path: "/var/log/app".into(),
                    sub_path_expr: Some("$(POD_NAME)/$(MODE)".into()),
                    ..Default::default()
                },
                vm("cfg", "/etc/app.conf", Some("app.conf")),
            ],
        );
        c.env = Some(vec![
            EnvVar {
                name: "POD_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            EnvVar {
                name: "MODE".into(),
                value: Some("run-$(POD_NAME)".into()),
                ..Default::default()
            },
        ]);
        let p = pod(vec![hp, cm], vec![c.clone()]);
        let mut inputs = VolumeInputs::default();
        inputs
            .config_maps
            .insert("app".into(), config_map("app", &[("app.conf", "x=1")]));
        let prepared = prepare(&p, pd.path(), &inputs).unwrap();
        let m = container_mounts(&p, &c, &prepared).unwrap();
        assert!(host.path().join("web/run-web").is_dir());
        let conf = m
            .iter()
            .find(|m| m.destination() == Path::new("/etc/app.conf"))
            .unwrap();
        let src = conf.source().clone().unwrap();
        assert_eq!(std::fs::read_to_string(&src).unwrap(), "x=1");
        assert!(conf.options().as_ref().unwrap().contains(&"ro".to_string()));

        let mut missing = c.clone();
        missing.env = None;
        let err = container_mounts(&p, &missing, &prepared).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to expand subPathExpr \"$(POD_NAME)/$(MODE)\" for volumeMount \"logs\" of container \"app\": \
             missing value for MODE, POD_NAME"
        );

        // Teardown removes the bind mounts but never the hostPath's files.
        teardown(pd.path()).unwrap();
        assert!(mounts_below(pd.path()).is_empty());
        assert_eq!(
            std::fs::read_to_string(host.path().join("keep.txt")).unwrap(),
            "host data"
        );
        assert!(host.path().join("web/run-web").is_dir());
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let env = |k: &str| (k == "A").then(|| "1".to_string());
        assert_eq!(expand("x$(A)y", env), "x1y");
        assert_eq!(expand("$$(A)", env), "$(A)");
        assert_eq!(expand("$(B)", env), "$(B)");
        assert_eq!(expand("$(A", env), "$(A");
        assert_eq!(expand("a$b", env), "a$b");
        let vars = HashMap::from([("A".to_string(), "../x".to_string())]);
        assert!(expand_sub_path_expr("$(A)", &vars).is_err());
    }

    #[test]
    fn bidirectional_propagation_needs_privilege() {
        let prepared = PreparedVolumes {
            pod_dir: PathBuf::from("/nonexistent"),
            volumes: BTreeMap::from([(
                "v".to_string(),
                PreparedVolume {
                    path: PathBuf::from("/srv"),
                    kind: VolumeKind::HostPath,
                },
            )]),
            facts: PodFacts::default(),
        };
        let mut m = vm("v", "/mnt", None);
        m.mount_propagation = Some("Bidirectional".into());
        let c = container("c", vec![m.clone()]);
        let p = pod(vec![], vec![]);
        assert!(matches!(
            container_mounts(&p, &c, &prepared),
            Err(VolumeError::Propagation { .. })
        ));
        m.mount_propagation = Some("HostToContainer".into());
        let c = container("c", vec![m, vm("missing", "/x", None)]);
        assert_eq!(
            container_mounts(&p, &c, &prepared).unwrap_err().to_string(),
            "cannot find volume \"missing\" to mount into container \"c\""
        );
    }
}
