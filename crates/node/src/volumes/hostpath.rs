//! hostPath volumes: kubelet's `type` check (`pkg/volume/hostpath`, `checkTypeInternal`), creating the path for the
//! `…OrCreate` types. The path itself is the volume; nothing of it is ever removed by teardown.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a hostPath failed its type check, in kubelet's words.
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    /// `hostPath type check failed: /x is not a directory` (and `a file`, `a socket file`, …).
    #[error("hostPath type check failed: {path} is not {expected}")]
    WrongType { path: String, expected: &'static str },
    #[error("{0} is an invalid volume type")]
    InvalidType(String),
    #[error("failed to create {path}: {source}")]
    Create {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Checks (and for `DirectoryOrCreate`/`FileOrCreate` creates) `path` against the volume's `type`. Like kubelet,
/// the check follows symlinks: the user named this host path on purpose.
pub fn check_type(path: &Path, host_path_type: Option<&str>) -> Result<(), HostPathError> {
    let shown = path.display().to_string();
    let wrong = |expected| HostPathError::WrongType {
        path: shown.clone(),
        expected,
    };
    let meta = std::fs::metadata(path).ok();
    let t = meta.as_ref().map(|m| m.file_type());
    match host_path_type.unwrap_or("") {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => {
            // 0755 as kubelet's MakeDir; parents too.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(|source| HostPathError::Create {
                    path: shown.clone(),
                    source,
                })
        }
        "DirectoryOrCreate" | "Directory" => t.filter(|t| t.is_dir()).map(|_| ()).ok_or_else(|| wrong("a directory")),
        "FileOrCreate" if meta.is_none() => {
            // 0644 as kubelet's MakeFile; parents are not created (documented Kubernetes behaviour).
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map(drop)
                .map_err(|source| HostPathError::Create {
                    path: shown.clone(),
                    source,
                })
        }
        "FileOrCreate" | "File" => t.filter(|t| t.is_file()).map(|_| ()).ok_or_else(|| wrong("a file")),
        "Socket" => t
            .filter(|t| t.is_socket())
            .map(|_| ())
            .ok_or_else(|| wrong("a socket file")),
        "CharDevice" => t
            .filter(|t| t.is_char_device())
            .map(|_| ())
            .ok_or_else(|| wrong("a character device")),
        "BlockDevice" => t
            .filter(|t| t.is_block_device())
            .map(|_| ())
            .ok_or_else(|| wrong("a block device")),
        other => Err(HostPathError::InvalidType(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_checked_in_kubelets_words() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = d.join("f");
        std::fs::write(&file, "x").unwrap();
        let msg = |p: &Path, t: &str| check_type(p, Some(t)).unwrap_err().to_string();

        check_type(d, Some("Directory")).unwrap();
        check_type(&file, Some("File")).unwrap();
        check_type(&d.join("absent"), None).unwrap();
        assert_eq!(
            msg(&file, "Directory"),
            format!("hostPath type check failed: {} is not a directory", file.display())
        );
        assert_eq!(
            msg(d, "File"),
            format!("hostPath type check failed: {} is not a file", d.display())
        );
        assert_eq!(
            msg(&d.join("absent"), "Directory"),
            format!("hostPath type check failed: {}/absent is not a directory", d.display())
        );
        assert_eq!(
            msg(&file, "Socket"),
            format!("hostPath type check failed: {} is not a socket file", file.display())
        );
        assert_eq!(
            msg(&file, "CharDevice"),
            format!(
                "hostPath type check failed: {} is not a character device",
                file.display()
            )
        );
        assert_eq!(
            msg(&file, "BlockDevice"),
            format!("hostPath type check failed: {} is not a block device", file.display())
        );
        check_type(Path::new("/dev/null"), Some("CharDevice")).unwrap();
        assert_eq!(msg(d, "Weird"), "Weird is an invalid volume type");

        let made = d.join("new/deeper");
        check_type(&made, Some("DirectoryOrCreate")).unwrap();
        assert!(made.is_dir());
        check_type(&made, Some("DirectoryOrCreate")).unwrap();
        let made_file = d.join("new/file");
        check_type(&made_file, Some("FileOrCreate")).unwrap();
        assert!(made_file.is_file());
        assert!(check_type(&d.join("nodir/file"), Some("FileOrCreate")).is_err());
        assert_eq!(
            msg(&made_file, "DirectoryOrCreate"),
            format!("hostPath type check failed: {} is not a directory", made_file.display())
        );

        let sock = d.join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        check_type(&sock, Some("Socket")).unwrap();
    }
}
