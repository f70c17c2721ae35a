//! `peapod image …`: the node's image store from the command line (load, import, pull, ls, rm, inspect, prune).
//! Works on `<data-dir>/images` directly, safely beside a running server (the store locks with flock).

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use peapod_image::registry::{DockerConfig, RegistryConfig};
use peapod_image::{ImageRef, ImageStore};

#[derive(clap::Args)]
pub struct ImageArgs {
    /// Peapod's data dir; images live in `<data-dir>/images`.
    #[arg(long, default_value = "/var/lib/peapod", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    cmd: ImageCmd,
}

#[derive(clap::Subcommand)]
enum ImageCmd {
    /// Load images from a `docker save` or OCI archive (plain, gzip or zstd); `-` reads stdin.
    Load {
        /// The archive (or use -i).
        file: Option<PathBuf>,
        #[arg(short = 'i', long = "input")]
        input: Option<PathBuf>,
    },
    /// Import a plain root filesystem tarball as a one-layer image.
    Import { file: PathBuf, name: String },
    /// Pull an image from its registry (or the mirrors `--registry-config` lists).
    Pull {
        reference: String,
        /// k3s-style registries.yaml: mirrors (endpoints; `http://` ones are plain HTTP) and per-host auth/TLS.
        #[arg(long)]
        registry_config: Option<PathBuf>,
        /// A registry (host:port) to reach over plain HTTP.
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        /// Docker config.json with credentials (default: $REGISTRY_AUTH_FILE, then ~/.docker/config.json).
        #[arg(long)]
        authfile: Option<PathBuf>,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images.
    #[command(alias = "list", alias = "images")]
    Ls {
        /// Only image IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove images by name or ID, then their unused content.
    #[command(alias = "rmi", alias = "remove")]
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show an image's details as JSON.
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove every blob and snapshot no image or container uses.
    Prune,
    /// Mount an image's root (overlay of its layers with a writable layer) at DIR/rootfs, for inspection.
    Mount { image: String, dir: PathBuf },
    /// Unmount what `mount` mounted at DIR and remove DIR's writable layer.
    Unmount { dir: PathBuf },
}

/// A file, or stdin for `-`.
fn open_input(path: &Path) -> Result<Box<dyn Read + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin()));
    }
    Ok(Box::new(
        std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?,
    ))
}

fn mount_lease(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!(
        "mount-{}",
        peapod_image::Digest::of(abs.as_os_str().as_encoded_bytes()).short()
    )
}

pub async fn run(args: ImageArgs) -> Result<()> {
    let root = args.data_dir.join("images");
    let store = ImageStore::open(&root).with_context(|| format!("open image store {}", root.display()))?;
    match args.cmd {
        ImageCmd::Load { file, input } => {
            let path = input
                .or(file)
                .ok_or_else(|| anyhow!("requires an archive file (or - for stdin)"))?;
            let store2 = store.clone();
            let loaded = tokio::task::spawn_blocking(move || -> Result<_> {
                let reader = open_input(&path)?;
                Ok(peapod_image::archive::load(&store2, reader)?)
            })
            .await??;
            for n in &loaded.names {
                if n.starts_with("sha256:") {
                    println!("Loaded image ID: {n}");
                } else {
                    println!("Loaded image: {n}");
                }
            }
        }
        ImageCmd::Import { file, name } => {
            let store2 = store.clone();
            let loaded = tokio::task::spawn_blocking(move || -> Result<_> {
                let reader = open_input(&file)?;
                Ok(peapod_image::archive::import(&store2, reader, &name)?)
            })
            .await??;
            for id in &loaded.ids {
                println!("{id}");
            }
        }
        ImageCmd::Pull {
            reference,
            registry_config,
            insecure,
            authfile,
            quiet,
        } => {
            let image = ImageRef::parse(&reference).map_err(|e| {
                anyhow!(
                    "{}",
                    peapod_image::reference::invalid_image_name_message(&reference, &e)
                )
            })?;
            let config = match registry_config {
                Some(p) => {
                    let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
                    RegistryConfig::parse(&text, &p.display().to_string())?
                }
                None => RegistryConfig::default(),
            };
            let authfile = authfile
                .or_else(|| std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from))
                .or_else(|| {
                    let p = PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json");
                    p.exists().then_some(p)
                });
            let docker = match authfile {
                Some(p) => {
                    let bytes = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
                    Some(DockerConfig::parse(&bytes, &p.display().to_string())?)
                }
                None => None,
            };
            let puller = Arc::new(
                peapod_image::pull::Puller::new(store, config)
                    .with_insecure(insecure)
                    .with_docker_config(docker),
            );
            let progress: Option<Arc<dyn peapod_image::pull::Progress>> = if quiet || !std::io::stderr().is_terminal() {
                None
            } else {
                Some(Arc::new(Bars::default()))
            };
            let start = Instant::now();
            let img = puller.pull(&image, &[], progress).await?;
            if !quiet {
                eprintln!("Pulled {} in {:.3}s", img.name, start.elapsed().as_secs_f64());
            }
            println!("Image is up to date for {}", img.id);
        }
        ImageCmd::Ls { quiet } => {
            let (images, broken) = store.list()?;
            if quiet {
                let mut seen = Vec::new();
                for i in &images {
                    if !seen.contains(&i.id) {
                        println!("{}", i.id.short());
                        seen.push(i.id.clone());
                    }
                }
            } else {
                let mut rows = vec![["REPOSITORY".to_string(), "TAG".into(), "IMAGE ID".into(), "SIZE".into()]];
                for i in &images {
                    let (repo, tag) = match ImageRef::parse(&i.name) {
                        Ok(r) => (r.name(), r.tag.unwrap_or_else(|| "<none>".into())),
                        Err(_) => ("<none>".to_string(), "<none>".to_string()),
                    };
                    rows.push([repo, tag, i.id.short().to_string(), human_size(i.size)]);
                }
                print_table(&rows);
            }
            for (name, err) in broken {
                eprintln!("warning: image {name} is unusable: {err}");
            }
        }
        ImageCmd::Rm { images } => {
            let mut failed = false;
            for name in images {
                let before = store.get(&name).ok().map(|i| i.id);
                match store.remove(&name) {
                    Ok(removed) => {
                        for r in removed {
                            println!("Untagged: {r}");
                        }
                        if let Some(id) = before {
                            if !store.list()?.0.iter().any(|i| i.id == id) {
                                println!("Deleted: {id}");
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some images could not be removed");
            }
        }
        ImageCmd::Inspect { images } => {
            let mut out = Vec::new();
            for name in images {
                let i = store.get(&name)?;
                let names: Vec<String> = store
                    .list()?
                    .0
                    .into_iter()
                    .filter(|x| x.id == i.id)
                    .map(|x| x.name)
                    .collect();
                out.push(serde_json::json!({
                    "Id": i.id.as_str(),
                    "RepoTags": names,
                    "RepoDigests": [i.repo_digest()],
                    "Created": i.config.created,
                    "Architecture": i.config.architecture,
                    "Os": i.config.os,
                    "Size": i.size,
                    "Config": i.config.config,
                    "ManifestDigest": i.manifest_digest.as_str(),
                    "RootFS": {
                        "Type": "layers",
                        "Layers": i.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
                    },
                    "Snapshots": i.layers.iter().map(|l| store.snapshot_fs(&l.chain_id)).collect::<Vec<_>>(),
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ImageCmd::Mount { image, dir } => {
            let img = store.get(&image)?;
            let root = peapod_image::rootfs::prepare(&store, &img, &dir, &mount_lease(&dir))?;
            println!("{}", root.rootfs.display());
        }
        ImageCmd::Unmount { dir } => {
            let root = peapod_image::rootfs::Rootfs {
                rootfs: dir.join("rootfs"),
                lease: mount_lease(&dir),
                dir,
            };
            peapod_image::rootfs::remove(&store, &root)?;
        }
        ImageCmd::Prune => {
            let r = store.gc()?;
            println!(
                "Deleted {} blobs and {} snapshots; reclaimed {}",
                r.blobs,
                r.snapshots,
                human_size(r.bytes)
            );
        }
    }
    Ok(())
}

/// go-units' `HumanSizeWithPrecision(size, 3)` as `docker image ls` prints it: decimal units, 3 significant digits.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // %.3g: three significant digits, no trailing zeros.
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

/// Columns padded to the widest cell plus three spaces, as docker's tabwriter does.
fn print_table(rows: &[[String; 4]]) {
    let mut w = [0usize; 4];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<width$}", width = w[i] + 3));
            }
        }
        println!("{line}");
    }
}

/// Per-layer progress bars on stderr.
#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<Vec<(String, ProgressBar)>>,
}

impl peapod_image::pull::Progress for Bars {
    fn layers(&self, layers: &[(String, u64, bool)]) {
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        if let Ok(mut bars) = self.bars.lock() {
            for (d, size, present) in layers {
                let b = self.multi.add(ProgressBar::new(*size));
                b.set_style(style.clone());
                b.set_prefix(d.trim_start_matches("sha256:").chars().take(12).collect::<String>());
                if *present {
                    b.set_position(*size);
                    b.finish_with_message("already exists");
                }
                bars.push((d.clone(), b));
            }
        }
    }

    fn bytes(&self, digest: &str, n: u64) {
        if let Ok(bars) = self.bars.lock() {
            if let Some((_, b)) = bars.iter().find(|(d, _)| d == digest) {
                b.inc(n);
            }
        }
    }

    fn done(&self, digest: &str) {
        if let Ok(bars) = self.bars.lock() {
            if let Some((_, b)) = bars.iter().find(|(d, _)| d == digest) {
                b.finish_with_message("done");
            }
        }
    }

    fn unpacking(&self) {
        let _ = self.multi.println("unpacking…");
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(141_500_000), "142MB");
        assert_eq!(human_size(68_857_691), "68.9MB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
    }
}
