//! `peapod`: Kubernetes Pods in one binary. This file parses arguments and wires the crates together; nothing else.

mod bench;
mod bench_image;
mod image_cmd;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "peapod", version, about = "Kubernetes Pods in one Rust binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (with its embedded store) for kubectl and the other Peapod components.
    Server(Box<ServerArgs>),
    /// Print the admin kubeconfig of a server's data dir.
    Kubeconfig {
        #[arg(long, default_value = "/var/lib/peapod")]
        data_dir: PathBuf,
    },
    /// Manage the node's images: load, import, pull, ls, rm, inspect, prune.
    Image(image_cmd::ImageArgs),
    /// Run a benchmark and print its figures.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where the store, credentials and kubeconfig live.
    #[arg(long, default_value = "/var/lib/peapod")]
    data_dir: PathBuf,
    /// Address to serve the Kubernetes API on (HTTPS only).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// `sqlite` (embedded, default) or `etcd://host:port[,host:port…]`.
    #[arg(long, default_value = "sqlite")]
    datastore: String,
    /// Do not start the local node agent.
    #[arg(long)]
    disable_agent: bool,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// This node's address (default: the source address of the host's default route).
    #[arg(long)]
    node_ip: Option<std::net::Ipv4Addr>,
    /// The OCI runtime that runs containers (`runc`; `crun` where the host's cgroups suit it).
    #[arg(long, default_value = "runc")]
    oci_runtime: String,
    /// Let Pods reach addresses outside the Pod and Service ranges (as Kubernetes does). `false` drops such
    /// traffic at the node: no packet of a Pod leaves the machine.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pod_egress: bool,
    /// Registry mirrors, credentials and TLS, in k3s' registries.yaml format.
    #[arg(long)]
    registry_config: Option<PathBuf>,
    /// Registries reached over plain HTTP (host:port), besides mirror endpoints given as http://.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Every Pod's addresses (not masqueraded between nodes).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// This node's Pod range (default: the first /24 of --cluster-cidr).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The Service range.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// The cluster DNS address written into Pods' resolv.conf.
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: std::net::Ipv4Addr,
    /// The node bridge Pods attach to.
    #[arg(long, default_value = "peapod0")]
    bridge: String,
    /// Shims and the OCI runtime's state.
    #[arg(long, default_value = "/run/peapod")]
    run_dir: PathBuf,
    /// Container logs (CRI format), as the kubelet keeps them.
    #[arg(long, default_value = "/var/log/pods")]
    pod_log_dir: PathBuf,
    /// The port of the node server the API server proxies logs to (the kubelet's 10250; 0 picks a free one).
    #[arg(long, default_value_t = 10250)]
    node_port: u16,
    /// `pids.max` of each container; 0 = unlimited.
    #[arg(long, default_value_t = 4096)]
    pids_limit: i64,
    /// The cgroup Pods are placed under.
    #[arg(long, default_value = "peapod")]
    cgroup_parent: String,
    /// Revisions of history kept for watches; older resourceVersions answer 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    keep_revisions: i64,
    /// Seconds between compactions of the store's history.
    #[arg(long, default_value_t = 300)]
    compaction_interval_seconds: u64,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEAPOD_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run_server(args: ServerArgs) -> Result<()> {
    let store: Arc<dyn peapod_store::Store> = match args.datastore.as_str() {
        "sqlite" => {
            std::fs::create_dir_all(&args.data_dir).with_context(|| format!("create {}", args.data_dir.display()))?;
            let path = args.data_dir.join("state.db");
            Arc::new(
                peapod_store::sqlite::SqliteStore::open(&path)
                    .with_context(|| format!("open store {}", path.display()))?,
            )
        }
        other if other.starts_with("etcd://") => {
            bail!("--datastore {other}: the etcd backend is not built yet (issue 10); use sqlite")
        }
        other => bail!("--datastore {other}: expected sqlite or etcd://host:port"),
    };
    let mut config = peapod_apiserver::Config::new(args.data_dir.clone(), args.listen);
    config.keep_revisions = args.keep_revisions;
    config.compaction_interval = std::time::Duration::from_secs(args.compaction_interval_seconds.max(1));
    let server = peapod_apiserver::start(config, store)
        .await
        .context("start the API server")?;
    let client_config =
        peapod_client::Config::from_kubeconfig(&server.kubeconfig).context("read the server's kubeconfig")?;
    let scheduler_client = peapod_client::Client::connect(&client_config)
        .await
        .context("connect the scheduler")?;
    tokio::spawn(async move {
        if let Err(e) = peapod_scheduler::run(scheduler_client).await {
            tracing::error!(error = %e, "scheduler stopped");
        }
    });
    if !args.disable_agent {
        let agent = agent_config(&args, &server)?;
        let client = peapod_client::Client::connect(&client_config)
            .await
            .context("connect the node agent")?;
        tokio::spawn(async move {
            if let Err(e) = peapod_node::run(agent, client).await {
                tracing::error!(error = %e, "node agent stopped");
            }
        });
    }
    // The line tests and scripts wait for; then how to point kubectl at the server.
    println!("Peapod API server ready at {}", server.url);
    println!("kubeconfig: {}", server.kubeconfig.display());
    println!("  export KUBECONFIG={}", server.kubeconfig.display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// The node agent's configuration from the server's flags.
fn agent_config(args: &ServerArgs, server: &peapod_apiserver::RunningServer) -> Result<peapod_node::AgentConfig> {
    let node_name = match &args.node_name {
        Some(n) => n.clone(),
        None => peapod_apiserver::pki::hostname()
            .context("read the host name")?
            .to_lowercase(),
    };
    let node_ip = args.node_ip.unwrap_or_else(peapod_node::agent::detect_node_ip);
    let cluster_cidr: peapod_network::Ipv4Net = args
        .cluster_cidr
        .parse()
        .with_context(|| format!("--cluster-cidr {}", args.cluster_cidr))?;
    let pod_cidr: peapod_network::Ipv4Net = match &args.pod_cidr {
        Some(c) => c.parse().with_context(|| format!("--pod-cidr {c}"))?,
        None => peapod_network::Ipv4Net::new(cluster_cidr.addr, 24.max(cluster_cidr.prefix))
            .with_context(|| format!("a /24 of --cluster-cidr {}", args.cluster_cidr))?,
    };
    let service_cidr: peapod_network::Ipv4Net = args
        .service_cidr
        .parse()
        .with_context(|| format!("--service-cidr {}", args.service_cidr))?;
    let registries = match &args.registry_config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            peapod_image::registry::RegistryConfig::parse(&text, &p.display().to_string())?
        }
        None => Default::default(),
    };
    let names = vec![node_name.clone(), node_ip.to_string(), "127.0.0.1".to_string()];
    let creds = server
        .node_credentials(&names)
        .context("issue the node server's certificate")?;
    Ok(peapod_node::AgentConfig {
        node_name,
        node_ip,
        data_dir: args.data_dir.clone(),
        run_dir: args.run_dir.clone(),
        pod_log_dir: args.pod_log_dir.clone(),
        oci_runtime: args.oci_runtime.clone(),
        exe: std::env::current_exe().context("find this binary")?,
        network: peapod_network::NetworkConfig {
            bridge: args.bridge.clone(),
            pod_cidr,
            cluster_cidr,
            service_cidr,
            egress: args.pod_egress,
            state_dir: args.data_dir.join("network"),
        },
        registries,
        insecure_registries: args.insecure_registries.clone(),
        cluster_dns: args.cluster_dns,
        cluster_domain: "cluster.local".into(),
        cgroup_parent: args.cgroup_parent.clone(),
        pids_limit: Some(args.pids_limit).filter(|p| *p > 0),
        server_listen: std::net::SocketAddr::new(node_ip.into(), args.node_port),
        server_cert_pem: creds.serving_cert_pem,
        server_key_pem: creds.serving_key_pem,
        client_ca_pem: creds.ca_pem,
        max_pods: 110,
    })
}

fn main() -> Result<()> {
    // `peapod shim …` (internal, started by the agent) is dispatched before anything else: it must start before any
    // thread exists (it forks and unshares namespaces), and everything this process touches before its fork stays
    // in every shim's memory, so not even the CLI parser runs.
    let mut argv = std::env::args_os().skip(1);
    if argv.next().as_deref() == Some(std::ffi::OsStr::new("shim")) {
        match peapod_runtime::ShimArgs::parse(argv) {
            Ok(args) => std::process::exit(peapod_runtime::shim::main(args)),
            Err(e) => {
                eprintln!("peapod shim: {e}");
                std::process::exit(2);
            }
        }
    }
    let cli = Cli::parse();
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(run_server(*args)),
        Command::Kubeconfig { data_dir } => {
            let path = data_dir.join("kubeconfig.yaml");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "read {} (has `peapod server --data-dir {}` run?)",
                    path.display(),
                    data_dir.display()
                )
            })?;
            print!("{text}");
            Ok(())
        }
        Command::Image(args) => rt.block_on(image_cmd::run(args)),
        Command::Bench { which } => rt.block_on(bench::run(which)),
    }
}
