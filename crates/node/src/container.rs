//! What a container runs as, resolved the way the kubelet and containerd resolve it: command and args against the
//! image's Entrypoint and Cmd, environment (image, `envFrom`, `env` with `valueFrom` and `$(VAR)` expansion), working
//! directory, user and groups (names looked up in the image's `/etc/passwd` and `/etc/group`, opened with
//! `RESOLVE_IN_ROOT` so a hostile image's symlinks cannot make the agent read host files), capabilities, resources
//! and the OOM score of the Pod's QoS class.
//!
//! Everything here is pure except [`lookup_user`], which reads inside the container's root.

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret};
use peapod_api::quantity::Quantity;
use peapod_runtime::spec::{self, ProcessUser, Resources};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The PATH containerd gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Objects `env`/`envFrom` refer to, fetched by the caller.
#[derive(Debug, Default, Clone)]
pub struct EnvSources {
    pub config_maps: HashMap<String, ConfigMap>,
    pub secrets: HashMap<String, Secret>,
}

/// Why a container cannot be configured; shown as `CreateContainerConfigError` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The process's argv as the kubelet computes it (`kubecontainer.ExpandContainerCommandAndArgs` on top of the
/// runtime's Entrypoint/Cmd rules).
pub fn command_line(c: &Container, entrypoint: &[String], cmd: &[String], env: &[(String, String)]) -> Vec<String> {
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    let expand = |v: &Vec<String>| v.iter().map(|s| expand_vars(s, env)).collect::<Vec<_>>();
    match (command.is_empty(), args.is_empty()) {
        (true, true) => entrypoint.iter().chain(cmd.iter()).cloned().collect(),
        (false, true) => expand(&command),
        (true, false) => entrypoint.iter().cloned().chain(expand(&args)).collect(),
        (false, false) => expand(&command).into_iter().chain(expand(&args)).collect(),
    }
}

/// Kubernetes' `$(VAR)` expansion: known variables are replaced, `$$` escapes, unknown references stay as written.
pub fn expand_vars(s: &str, env: &[(String, String)]) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == name) {
                        out.push_str(v);
                        i += 2 + end + 1;
                        continue;
                    }
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// The container's environment: image `Env`, then `envFrom`, then `env` in order (later names win, `$(VAR)` sees
/// earlier ones), then `HOSTNAME` if unset.
pub fn environment(
    pod: &Pod,
    c: &Container,
    image_env: &[String],
    sources: &EnvSources,
    facts: &crate::volumes::PodFacts,
    hostname: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = env.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for e in image_env {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        set(&mut env, k.to_string(), v.to_string());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match sources.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        set(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match sources.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for e in c.env.iter().flatten() {
        if let Some(v) = env_value(pod, c, e, &env, sources, facts, ns)? {
            set(&mut env, e.name.clone(), v);
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        let (k, v) = DEFAULT_PATH.split_once('=').unwrap_or(("PATH", ""));
        env.insert(0, (k.to_string(), v.to_string()));
    }
    if !env.iter().any(|(k, _)| k == "HOSTNAME") {
        env.push(("HOSTNAME".into(), hostname.to_string()));
    }
    Ok(env)
}

fn env_value(
    pod: &Pod,
    c: &Container,
    e: &EnvVar,
    env: &[(String, String)],
    sources: &EnvSources,
    facts: &crate::volumes::PodFacts,
    ns: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(from) = &e.value_from else {
        return Ok(Some(expand_vars(e.value.as_deref().unwrap_or(""), env)));
    };
    if let Some(f) = &from.field_ref {
        return crate::volumes::field_ref_value(pod, &f.field_path, facts)
            .map(Some)
            .map_err(|err| ConfigError(err.to_string()));
    }
    if let Some(r) = &from.resource_field_ref {
        let name = r.container_name.as_deref().filter(|n| !n.is_empty()).unwrap_or(&c.name);
        return crate::volumes::resource_field_value(pod, name, r, &facts.allocatable)
            .map(Some)
            .map_err(|err| ConfigError(err.to_string()));
    }
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional.unwrap_or(false);
        return match sources.config_maps.get(&r.name) {
            Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(ConfigError(format!(
                    "couldn't find key {} in ConfigMap {ns}/{}",
                    r.key, r.name
                ))),
            },
            None if optional => Ok(None),
            None => Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional.unwrap_or(false);
        return match sources.secrets.get(&r.name) {
            Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                Some(v) => Ok(Some(String::from_utf8_lossy(&v.0).into_owned())),
                None if optional => Ok(None),
                None => Err(ConfigError(format!(
                    "couldn't find key {} in Secret {ns}/{}",
                    r.key, r.name
                ))),
            },
            None if optional => Ok(None),
            None => Err(ConfigError(format!("secret \"{}\" not found", r.name))),
        };
    }
    Ok(None)
}

/// Names of ConfigMaps and Secrets the containers' environments refer to: (config maps, secrets).
pub fn env_references(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    let spec = pod.spec.as_ref();
    let all = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()));
    for c in all {
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &f.secret_ref {
                secrets.push(r.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            if let Some(v) = &e.value_from {
                if let Some(r) = &v.config_map_key_ref {
                    cms.push(r.name.clone());
                }
                if let Some(r) = &v.secret_key_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// The user spec: `runAsUser`/`runAsGroup` (container over Pod) over the image's `User`, names resolved in the
/// root, plus the Pod's supplemental groups and the user's groups from the image's `/etc/group`.
pub fn process_user(pod: &Pod, c: &Container, image_user: &str, rootfs: &Path) -> Result<ProcessUser, ConfigError> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let run_as_user = csc.and_then(|s| s.run_as_user).or(psc.and_then(|s| s.run_as_user));
    let run_as_group = csc.and_then(|s| s.run_as_group).or(psc.and_then(|s| s.run_as_group));
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let passwd = read_in_root(rootfs, "etc/passwd");
    let group = read_in_root(rootfs, "etc/group");
    let (uid, mut gid, name) = match run_as_user {
        Some(u) => {
            let entry = passwd_entries(&passwd).find(|e| e.1 == u as u32);
            (u as u32, entry.as_ref().map(|e| e.2).unwrap_or(0), entry.map(|e| e.0))
        }
        None if user_part.is_empty() => (0, 0, Some("root".to_string())),
        None => match user_part.parse::<u32>() {
            Ok(u) => {
                let entry = passwd_entries(&passwd).find(|e| e.1 == u);
                (u, entry.as_ref().map(|e| e.2).unwrap_or(0), entry.map(|e| e.0))
            }
            Err(_) => match passwd_entries(&passwd).find(|e| e.0 == user_part) {
                Some(e) => (e.1, e.2, Some(e.0)),
                None => {
                    return Err(ConfigError(format!(
                        "failed to create containerd container: mount callback failed: unable to find user {user_part}: no matching entries in passwd file"
                    )))
                }
            },
        },
    };
    if let Some(g) = group_part.filter(|_| run_as_user.is_none()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_entries(&group)
                .find(|e| e.0 == g)
                .map(|e| e.1)
                .ok_or_else(|| ConfigError(format!("unable to find group {g}: no matching entries in group file")))?,
        };
    }
    if let Some(g) = run_as_group {
        gid = g as u32;
    }
    let mut additional: Vec<u32> = Vec::new();
    if let Some(name) = &name {
        for (_, g, members) in group_entries(&group) {
            if members.iter().any(|m| m == name) && !additional.contains(&g) {
                additional.push(g);
            }
        }
    }
    for g in psc.and_then(|s| s.supplemental_groups.clone()).unwrap_or_default() {
        if !additional.contains(&(g as u32)) {
            additional.push(g as u32);
        }
    }
    if let Some(g) = psc.and_then(|s| s.fs_group) {
        if !additional.contains(&(g as u32)) {
            additional.push(g as u32);
        }
    }
    Ok(ProcessUser {
        uid,
        gid,
        additional_gids: additional,
    })
}

/// Reads a small file inside a container root. `RESOLVE_IN_ROOT` makes absolute symlinks and `..` resolve inside
/// the root, so an image whose `/etc/passwd` links to the host's cannot make the agent read host files.
fn read_in_root(rootfs: &Path, rel: &str) -> String {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Ok(root) = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return String::new();
    };
    let Ok(fd) = rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return String::new();
    };
    let mut f = std::fs::File::from(fd);
    let mut out = String::new();
    // At most 1 MiB: a passwd file is small; a huge one is not worth the agent's memory.
    let _ = std::io::Read::read_to_string(&mut std::io::Read::take(&mut f, 1 << 20), &mut out);
    out
}

/// (name, uid, gid) of each passwd line.
fn passwd_entries(text: &str) -> impl Iterator<Item = (String, u32, u32)> + '_ {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some((f[0].to_string(), f[2].parse().ok()?, f[3].parse().ok()?))
    })
}

/// (name, gid, members) of each group line.
fn group_entries(text: &str) -> impl Iterator<Item = (String, u32, Vec<String>)> + '_ {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let members = f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect();
        Some((f[0].to_string(), f[2].parse().ok()?, members))
    })
}

fn quantity(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    key: &str,
) -> Option<Quantity> {
    map.and_then(|m| m.get(key)).and_then(|q| Quantity::parse(&q.0).ok())
}

/// cgroup limits from the container's requests and limits, as the kubelet converts them.
pub fn resources(c: &Container, pids_limit: Option<i64>) -> Resources {
    let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let lim = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let cpu_req = quantity(req, "cpu").or_else(|| quantity(lim, "cpu"));
    Resources {
        memory_limit: quantity(lim, "memory").map(|q| q.value()),
        cpu_shares: Some(spec::milli_cpu_to_shares(cpu_req.map(|q| q.milli_value()).unwrap_or(0))),
        cpu_quota: quantity(lim, "cpu").map(|q| spec::milli_cpu_to_quota(q.milli_value())),
        pids_limit,
    }
}

/// The kubelet's OOM score for a container (`pkg/kubelet/qos/policy.go`): Guaranteed −997, BestEffort 1000,
/// Burstable from its memory request's share of the node's memory, kept within 2..=999.
pub fn oom_score_adj(qos: &str, c: &Container, memory_capacity: i64) -> i32 {
    match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let req = quantity(c.resources.as_ref().and_then(|r| r.requests.as_ref()), "memory")
                .map(|q| q.value())
                .unwrap_or(0);
            if memory_capacity <= 0 {
                return 999;
            }
            let score = 1000 - (1000 * req as i128 / memory_capacity as i128) as i64;
            score.clamp(2, 999) as i32
        }
    }
}

/// The capabilities after the container's `securityContext.capabilities`.
pub fn capabilities(c: &Container) -> Vec<String> {
    let caps = c.security_context.as_ref().and_then(|s| s.capabilities.as_ref());
    let add = caps.and_then(|c| c.add.clone()).unwrap_or_default();
    let drop = caps.and_then(|c| c.drop.clone()).unwrap_or_default();
    spec::apply_capabilities(&add, &drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(json: serde_json::Value) -> Container {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let ep = vec!["/docker-entrypoint.sh".to_string()];
        let cmd = vec!["nginx".to_string(), "-g".to_string()];
        let env = vec![("NAME".to_string(), "x".to_string())];
        let c = container(serde_json::json!({"name": "a"}));
        assert_eq!(
            command_line(&c, &ep, &cmd, &env),
            vec!["/docker-entrypoint.sh", "nginx", "-g"]
        );
        let c = container(serde_json::json!({"name": "a", "command": ["sh"]}));
        assert_eq!(command_line(&c, &ep, &cmd, &env), vec!["sh"]);
        let c = container(serde_json::json!({"name": "a", "args": ["echo $(NAME)"]}));
        assert_eq!(
            command_line(&c, &ep, &cmd, &env),
            vec!["/docker-entrypoint.sh", "echo x"]
        );
        let c =
            container(serde_json::json!({"name": "a", "command": ["sh", "-c"], "args": ["$(NAME) $$(NAME) $(NOPE)"]}));
        assert_eq!(command_line(&c, &ep, &cmd, &env), vec!["sh", "-c", "x $(NAME) $(NOPE)"]);
    }

    #[test]
    fn environment_orders_image_envfrom_env() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "a"}]}
        }))
        .unwrap();
        let c = container(serde_json::json!({
            "name": "a",
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "env": [
                {"name": "GREETING", "value": "hi $(CM_k)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": true}}}
            ]
        }));
        let mut sources = EnvSources::default();
        sources.config_maps.insert(
            "cm".into(),
            serde_json::from_value(serde_json::json!({"metadata": {"name": "cm"}, "data": {"k": "v"}})).unwrap(),
        );
        let facts = crate::volumes::PodFacts::default();
        let env = environment(
            &pod,
            &c,
            &["PATH=/bin".into(), "GREETING=old".into()],
            &sources,
            &facts,
            "p",
        )
        .unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("PATH").as_deref(), Some("/bin"));
        assert_eq!(get("GREETING").as_deref(), Some("hi v"));
        assert_eq!(get("POD").as_deref(), Some("p"));
        assert_eq!(get("MISSING"), None);
        assert_eq!(get("HOSTNAME").as_deref(), Some("p"));
        let c2 = container(
            serde_json::json!({"name": "a", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
        );
        let err = environment(&pod, &c2, &[], &sources, &facts, "p").unwrap_err();
        assert_eq!(err.0, "secret \"s\" not found");
    }

    #[test]
    fn users_resolve_inside_the_root_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnginx:x:101:101::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nnginx:x:101:\nwww:x:33:nginx\n").unwrap();
        let pod: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}),
        )
        .unwrap();
        let c = container(serde_json::json!({"name": "a"}));
        let u = process_user(&pod, &c, "nginx", d.path()).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.clone()), (101, 101, vec![33]));
        let u = process_user(&pod, &c, "", d.path()).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert!(process_user(&pod, &c, "nobody", d.path()).is_err());
        // An /etc/passwd that points at the host's file is read inside the root (where it does not exist).
        let evil = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(evil.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", evil.path().join("etc/passwd")).unwrap();
        assert!(process_user(&pod, &c, "root", evil.path()).is_err());
        let c = container(serde_json::json!({"name": "a", "securityContext": {"runAsUser": 1000, "runAsGroup": 3000}}));
        let u = process_user(&pod, &c, "nginx", d.path()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 3000));
    }

    #[test]
    fn oom_scores_by_qos() {
        let c = container(serde_json::json!({"name": "a", "resources": {"requests": {"memory": "1Gi"}}}));
        assert_eq!(oom_score_adj("Guaranteed", &c, 4 << 30), -997);
        assert_eq!(oom_score_adj("BestEffort", &c, 4 << 30), 1000);
        assert_eq!(oom_score_adj("Burstable", &c, 4 << 30), 750);
        let r = resources(
            &container(serde_json::json!({"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}})),
            Some(10),
        );
        assert_eq!(r.cpu_quota, Some(50_000));
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!(r.memory_limit, Some(64 << 20));
    }
}
