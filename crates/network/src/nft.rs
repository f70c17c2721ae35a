//! The node's firewall rules, as one nftables table of our own (`ip peapod-<bridge>`): masquerade for Pod traffic
//! leaving the cluster range, the egress drop when Pods may not reach the outside, and hostPort DNAT through two
//! maps (one keyed by node address, one for "any local address"). The text of every change is rendered by pure
//! functions here and applied by one `nft -f -` run fed on stdin, so each change is one atomic transaction.
//! Nothing here touches other tables: what the host's own firewall does is left alone.

use std::fmt::Write as _;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::cidr::Ipv4Net;
use crate::error::NetworkError;
use crate::hostport::PortMapping;

/// The `nft` binary; looked up on `PATH` like the other host tools.
const NFT: &str = "nft";

/// hostPort mappings bound to one node address: `addr . proto . port : pod addr . pod port`.
const MAP_BY_ADDRESS: &str = "hostport_ip";
/// hostPort mappings for any local address: `proto . port : pod addr . pod port`.
const MAP_ANY_ADDRESS: &str = "hostport_any";

/// What the table is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSpec {
    /// The table's name (see [`table_name`]).
    pub table: String,
    pub pod_cidr: Ipv4Net,
    pub cluster_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub egress: bool,
}

/// The table of the bridge `bridge`. One table per bridge so several test networks (and the real one) coexist, and
/// teardown is one `delete table`.
pub fn table_name(bridge: &str) -> String {
    format!("peapod-{bridge}")
}

/// `tcp . 8080 : 10.244.0.5 . 80` or, bound to an address, `192.0.2.2 . tcp . 8080 : 10.244.0.5 . 80`.
fn map_element(m: &PortMapping) -> (&'static str, String) {
    let target = format!("{} . {}", m.pod_ip, m.container_port);
    match m.host_ip {
        Some(ip) => (
            MAP_BY_ADDRESS,
            format!("{ip} . {} . {} : {target}", m.protocol, m.host_port),
        ),
        None => (MAP_ANY_ADDRESS, format!("{} . {} : {target}", m.protocol, m.host_port)),
    }
}

/// The whole table, replacing any previous version in the same transaction (`add` then `delete` then define makes
/// this work whether or not the table exists). `mappings` are the hostPorts of Pods that are still attached.
pub fn render_table(spec: &FirewallSpec, mappings: &[PortMapping]) -> String {
    let FirewallSpec {
        table,
        pod_cidr,
        cluster_cidr,
        service_cidr,
        egress,
    } = spec;
    let mut by_address = Vec::new();
    let mut any_address = Vec::new();
    for m in mappings {
        match map_element(m) {
            (MAP_BY_ADDRESS, e) => by_address.push(e),
            (_, e) => any_address.push(e),
        }
    }
    let elements = |list: &[String]| {
        if list.is_empty() {
            String::new()
        } else {
            format!("\n\t\telements = {{ {} }}", list.join(", "))
        }
    };

    let mut s = String::new();
    // writeln! into a String cannot fail.
    let _ = writeln!(s, "table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{");
    let _ = writeln!(
        s,
        "\tmap {MAP_BY_ADDRESS} {{\n\t\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;{}\n\t}}",
        elements(&by_address)
    );
    let _ = writeln!(
        s,
        "\tmap {MAP_ANY_ADDRESS} {{\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service;{}\n\t}}",
        elements(&any_address)
    );
    // The "any address" map only applies to packets for this node (`fib daddr type local`), never to traffic the
    // node forwards, so a hostPort cannot hijack connections passing through.
    let _ = writeln!(
        s,
        "\tchain hostports {{\n\
         \t\tdnat ip to ip daddr . meta l4proto . th dport map @{MAP_BY_ADDRESS}\n\
         \t\tfib daddr type local dnat ip to meta l4proto . th dport map @{MAP_ANY_ADDRESS}\n\t}}"
    );
    let _ = writeln!(
        s,
        "\tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump hostports\n\t}}"
    );
    // Locally generated connections to a node address reach the Pod too. Loopback destinations are excluded: a DNAT
    // from 127.0.0.1 to a Pod would need route_localnet, which exposes loopback services to the network.
    let _ = writeln!(
        s,
        "\tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n\
         \t\tip daddr != 127.0.0.0/8 jump hostports\n\t}}"
    );
    // Masquerade what leaves the cluster range; Pod-to-Pod traffic keeps its source address. The second rule is
    // the hairpin case: a Pod reaching a hostPort that lands on a Pod of the same bridge would get the reply
    // straight over the bridge, bypassing the DNAT's reverse translation, unless the source is rewritten.
    let _ = writeln!(
        s,
        "\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {pod_cidr} ip daddr != {cluster_cidr} masquerade\n\
         \t\tct status dnat ip saddr {pod_cidr} ip daddr {pod_cidr} masquerade\n\t}}"
    );
    if !egress {
        // Pods may reach Pods, Services and the node (that is the input hook, not this one); anything else they
        // start is dropped. Replies to connections that came in (a hostPort from outside) still pass: those flows
        // were not started by the Pod, and a Pod-started flow to outside never gets past its first packet.
        let _ = writeln!(
            s,
            "\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tct state established,related accept\n\
             \t\tip saddr {pod_cidr} ip daddr != {{ {cluster_cidr}, {service_cidr} }} drop\n\t}}"
        );
    }
    s.push_str("}\n");
    s
}

/// Adds a Pod's mappings. `add` of an element that exists with the same target is a no-op (idempotent attach);
/// with another target (another Pod holds that hostPort) the kernel refuses and the whole change fails.
pub fn render_add_mappings(table: &str, mappings: &[PortMapping]) -> String {
    let mut s = String::new();
    for m in mappings {
        let (map, element) = map_element(m);
        let _ = writeln!(s, "add element ip {table} {map} {{ {element} }}");
    }
    s
}

/// Removes a Pod's mappings, idempotently: nft 1.0.6 has no `destroy element`, and `delete` of a missing element
/// fails the transaction, so each delete is preceded by an `add` of the same element (a no-op if present).
pub fn render_remove_mappings(table: &str, mappings: &[PortMapping]) -> String {
    let mut s = String::new();
    for m in mappings {
        let (map, element) = map_element(m);
        let _ = writeln!(s, "add element ip {table} {map} {{ {element} }}");
        let _ = writeln!(s, "delete element ip {table} {map} {{ {element} }}");
    }
    s
}

/// Deletes the table whether or not it exists.
pub fn render_delete_table(table: &str) -> String {
    format!("table ip {table} {{}}\ndelete table ip {table}\n")
}

/// Runs `nft -f -` with `script` on stdin: one process, one atomic transaction.
pub async fn apply(what: &str, script: &str) -> Result<(), NetworkError> {
    let err = |detail: String| NetworkError::Nft {
        what: what.to_string(),
        detail,
    };
    let mut child = Command::new(NFT)
        .args(["-f", "-"])
        // Error texts in English, for is_conflict.
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| err(format!("cannot run {NFT}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| err(format!("writing the rules to nft: {e}")))?;
        // Dropping stdin closes it: nft reads to EOF.
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| err(format!("waiting for nft: {e}")))?;
    if !output.status.success() {
        return Err(err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    tracing::debug!(what, "applied nft rules");
    Ok(())
}

/// Whether `nft` refused a change because an element exists with another value (a hostPort held by another Pod).
pub fn is_conflict(e: &NetworkError) -> bool {
    matches!(e, NetworkError::Nft { detail, .. } if detail.contains("File exists"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostport::Protocol;
    use std::net::Ipv4Addr;

    fn spec(egress: bool) -> FirewallSpec {
        FirewallSpec {
            table: table_name("pptest1"),
            pod_cidr: "10.244.3.0/24".parse().unwrap(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            egress,
        }
    }

    fn mapping(host_ip: Option<Ipv4Addr>, protocol: Protocol) -> PortMapping {
        PortMapping {
            protocol,
            host_port: 8080,
            host_ip,
            pod_ip: Ipv4Addr::new(10, 244, 3, 5),
            container_port: 80,
        }
    }

    #[test]
    fn table_replaces_itself_and_masquerades_outside_the_cluster() {
        let text = render_table(&spec(true), &[]);
        assert!(
            text.starts_with("table ip peapod-pptest1 {}\ndelete table ip peapod-pptest1\ntable ip peapod-pptest1 {\n")
        );
        assert!(text.contains("ip saddr 10.244.3.0/24 ip daddr != 10.244.0.0/16 masquerade"));
        assert!(text.contains("ct status dnat ip saddr 10.244.3.0/24 ip daddr 10.244.3.0/24 masquerade"));
        assert!(text.contains("type nat hook prerouting priority dstnat"));
        assert!(text.contains("ip daddr != 127.0.0.0/8 jump hostports"));
        assert!(!text.contains("elements"));
        assert!(!text.contains("hook forward"), "egress on: no drop chain");
        assert!(text.ends_with("}\n"));
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }

    #[test]
    fn egress_off_drops_everything_outside_pods_and_services() {
        let text = render_table(&spec(false), &[]);
        let forward = &text[text.find("chain forward").unwrap()..];
        let accept = forward.find("ct state established,related accept").unwrap();
        let drop = forward
            .find("ip saddr 10.244.3.0/24 ip daddr != { 10.244.0.0/16, 10.96.0.0/12 } drop")
            .unwrap();
        assert!(accept < drop, "replies are accepted before the drop");
    }

    #[test]
    fn table_carries_existing_hostports() {
        let text = render_table(
            &spec(true),
            &[
                mapping(None, Protocol::Tcp),
                mapping(Some(Ipv4Addr::new(192, 0, 2, 2)), Protocol::Udp),
            ],
        );
        assert!(text.contains("elements = { tcp . 8080 : 10.244.3.5 . 80 }"));
        assert!(text.contains("elements = { 192.0.2.2 . udp . 8080 : 10.244.3.5 . 80 }"));
    }

    #[test]
    fn element_changes() {
        let m = [
            mapping(None, Protocol::Sctp),
            mapping(Some(Ipv4Addr::new(192, 0, 2, 2)), Protocol::Tcp),
        ];
        assert_eq!(
            render_add_mappings("t", &m),
            "add element ip t hostport_any { sctp . 8080 : 10.244.3.5 . 80 }\n\
             add element ip t hostport_ip { 192.0.2.2 . tcp . 8080 : 10.244.3.5 . 80 }\n"
        );
        let remove = render_remove_mappings("t", &m[..1]);
        assert_eq!(
            remove,
            "add element ip t hostport_any { sctp . 8080 : 10.244.3.5 . 80 }\n\
             delete element ip t hostport_any { sctp . 8080 : 10.244.3.5 . 80 }\n"
        );
        assert_eq!(render_delete_table("t"), "table ip t {}\ndelete table ip t\n");
    }
}
