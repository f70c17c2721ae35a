//! A netlink connection inside another network namespace, without forking: a short-lived thread enters the
//! namespace (`setns`), opens the netlink socket there (a socket stays bound to the namespace it was created in),
//! hands it back and exits. The connection is then driven on the caller's tokio runtime like any other.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rtnetlink::Handle;
use rustix::thread::LinkNameSpaceType;
use tokio::task::JoinHandle;

use crate::error::NetworkError;

/// A netlink handle whose socket lives in some network namespace, plus the task driving it. Dropping it stops the
/// task (and closes the socket).
#[derive(Debug)]
pub struct NetlinkConnection {
    pub handle: Handle,
    task: JoinHandle<()>,
}

impl Drop for NetlinkConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NetlinkConnection {
    /// A connection in the caller's own network namespace.
    pub fn current() -> Result<Self, NetworkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|source| NetworkError::Netns {
            path: PathBuf::from("/proc/self/ns/net"),
            op: "open netlink socket",
            source,
        })?;
        Ok(NetlinkConnection {
            handle,
            task: tokio::spawn(connection),
        })
    }

    /// A connection inside the namespace `netns` (an open `/run/netns/<name>`-style file).
    pub async fn in_namespace(netns: &File, path: &Path) -> Result<Self, NetworkError> {
        let err = |op, source| NetworkError::Netns {
            path: path.to_path_buf(),
            op,
            source,
        };
        // The thread gets its own descriptor so the caller keeps `netns` for moving links into it.
        let fd = netns.try_clone().map_err(|e| err("duplicate descriptor", e))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| err("find the tokio runtime", std::io::Error::other(e.to_string())))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("peapod-netns".into())
            .spawn(move || {
                let result = rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(|e| ("enter namespace", std::io::Error::from(e)))
                    .and_then(|()| {
                        // The socket registers with the runtime's reactor when created, so the runtime must be
                        // current on this thread; the thread's namespace (not the runtime's) is what the socket
                        // binds to.
                        let _entered = runtime.enter();
                        rtnetlink::new_connection().map_err(|e| ("open netlink socket", e))
                    });
                // The receiver may be gone if the caller was cancelled; nothing to do then.
                let _ = tx.send(result);
                // The thread ends here, and its namespace change with it.
            })
            .map_err(|e| err("spawn namespace thread", e))?;
        let (connection, handle, _) = rx
            .await
            .map_err(|_| err("namespace thread", std::io::Error::other("exited without answering")))?
            .map_err(|(op, e)| err(op, e))?;
        Ok(NetlinkConnection {
            handle,
            task: tokio::spawn(connection),
        })
    }
}

/// Opens a network namespace file (read-only, close-on-exec: the descriptor must not leak into the nft child).
pub fn open_netns(path: &Path) -> Result<File, NetworkError> {
    File::open(path).map_err(|source| NetworkError::Netns {
        path: path.to_path_buf(),
        op: "open",
        source,
    })
}
