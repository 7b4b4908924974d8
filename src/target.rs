//! Which host omlboot works on: the live one it runs on, or a file tree (a fixture, an image being
//! built) where only files are read and written. Said once, instead of comparing a root with "/".
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The running host: commands such as sysctl and timedatectl act on it.
    Live,
    /// A tree under this directory: files only, nothing that would change the running host.
    Offline(PathBuf),
}

impl Target {
    /// `/` is the live host; any other root is an offline tree.
    pub fn from_root(root: &Path) -> Target {
        if root == Path::new("/") {
            Target::Live
        } else {
            Target::Offline(root.to_path_buf())
        }
    }

    pub fn root(&self) -> &Path {
        match self {
            Target::Live => Path::new("/"),
            Target::Offline(root) => root,
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, Target::Live)
    }

    /// An absolute host path inside this target.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.root().join(host_path.trim_start_matches('/'))
    }
}
