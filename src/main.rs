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
    Server(ServerArgs),
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
    if !args.disable_agent {
        tracing::info!("no node agent yet: Pods stay Pending until a node joins");
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(run_server(args)),
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
