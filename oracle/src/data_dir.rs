//! The oracle's data directory:
//!
//! ```text
//! DIR/
//!   oracle.key     ed25519 seed, hex (mode 0600): the identity the oracle audits with
//!   admin.token    bearer token for admin calls such as closing an epoch (mode 0600)
//!   config.toml    see config.example.toml
//!   oracle.db      SQLite database (unless database_url names PostgreSQL)
//!   batches/       published epoch batches, epoch-NNNNNNNN.batch
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use dsi_protocol::SecretKey;

use crate::config::{Config, EXAMPLE_TOML};

/// An oracle's data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// `$XDG_DATA_HOME/dsi/oracle` (usually `~/.local/share/dsi/oracle`).
    pub fn default_path() -> PathBuf {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("dsi")
            .join("oracle")
    }

    /// Wraps a path.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where batches are published.
    pub fn batches(&self) -> PathBuf {
        self.path.join("batches")
    }

    /// The SQLite URL of the default database.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.path.join("oracle.db").display())
    }

    /// Creates the directory, key, admin token and config unless present. Returns whether
    /// anything was created.
    pub fn init(&self) -> anyhow::Result<bool> {
        fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create data directory {}", self.path.display()))?;
        fs::create_dir_all(self.batches())
            .with_context(|| format!("cannot create {}", self.batches().display()))?;
        let mut created = false;
        let key = self.path.join("oracle.key");
        if !key.exists() {
            let secret = SecretKey::generate(&mut rand::rngs::OsRng);
            write_secret(&key, &hex::encode(secret.seed()))?;
            created = true;
        }
        let token = self.path.join("admin.token");
        if !token.exists() {
            let bytes: [u8; 32] = rand::random();
            write_secret(&token, &hex::encode(bytes))?;
            created = true;
        }
        let config = self.path.join("config.toml");
        if !config.exists() {
            fs::write(&config, EXAMPLE_TOML)
                .with_context(|| format!("cannot write {}", config.display()))?;
            created = true;
        }
        Ok(created)
    }

    fn read_secret(&self, name: &str) -> anyhow::Result<String> {
        let path = self.path.join(name);
        let metadata = fs::metadata(&path).with_context(|| {
            format!(
                "cannot read {} (run `oracle --data-dir {} init` first)",
                path.display(),
                self.path.display()
            )
        })?;
        if metadata.permissions().mode() & 0o077 != 0 {
            bail!(
                "{} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(text.trim().to_string())
    }

    /// The oracle's key.
    pub fn key(&self) -> anyhow::Result<SecretKey> {
        let text = self.read_secret("oracle.key")?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&text, &mut seed).with_context(|| {
            format!(
                "{} is not a hex key",
                self.path.join("oracle.key").display()
            )
        })?;
        Ok(SecretKey::from_seed(&seed))
    }

    /// The admin token.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        self.read_secret("admin.token")
    }

    /// The configuration (defaults, config.toml, environment).
    pub fn config(&self) -> anyhow::Result<Config> {
        let path = self.path.join("config.toml");
        Config::load(&path)
            .map_err(|e| anyhow::anyhow!("invalid configuration in {}: {e}", path.display()))
    }
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set permissions of {}", path.display()))
}
