//! The Pod network for real (root required): bridges, veths, namespaces and nftables rules on this machine. Every
//! test uses its own bridge name, Pod range and namespaces, and a guard removes them even when an assertion fails.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peapod_network::{host_veth_name, table_name, HostPort, NetworkConfig, PodNetwork, Protocol};

/// How long a connection that should work may take, and how long we wait before calling a dropped one dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DROPPED_TIMEOUT: Duration = Duration::from_millis(700);

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"))
}

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything a test creates on the host, removed on drop (also after a panic).
struct HostGuard {
    tag: String,
    bridge: String,
    netns: Vec<String>,
    links: Vec<String>,
    state: tempfile::TempDir,
}

impl HostGuard {
    fn new() -> Self {
        let tag = format!("{:06x}", random() & 0xff_ffff);
        HostGuard {
            bridge: format!("ppt{tag}"),
            tag,
            netns: Vec::new(),
            links: Vec::new(),
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// A fresh named network namespace; returns its bind-mounted file.
    fn netns(&mut self, name: &str) -> PathBuf {
        let full = format!("ppt{}{name}", self.tag);
        run_ok("ip", &["netns", "add", &full]);
        self.netns.push(full.clone());
        PathBuf::from(format!("/run/netns/{full}"))
    }

    fn config(&self, third_octet: u8, egress: bool) -> NetworkConfig {
        NetworkConfig {
            bridge: self.bridge.clone(),
            pod_cidr: format!("10.250.{third_octet}.0/24").parse().unwrap(),
            cluster_cidr: "10.250.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            egress,
            state_dir: self.state.path().join("ipam"),
        }
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        for link in self.links.iter().chain([&self.bridge]) {
            let _ = run("ip", &["link", "del", link]);
        }
        let _ = run("nft", &["delete", "table", "ip", &table_name(&self.bridge)]);
        for ns in &self.netns {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// A /24 third octet for this test: random, but distinct between the tests of this file.
fn octet(salt: u8) -> u8 {
    ((random() % 80) as u8) * 3 + salt
}

/// Runs `f` on a thread inside the network namespace `netns` (sockets made there stay there).
fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(netns).unwrap();
    std::thread::spawn(move || {
        // SAFETY: setns on a valid, open namespace descriptor only changes this thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// A TCP server answering every connection with `reply`, on a listener bound wherever the caller made it.
fn serve(listener: TcpListener, reply: &'static str) -> u16 {
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    port
}

/// Connects to `addr` (from inside `netns` if given) and returns what the server said, or `None` on failure.
fn fetch(netns: Option<&Path>, addr: SocketAddr, timeout: Duration) -> Option<String> {
    let attempt = move || {
        let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        Some(reply)
    };
    match netns {
        Some(ns) => in_netns(ns, attempt),
        None => attempt(),
    }
}

/// Pod UIDs unique to this test run (host veth names derive from them, and tests run in parallel).
fn uid(host: &HostGuard, name: &str) -> String {
    format!("{}-{name}", host.tag)
}

fn tcp(host_port: u16, container_port: u16, host_ip: Option<Ipv4Addr>) -> HostPort {
    HostPort {
        host_port,
        container_port,
        protocol: Protocol::Tcp,
        host_ip,
    }
}

fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).status.success()
}

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_each_other_the_node_and_hostports() {
    let mut host = HostGuard::new();
    let (ns_a, ns_b, ns_c) = (host.netns("a"), host.netns("b"), host.netns("c"));
    let (pa, pb, pc, pd) = (uid(&host, "a"), uid(&host, "b"), uid(&host, "c"), uid(&host, "d"));
    let config = host.config(octet(0), false);
    let net = PodNetwork::setup(config.clone()).await.unwrap();
    let gateway = net.gateway();
    assert_eq!(gateway, config.pod_cidr.nth(1).unwrap());

    let a = net.attach(&pa, &ns_a, &[]).await.unwrap();
    let (hp_any, hp_gw) = (free_port(), free_port());
    let b = net
        .attach(
            &pb,
            &ns_b,
            &[
                tcp(hp_any, 8080, None),
                tcp(hp_gw, 8080, Some(gateway)),
                tcp(0, 9, None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(a.ip, config.pod_cidr.nth(2).unwrap());
    assert_eq!(b.ip, config.pod_cidr.nth(3).unwrap());
    assert_eq!((a.prefix, a.gateway), (24, gateway));

    // Inside the Pod: eth0 with the address, lo up, default route via the gateway; host end on the bridge.
    let ns_a_name = ns_a.file_name().unwrap().to_str().unwrap().to_string();
    let addr = run_ok(
        "ip",
        &[
            "netns", "exec", &ns_a_name, "ip", "-4", "-o", "addr", "show", "dev", "eth0",
        ],
    );
    assert!(addr.contains(&format!("{}/24", a.ip)), "{addr}");
    let lo = run_ok(
        "ip",
        &["netns", "exec", &ns_a_name, "ip", "-o", "link", "show", "dev", "lo"],
    );
    assert!(lo.contains("UP"), "{lo}");
    let routes = run_ok(
        "ip",
        &["netns", "exec", &ns_a_name, "ip", "-4", "route", "show", "default"],
    );
    assert!(routes.contains(&format!("default via {gateway} dev eth0")), "{routes}");
    let veth = run_ok("ip", &["-o", "link", "show", "dev", &host_veth_name(&pa)]);
    assert!(
        veth.contains(&format!("master {}", host.bridge)) && veth.contains("state UP"),
        "{veth}"
    );

    // A server in Pod B; Pod A reaches it directly.
    let listener = in_netns(&ns_b, || TcpListener::bind("0.0.0.0:8080").unwrap());
    serve(listener, "hello from b");
    let to_b = SocketAddr::from((b.ip, 8080));
    assert_eq!(
        fetch(Some(&ns_a), to_b, CONNECT_TIMEOUT).as_deref(),
        Some("hello from b")
    );

    // Pod A reaches the node at the gateway address.
    let node_port = serve(TcpListener::bind((gateway, 0)).unwrap(), "hello from the node");
    let to_node = SocketAddr::from((gateway, node_port));
    assert_eq!(
        fetch(Some(&ns_a), to_node, CONNECT_TIMEOUT).as_deref(),
        Some("hello from the node")
    );

    // hostPorts: from the node itself (nat OUTPUT), through both maps, and from Pod A (nat PREROUTING, hairpin).
    for port in [hp_any, hp_gw] {
        let to_hostport = SocketAddr::from((gateway, port));
        assert_eq!(
            fetch(None, to_hostport, CONNECT_TIMEOUT).as_deref(),
            Some("hello from b"),
            "node → :{port}"
        );
        assert_eq!(
            fetch(Some(&ns_a), to_hostport, CONNECT_TIMEOUT).as_deref(),
            Some("hello from b"),
            "a → :{port}"
        );
    }

    // Repeating attach keeps the address and leaves a working Pod.
    let again = net.attach(&pa, &ns_a, &[]).await.unwrap();
    assert_eq!(again, a);
    assert_eq!(
        fetch(Some(&ns_a), to_b, CONNECT_TIMEOUT).as_deref(),
        Some("hello from b")
    );

    // Another Pod asking for B's hostPort is refused and leaves nothing behind.
    let before = net.allocations().unwrap();
    let err = net.attach(&pc, &ns_c, &[tcp(hp_any, 80, None)]).await.unwrap_err();
    assert!(err.to_string().contains("nft"), "{err}");
    assert_eq!(net.allocations().unwrap(), before);
    assert!(!link_exists(&host_veth_name(&pc)));
    assert_eq!(
        fetch(None, SocketAddr::from((gateway, hp_any)), CONNECT_TIMEOUT).as_deref(),
        Some("hello from b")
    );

    // A namespace that does not exist: error, no allocation left.
    let missing = PathBuf::from(format!("/run/netns/ppt{}-missing", host.tag));
    assert!(net.attach(&pd, &missing, &[]).await.is_err());
    assert_eq!(net.allocations().unwrap(), before);

    // Attach cost without hostPorts (the Pod start path); printed, not asserted.
    let started = Instant::now();
    let c = net.attach(&pc, &ns_c, &[]).await.unwrap();
    eprintln!("attach without hostPorts took {:?}", started.elapsed());
    let started = Instant::now();
    net.detach(&pc).await.unwrap();
    eprintln!("detach without hostPorts took {:?}", started.elapsed());
    assert!(!config.state_dir.join(c.ip.to_string()).exists());

    net.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_off_drops_traffic_to_the_outside_world() {
    let mut host = HostGuard::new();
    let (ns_a, ns_b, ns_out) = (host.netns("a"), host.netns("b"), host.netns("out"));
    let out_name = ns_out.file_name().unwrap().to_str().unwrap().to_string();

    // The "outside world": a namespace behind its own veth, routed through the node's FORWARD path.
    let block = (random() % 60) as u8 * 4;
    let node_side = Ipv4Addr::new(198, 51, 100, block + 1);
    let world = Ipv4Addr::new(198, 51, 100, block + 2);
    let uplink = format!("ppo{}", host.tag);
    host.links.push(uplink.clone());
    run_ok(
        "ip",
        &[
            "link", "add", &uplink, "type", "veth", "peer", "name", "eth0", "netns", &out_name,
        ],
    );
    run_ok("ip", &["addr", "add", &format!("{node_side}/30"), "dev", &uplink]);
    run_ok("ip", &["link", "set", &uplink, "up"]);
    run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &out_name,
            "ip",
            "addr",
            "add",
            &format!("{world}/30"),
            "dev",
            "eth0",
        ],
    );
    run_ok("ip", &["netns", "exec", &out_name, "ip", "link", "set", "eth0", "up"]);
    let world_port = serve(
        in_netns(&ns_out, || TcpListener::bind("0.0.0.0:0").unwrap()),
        "hello from outside",
    );
    let node_port = serve(TcpListener::bind((node_side, 0)).unwrap(), "hello from the node");

    let (pa, pb) = (uid(&host, "a"), uid(&host, "b"));
    let config = host.config(octet(1), false);
    let net = PodNetwork::setup(config.clone()).await.unwrap();
    net.attach(&pa, &ns_a, &[]).await.unwrap();
    let host_port = free_port();
    net.attach(&pb, &ns_b, &[tcp(host_port, 8080, None)]).await.unwrap();
    serve(
        in_netns(&ns_b, || TcpListener::bind("0.0.0.0:8080").unwrap()),
        "hello from b",
    );

    let to_world = SocketAddr::from((world, world_port));
    let to_node = SocketAddr::from((node_side, node_port));
    let to_hostport = SocketAddr::from((node_side, host_port));
    // Egress off: the outside is unreachable, the node's own address (not in any Pod range) is not.
    assert_eq!(fetch(Some(&ns_a), to_world, DROPPED_TIMEOUT), None);
    assert_eq!(
        fetch(Some(&ns_a), to_node, CONNECT_TIMEOUT).as_deref(),
        Some("hello from the node")
    );
    // The outside reaches Pod B through its hostPort (nat PREROUTING), and B's replies get out.
    assert_eq!(
        fetch(Some(&ns_out), to_hostport, CONNECT_TIMEOUT).as_deref(),
        Some("hello from b")
    );

    // The same node with egress on (setup again, as after a restart with another flag): the outside answers,
    // and B's hostPort survived the rebuilt table.
    drop(net);
    let net = PodNetwork::setup(NetworkConfig {
        egress: true,
        ..config.clone()
    })
    .await
    .unwrap();
    assert_eq!(
        fetch(Some(&ns_a), to_world, CONNECT_TIMEOUT).as_deref(),
        Some("hello from outside")
    );
    assert_eq!(
        fetch(Some(&ns_out), to_hostport, CONNECT_TIMEOUT).as_deref(),
        Some("hello from b")
    );

    // And off again.
    drop(net);
    let net = PodNetwork::setup(config).await.unwrap();
    assert_eq!(fetch(Some(&ns_a), to_world, DROPPED_TIMEOUT), None);
    net.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_restart_and_teardown_leave_no_trace() {
    let mut host = HostGuard::new();
    let (ns_a, ns_b, ns_c, ns_d) = (host.netns("a"), host.netns("b"), host.netns("c"), host.netns("d"));
    let (pa, pb, pc, pd) = (uid(&host, "a"), uid(&host, "b"), uid(&host, "c"), uid(&host, "d"));
    let config = host.config(octet(2), false);
    let table = table_name(&host.bridge);
    let net = PodNetwork::setup(config.clone()).await.unwrap();
    let a = net.attach(&pa, &ns_a, &[]).await.unwrap();
    let host_port = free_port();
    let b = net.attach(&pb, &ns_b, &[tcp(host_port, 80, None)]).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(config.state_dir.join(a.ip.to_string())).unwrap(),
        pa
    );
    let map = run_ok("nft", &["list", "map", "ip", &table, "hostport_any"]);
    assert!(map.contains(&format!("tcp . {host_port} : {} . 80", b.ip)), "{map}");

    // detach: link, file and (for B) rule gone; twice is fine.
    net.detach(&pa).await.unwrap();
    net.detach(&pa).await.unwrap();
    assert!(!link_exists(&host_veth_name(&pa)));
    assert!(!config.state_dir.join(a.ip.to_string()).exists());
    assert_eq!(net.allocations().unwrap(), vec![(b.ip, pb.clone())]);

    // The freed address is not handed out next.
    let c = net.attach(&pc, &ns_c, &[]).await.unwrap();
    assert_ne!(c.ip, a.ip);
    assert_eq!(c.ip, config.pod_cidr.nth(4).unwrap());

    // A new PodNetwork on the same state (an agent restart) knows the allocations and the hostPort.
    drop(net);
    let net = PodNetwork::setup(config.clone()).await.unwrap();
    assert_eq!(net.allocations().unwrap(), vec![(b.ip, pb.clone()), (c.ip, pc.clone())]);
    let map = run_ok("nft", &["list", "map", "ip", &table, "hostport_any"]);
    assert!(map.contains(&format!("tcp . {host_port} : {} . 80", b.ip)), "{map}");
    let d = net.attach(&pd, &ns_d, &[]).await.unwrap();
    assert_eq!(d.ip, config.pod_cidr.nth(5).unwrap(), "the cursor survived the restart");

    // Detaching after the restart removes what the earlier instance made.
    net.detach(&pb).await.unwrap();
    assert!(!link_exists(&host_veth_name(&pb)));
    let map = run_ok("nft", &["list", "map", "ip", &table, "hostport_any"]);
    assert!(!map.contains(&host_port.to_string()), "{map}");
    for uid in [&pc, &pd] {
        net.detach(uid).await.unwrap();
    }
    assert!(net.allocations().unwrap().is_empty());

    net.teardown().await.unwrap();
    net.teardown().await.unwrap();
    assert!(!link_exists(&host.bridge));
    assert!(!run("nft", &["list", "table", "ip", &table]).status.success());
}
