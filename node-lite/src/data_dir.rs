//! The node's data directory:
//!
//! ```text
//! DIR/
//!   node.key        ed25519 seed, hex (mode 0600; refused if others can read it)
//!   config.toml     see `config::EXAMPLE_TOML`
//!   chunks/ab/<id>  chunk bytes, content-addressed (see `store`)
//!   manifests/      <content id>.manifest, canonical SCALE bytes
//!   quarantine/     chunks that failed verification
//!   receipts.db     seeding receipts this node holds (SQLite, see `receipts`)
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dsi_protocol::SecretKey;

use crate::{Config, NodeError};

/// File name of the node key inside the data directory.
pub const KEY_FILE: &str = "node.key";
/// File name of the config file inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";

/// A node's data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
}

/// What `init` did.
#[derive(Debug)]
pub struct InitOutcome {
    /// The node's key.
    pub key: SecretKey,
    /// Whether a new key was created (false: the directory was already initialized).
    pub created: bool,
}

impl DataDir {
    /// The default location: `$XDG_DATA_HOME/dsi/node-lite` (usually
    /// `~/.local/share/dsi/node-lite`).
    pub fn default_path() -> PathBuf {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("dsi")
            .join("node-lite")
    }

    /// Wraps a path without touching the file system.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the directory (mode 0700), a node key (mode 0600) and a commented config
    /// file, keeping any that already exist. Never overwrites a key.
    pub fn init(&self) -> Result<InitOutcome, NodeError> {
        let dir_error = |reason: String| NodeError::DataDir {
            path: self.path.clone(),
            reason,
        };
        if self.path.exists() && !self.path.is_dir() {
            return Err(dir_error("exists and is not a directory".into()));
        }
        fs::create_dir_all(&self.path).map_err(|e| dir_error(format!("cannot create: {e}")))?;
        let key_path = self.path.join(KEY_FILE);
        let created = if key_path.exists() {
            false
        } else {
            if let Ok(meta) = fs::metadata(&self.path) {
                let mut perms = meta.permissions();
                if perms.mode() & 0o077 != 0 {
                    perms.set_mode(0o700);
                    // Best effort: a directory we do not own keeps its mode.
                    let _ = fs::set_permissions(&self.path, perms);
                }
            }
            let key = SecretKey::generate(&mut rand::rngs::OsRng);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_path)
                .map_err(|e| dir_error(format!("cannot create {KEY_FILE}: {e}")))?;
            file.write_all(format!("{}\n", hex::encode(key.seed())).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| dir_error(format!("cannot write {KEY_FILE}: {e}")))?;
            true
        };
        let config_path = self.path.join(CONFIG_FILE);
        if !config_path.exists() {
            fs::write(&config_path, crate::config::EXAMPLE_TOML)
                .map_err(|e| dir_error(format!("cannot write {CONFIG_FILE}: {e}")))?;
        }
        Ok(InitOutcome {
            key: self.key()?,
            created,
        })
    }

    /// Checks the directory exists and is usable.
    pub fn check(&self) -> Result<(), NodeError> {
        let meta = fs::metadata(&self.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NodeError::NotInitialized {
                path: self.path.clone(),
            },
            _ => NodeError::DataDir {
                path: self.path.clone(),
                reason: format!("cannot read: {e}"),
            },
        })?;
        if !meta.is_dir() {
            return Err(NodeError::DataDir {
                path: self.path.clone(),
                reason: "is not a directory".into(),
            });
        }
        fs::read_dir(&self.path).map_err(|e| NodeError::DataDir {
            path: self.path.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        Ok(())
    }

    /// Loads the node key, refusing a key file that other users can read.
    pub fn key(&self) -> Result<SecretKey, NodeError> {
        self.check()?;
        let path = self.path.join(KEY_FILE);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NodeError::NotInitialized {
                    path: self.path.clone(),
                });
            }
            Err(e) => {
                return Err(NodeError::DataDir {
                    path: self.path.clone(),
                    reason: format!("cannot read {KEY_FILE}: {e}"),
                });
            }
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(NodeError::KeyPermissions { path, mode });
        }
        let text = fs::read_to_string(&path).map_err(|e| NodeError::DataDir {
            path: self.path.clone(),
            reason: format!("cannot read {KEY_FILE}: {e}"),
        })?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| NodeError::DataDir {
            path: self.path.clone(),
            reason: format!("{KEY_FILE} is not a 64-character hex ed25519 seed"),
        })?;
        Ok(SecretKey::from_seed(&seed))
    }

    /// Loads the configuration (file and environment over defaults).
    pub fn config(&self) -> Result<Config, NodeError> {
        Config::load(&self.path)
    }

    /// Path of the receipt database.
    pub fn receipts_db(&self) -> PathBuf {
        self.path.join("receipts.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_private_key_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("node"));
        assert!(matches!(dir.key(), Err(NodeError::NotInitialized { .. })));
        let first = dir.init().unwrap();
        assert!(first.created);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let second = dir.init().unwrap();
        assert!(!second.created);
        assert_eq!(first.key.node_id(), second.key.node_id());
        assert!(dir.path().join(CONFIG_FILE).exists());
    }

    #[test]
    fn readable_key_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        dir.init().unwrap();
        fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let err = dir.key().unwrap_err();
        assert!(
            matches!(err, NodeError::KeyPermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert_eq!(err.exit(), dsi_api::exit::Exit::DataDir);
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, b"x").unwrap();
        let dir = DataDir::new(&file);
        assert!(matches!(dir.init(), Err(NodeError::DataDir { .. })));
        assert!(matches!(dir.key(), Err(NodeError::DataDir { .. })));
    }
}
