//! Harness for end-to-end tests: real `node-lite` processes on loopback, each in its own
//! temporary data directory, killed when the test ends.
//!
//! The binary is built by asking cargo (`cargo build -p node-lite --bin node-lite`, same
//! profile as the test) and located from cargo's JSON messages, so a test never runs a
//! stale binary and never guesses the target directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dsi_protocol::{NetworkId, SignedReceipt};

/// The all-MiniLM-L6-v2 model directory (`DSI_MODEL_DIR`, else what `scripts/setup --model`
/// unpacked into target/models/), or None after saying why when it is missing. With
/// `DSI_REQUIRE_MODEL` set (as `scripts/test` does) a missing model fails the test instead.
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DSI_MODEL_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/models/all-MiniLM-L6-v2"),
        PathBuf::from,
    );
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("DSI_REQUIRE_MODEL").is_none(),
        "no model in {} (DSI_REQUIRE_MODEL is set): run scripts/setup --model",
        dir.display()
    );
    eprintln!(
        "skipped: no model in {} (scripts/setup --model)",
        dir.display()
    );
    None
}

/// `node-lite vectors build --text-file CORPUS --model MODEL --lists N --json` in `dir`:
/// the build report (index id, `texts_content_id`, counts).
pub fn build_text_index(dir: &Path, corpus: &Path, model: &str, lists: usize) -> serde_json::Value {
    let corpus = corpus.to_str().expect("UTF-8 path");
    let lists = lists.to_string();
    let args = [
        "vectors",
        "build",
        "--text-file",
        corpus,
        "--model",
        model,
        "--lists",
        &lists,
        "--json",
    ];
    serde_json::from_str(&node_lite_ok(dir, &args)).expect("build --json prints JSON")
}

/// Path of a freshly built `node-lite` binary.
pub fn node_lite_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        build_bin("node-lite", "node-lite").unwrap_or_else(|e| panic!("building node-lite: {e:#}"))
    })
}

fn build_bin(package: &str, bin: &str) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let release = std::env::current_exe()?
        .components()
        .any(|c| c.as_os_str() == "release");
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "--message-format=json",
        "-p",
        package,
        "--bin",
        bin,
    ]);
    if release {
        command.arg("--release");
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build -p {package} failed");
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == bin
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo did not report an executable for {bin}")
}

/// Runs `node-lite --data-dir DIR ARGS...` to completion.
pub fn node_lite(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(node_lite_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("DSI_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("running node-lite {args:?}: {e}"))
}

/// Like [`node_lite`] but fails with the output unless it exits 0; returns stdout.
pub fn node_lite_ok(data_dir: &Path, args: &[&str]) -> String {
    let output = node_lite(data_dir, args);
    assert!(
        output.status.success(),
        "node-lite {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A `node-lite serve` process. Killed (SIGKILL) when dropped.
pub struct Seeder {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its base URL (`http://127.0.0.1:PORT/`).
    pub url: String,
    /// Extra `serve` flags it was started with.
    args: Vec<String>,
    child: Option<Child>,
}

impl Seeder {
    /// Initializes `data_dir` if needed and starts serving on a free loopback port.
    pub fn start(data_dir: &Path, args: &[&str]) -> Result<Self> {
        node_lite_ok(data_dir, &["init"]);
        let mut seeder = Self {
            data_dir: data_dir.to_path_buf(),
            url: String::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        seeder.spawn("127.0.0.1:0")?;
        Ok(seeder)
    }

    fn spawn(&mut self, listen: &str) -> Result<()> {
        let log = std::fs::File::create(self.data_dir.join("serve.log"))?;
        let mut child = Command::new(node_lite_bin())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["serve", "--listen", listen])
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting node-lite serve")?;
        let stdout = child.stdout.take().context("serve stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .context("serve printed no address")?;
        let address = line.trim().rsplit(' ').next().unwrap_or_default();
        if !address.starts_with("http://") {
            let _ = child.kill();
            bail!("unexpected first line from serve: {line:?}");
        }
        self.url = format!("{address}/");
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL (no chance to clean up).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let listen = self
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(&listen) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// One sample from its `/metrics`.
    pub async fn metric(&self, name: &str) -> Result<u64> {
        let text = reqwest::get(format!("{}metrics", self.url))
            .await?
            .text()
            .await?;
        node_lite::server::metrics::sample(&text, name)
            .with_context(|| format!("metric {name} missing"))
    }

    /// The receipts it holds (read with `node-lite receipts --json`), each checked to carry
    /// a valid signature for the local network.
    pub fn receipts(&self) -> Vec<SignedReceipt> {
        let json = node_lite_ok(&self.data_dir, &["receipts", "--json"]);
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&json).expect("receipts --json is JSON");
        rows.into_iter()
            .map(|row| {
                let receipt: SignedReceipt = serde_json::from_value(row).expect("a receipt");
                receipt
                    .verify(&NetworkId::default())
                    .expect("every held receipt has a valid signature");
                receipt
            })
            .collect()
    }
}

impl Drop for Seeder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `len` random bytes to `path` and returns their SHA-256 (hex).
pub fn random_file(path: &Path, len: usize) -> String {
    use rand::RngCore;
    use sha2::Digest;
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    std::fs::write(path, &bytes).expect("writing the test file");
    hex::encode(sha2::Sha256::digest(&bytes))
}

/// SHA-256 of a file (hex).
pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        std::fs::read(path).expect("reading a file to hash"),
    ))
}

/// Path of a freshly built `oracle` binary.
pub fn oracle_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        build_bin("oracle", "oracle").unwrap_or_else(|e| panic!("building oracle: {e:#}"))
    })
}

/// An `oracle serve` process with its own data directory. Killed (SIGKILL) when dropped.
pub struct OracleProcess {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its base URL (`http://127.0.0.1:PORT`, no trailing slash).
    pub url: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl OracleProcess {
    /// Initializes `data_dir` and starts serving on a free loopback port. `env` sets
    /// configuration (`DSI_ORACLE_CLOSE__AUTO=false`, ...).
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let init = Command::new(oracle_bin())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("init")
            .output()
            .context("oracle init")?;
        if !init.status.success() {
            bail!(
                "oracle init failed: {}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        let mut oracle = Self {
            data_dir: data_dir.to_path_buf(),
            url: String::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        oracle.spawn("127.0.0.1:0")?;
        Ok(oracle)
    }

    fn spawn(&mut self, listen: &str) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("serve.log"))?;
        let mut child = Command::new(oracle_bin())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["serve", "--listen", listen])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting oracle serve")?;
        let stdout = child.stdout.take().context("serve stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .context("oracle printed no address")?;
        let address = line.trim().rsplit(' ').next().unwrap_or_default();
        if !address.starts_with("http://") {
            let _ = child.kill();
            bail!("unexpected first line from oracle serve: {line:?}");
        }
        self.url = address.to_string();
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let listen = self.url.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(&listen) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Whether the process has exited on its own.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| child.try_wait().ok().flatten().is_some())
    }

    /// Starts the process again on the same port with other environment variables.
    pub fn restart_with_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.restart()
    }

    /// The admin token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    /// The SQLite database URL.
    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.data_dir.join("oracle.db").display())
    }
}

impl Drop for OracleProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
