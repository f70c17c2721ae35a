//! Service accounts end to end against a real `peapod server` and the real kubectl: the ServiceAccount admission
//! step's projected `kube-api-access-…` volume (and opting out), the `kube-root-ca.crt` ConfigMap in every
//! namespace, `kubectl create token`, and authentication with the tokens it returns (tampered and expired ones
//! refused).

use peapod_test_support::Server;
use std::path::Path;
use std::time::Duration;

fn server() -> Server {
    Server::start(Path::new(env!("CARGO_BIN_EXE_peapod")))
}

const POD: &str =
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx:1.21\n";
const POD_NO_TOKEN: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: quiet\nspec:\n  automountServiceAccountToken: false\n  containers:\n  - name: web\n    image: nginx:1.21\n";

#[test]
fn pods_get_the_token_volume_unless_they_opt_out() {
    let s = server();
    s.kubectl_stdin(&["apply", "-f", "-"], POD).ok();
    let json = s.kubectl(&["get", "pod", "web", "-o", "json"]).ok().stdout;
    let pod: serde_json::Value = serde_json::from_str(&json).unwrap();
    let vol = &pod["spec"]["volumes"][0];
    let name = vol["name"].as_str().unwrap();
    let suffix = name.strip_prefix("kube-api-access-").unwrap();
    assert_eq!(suffix.len(), 5);
    assert!(
        suffix.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{name}"
    );
    assert_eq!(
        vol["projected"],
        serde_json::json!({
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        })
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"],
        serde_json::json!([{"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}])
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "default");

    let yaml = s.kubectl(&["get", "pod", "web", "-o", "yaml"]).ok().stdout;
    assert!(yaml.contains(&format!("    - mountPath: /var/run/secrets/kubernetes.io/serviceaccount\n      name: {name}\n      readOnly: true\n")), "{yaml}");

    let d = s.kubectl(&["describe", "pod", "web"]).ok().stdout;
    assert!(
        d.contains(&format!(
            "    Mounts:\n      /var/run/secrets/kubernetes.io/serviceaccount from {name} (ro)\n"
        )),
        "{d}"
    );
    let volumes = format!(
        "Volumes:\n  {name}:\n    Type:                    Projected (a volume that contains injected data from multiple sources)\n    TokenExpirationSeconds:  3607\n    ConfigMapName:           kube-root-ca.crt\n    ConfigMapOptional:       <nil>\n    DownwardAPI:             true\n"
    );
    assert!(d.contains(&volumes), "{d}");

    s.kubectl_stdin(&["apply", "-f", "-"], POD_NO_TOKEN).ok();
    let json = s.kubectl(&["get", "pod", "quiet", "-o", "json"]).ok().stdout;
    let pod: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(pod["spec"].get("volumes").is_none(), "{json}");
    assert!(pod["spec"]["containers"][0].get("volumeMounts").is_none(), "{json}");

    // A ServiceAccount that does not exist is refused, as kube-apiserver's admission does.
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &POD.replace(
            "name: web\nspec:\n",
            "name: ghost\nspec:\n  serviceAccountName: nobody\n",
        ),
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("error looking up service account default/nobody: serviceaccount \"nobody\" not found"),
        "{}",
        out.stderr
    );
}

#[test]
fn root_ca_config_map_in_every_namespace() {
    let s = server();
    let ca = std::fs::read_to_string(s.data_dir().join("pki/ca.crt")).unwrap();
    let get = |ns: &str| {
        s.kubectl(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ])
    };
    assert_eq!(get("default").ok().stdout, ca);
    assert_eq!(get("kube-system").ok().stdout, ca);
    s.kubectl(&["create", "namespace", "team-a"]).ok();
    assert!(
        Server::eventually(Duration::from_secs(10), || get("team-a").code == 0),
        "no kube-root-ca.crt in a new namespace"
    );
    assert_eq!(get("team-a").ok().stdout, ca);
}

/// Decodes unpadded URL-safe base64 (the root package has no base64 dependency).
fn b64url(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | A.iter().position(|&a| a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn claims(token: &str) -> serde_json::Value {
    serde_json::from_slice(&b64url(token.split('.').nth(1).unwrap())).unwrap()
}

#[test]
fn kubectl_create_token_authenticates() {
    let s = server();
    let token = s
        .kubectl(&["create", "token", "default"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let c = claims(&token);
    assert_eq!(c["sub"], "system:serviceaccount:default:default");
    assert_eq!(c["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(
        c["aud"],
        serde_json::json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "default");

    let with = |t: &str, args: &[&str]| {
        let mut a = vec!["--token", t];
        a.extend_from_slice(args);
        s.kubectl(&a)
    };
    let out = with(&token, &["get", "pods"]).ok();
    assert!(
        out.stderr.contains("No resources found in default namespace."),
        "{}",
        out.stderr
    );

    // Flip one character of the signature: refused.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let out = with(&forged, &["get", "pods"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("You must be logged in to the server") || out.stderr.contains("Unauthorized"),
        "{}",
        out.stderr
    );

    // Bound to a Pod, with a duration and audience: works while the Pod exists, stops when it is deleted.
    s.kubectl_stdin(&["apply", "-f", "-"], POD).ok();
    let bound = s
        .kubectl(&[
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=web",
            "--duration=10m",
            "--audience=vault",
            "--audience=https://kubernetes.default.svc.cluster.local",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let c = claims(&bound);
    assert_eq!(c["kubernetes.io"]["pod"]["name"], "web");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    assert_eq!(
        c["aud"],
        serde_json::json!(["vault", "https://kubernetes.default.svc.cluster.local"])
    );
    // An audience other than the API server's does not authenticate here.
    let vault_only = s
        .kubectl(&["create", "token", "default", "--audience=vault"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_ne!(with(&vault_only, &["get", "pods"]).code, 0);
    with(&bound, &["get", "pods"]).ok();
    s.kubectl(&["delete", "pod", "web", "--grace-period=0", "--force"]).ok();
    assert!(Server::eventually(Duration::from_secs(10), || with(
        &bound,
        &["get", "pods"]
    )
    .code
        != 0));

    // Too short a duration is refused in kube-apiserver's words.
    let out = s.kubectl(&["create", "token", "default", "--duration=1m"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("may not specify a duration less than 10 minutes"),
        "{}",
        out.stderr
    );

    // A token for a deleted (and recreated) ServiceAccount stops working.
    s.kubectl(&["create", "serviceaccount", "robot"]).ok();
    let robot = s.kubectl(&["create", "token", "robot"]).ok().stdout.trim().to_string();
    with(&robot, &["get", "pods"]).ok();
    s.kubectl(&["delete", "serviceaccount", "robot"]).ok();
    s.kubectl(&["create", "serviceaccount", "robot"]).ok();
    assert_ne!(with(&robot, &["get", "pods"]).code, 0);

    // Discovery lists the subresource.
    let raw = s.kubectl(&["get", "--raw", "/api/v1"]).ok().stdout;
    assert!(raw.contains("\"name\":\"serviceaccounts/token\""), "{raw}");
}
