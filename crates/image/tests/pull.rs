//! Library-level pulls against a real `docker-registry`: two concurrent pulls of one image share one download,
//! credentials come from a Pod's `imagePullSecrets` (`.dockerconfigjson`), and a second pull of an image whose
//! layers are present fetches no layer again.

use std::sync::Arc;

use peapod_image::registry::{DockerConfig, RegistryConfig};
use peapod_image::{ImageRef, ImageStore};
use peapod_test_support::registry::{test_images, Registry};

fn mirror_config(host: &str) -> RegistryConfig {
    RegistryConfig::parse(
        &format!("mirrors:\n  docker.io:\n    endpoint: [\"http://{host}\"]\n"),
        "test",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_share_one_download() {
    let reg = Registry::start(None);
    reg.push(&test_images().join("nginx-1.21.tar"), "library/nginx:1.21");
    let before = reg.requests("GET /v2/library/nginx/blobs/");
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let puller = Arc::new(peapod_image::pull::Puller::new(
        store.clone(),
        mirror_config(&reg.host()),
    ));
    let r = ImageRef::parse("nginx:1.21").unwrap();
    let (a, b) = tokio::join!(puller.pull(&r, &[], None), puller.pull(&r, &[], None));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.id, b.id);
    let blob_gets = reg.requests("GET /v2/library/nginx/blobs/") - before;
    // One config + two layers, each fetched once although two pulls asked.
    assert_eq!(blob_gets, 3, "blob GETs: {blob_gets}");
    // Again: the manifest is asked for, but no layer is fetched twice.
    puller.pull(&r, &[], None).await.unwrap();
    assert_eq!(reg.requests("GET /v2/library/nginx/blobs/") - before, 3);
    let img = store.get("nginx:1.21").unwrap();
    assert_eq!(img.layers.len(), 2);
    for l in &img.layers {
        assert!(
            store.snapshot_fs(&l.chain_id).join("bin").exists() || store.snapshot_fs(&l.chain_id).join("usr").exists()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_secrets_authenticate() {
    let reg = Registry::start(Some(("robot", "pw-123")));
    reg.push(&test_images().join("busybox-1.35.tar"), "library/busybox:1.35");
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let puller = Arc::new(peapod_image::pull::Puller::new(store, mirror_config(&reg.host())));
    let r = ImageRef::parse("busybox:1.35").unwrap();
    let err = puller.pull(&r, &[], None).await.unwrap_err();
    assert_eq!(err.kind, peapod_image::pull::PullErrorKind::Unauthorized, "{err}");
    // kubelet 1.28+ shows Unknown-code CRI errors without the gRPC wrapper; an anonymous pull from a basic-auth
    // registry reads as containerd's "no basic auth credentials".
    assert_eq!(
        err.cri_message(),
        "failed to pull and unpack image \"docker.io/library/busybox:1.35\": failed to resolve reference \
         \"docker.io/library/busybox:1.35\": pull access denied, repository does not exist or may require \
         authorization: authorization failed: no basic auth credentials"
    );
    // A kubernetes.io/dockerconfigjson Secret's value, keyed by the registry the Pod names (docker.io).
    let secret = DockerConfig::parse(
        br#"{"auths":{"https://index.docker.io/v1/":{"username":"robot","password":"pw-123"}}}"#,
        "secret",
    )
    .unwrap();
    let img = puller.pull(&r, &[secret], None).await.unwrap();
    assert_eq!(img.name, "docker.io/library/busybox:1.35");
}
