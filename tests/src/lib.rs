//! Harness for end-to-end tests: real `node-lite` processes on loopback, each in its own
//! temporary data directory, killed when the test ends.
//!
//! The processes are `devnet::harness` services, the binaries are built by
//! `devnet::harness::cargo_bin` (same profile as the test), and the oracle is spoken to with
//! the typed `dsi_service::OracleClient`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use devnet::harness::{Service, cargo_bin};
use dsi_protocol::{NetworkId, SignedReceipt};
use dsi_service::OracleClient;

pub mod scenarios;
pub use scenarios::{
    TestRelay, downloads_survive_killed_peers, peer, start_relay, start_relay_with,
};

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

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_path_buf()
}

/// Whether a test on a real chain can run. With `DSI_REQUIRE_CHAIN=1` (as `scripts/test`
/// sets it) it must: the contracts have to be built (`scripts/deploy --build-only`) and
/// `ink-node` on PATH. Without it the test says how to run it and is skipped.
pub fn chain_ready(test: &str) -> bool {
    let built = repo()
        .join("contracts/bundles/reward_pool.contract")
        .exists();
    let required = std::env::var("DSI_REQUIRE_CHAIN").as_deref() == Ok("1");
    if required {
        assert!(
            built,
            "DSI_REQUIRE_CHAIN=1 but contracts/bundles is missing (scripts/deploy --build-only)"
        );
    } else {
        eprintln!(
            "skipped: {test} runs with DSI_REQUIRE_CHAIN=1 (scripts/test), ink-node on PATH and \
             the contracts built"
        );
    }
    required
}

/// What a `devnet::Network` runs: the freshly built binaries, `ink-node` from PATH, this
/// repository's `scripts/deploy` and built contracts.
pub fn network_tools() -> devnet::Tools {
    devnet::Tools {
        node_lite: node_lite_bin().to_path_buf(),
        oracle: oracle_bin().to_path_buf(),
        ink_node: "ink-node".into(),
        repo: repo(),
    }
}

/// Path of a freshly built `node-lite` binary.
pub fn node_lite_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        cargo_bin("node-lite", "node-lite").unwrap_or_else(|e| panic!("building node-lite: {e:#}"))
    })
}

/// `node-lite init` in `dir`, then `edit` on its configuration, saved as `config.toml`.
pub fn init_node(dir: &Path, edit: impl FnOnce(&mut node_lite::Config)) {
    devnet::harness::init_node(node_lite_bin(), dir, &dir.with_extension("log"), edit)
        .expect("node-lite init and the configuration save");
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

/// A `node-lite serve` process (a [`Service`]). Killed (SIGKILL) when dropped.
pub struct Seeder {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its base URL (`http://127.0.0.1:PORT/`, or the address given with `--listen`).
    pub url: String,
    service: Service,
}

impl Seeder {
    /// Initializes `data_dir` if needed and starts serving on a free loopback port (on
    /// 127.0.0.1 unless `args` has its own `--listen`) with the extra `serve` flags `args`.
    pub fn start(data_dir: &Path, args: &[&str]) -> Result<Self> {
        Self::start_command(data_dir, "serve", args)
    }

    /// Like [`Seeder::start`] for `node-lite gateway` (the gateway's `args`).
    pub fn gateway(data_dir: &Path, args: &[&str]) -> Result<Self> {
        Self::start_command(data_dir, "gateway", args)
    }

    fn start_command(data_dir: &Path, subcommand: &str, args: &[&str]) -> Result<Self> {
        node_lite_ok(data_dir, &["init"]);
        let mut command: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            subcommand.into(),
        ];
        if !args.contains(&"--listen") {
            command.extend(["--listen".into(), "127.0.0.1:0".into()]);
        }
        command.extend(args.iter().map(|a| a.to_string()));
        let service = Service::spawn(
            "node-lite",
            node_lite_bin(),
            &command,
            &[],
            &data_dir.join(format!("{subcommand}.log")),
        )?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            url: format!("{}/", service.url),
            service,
        })
    }

    /// Kills the process with SIGKILL (no chance to clean up).
    pub fn kill(&mut self) {
        self.service.kill();
    }

    /// Starts the process again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.service.restart()
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
        let held: Vec<node_lite::receipts::HeldReceipt> =
            serde_json::from_str(&json).expect("receipts --json lists held receipts");
        held.into_iter()
            .map(|held| {
                held.receipt
                    .verify(&NetworkId::default())
                    .expect("every held receipt has a valid signature");
                held.receipt
            })
            .collect()
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

/// `len` bytes from a seeded generator: the same for the same seed.
pub fn seeded_bytes(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Polls `check` every 200 ms until it gives a value; panics after 60 s naming `what`.
pub async fn poll<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
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
        cargo_bin("oracle", "oracle").unwrap_or_else(|e| panic!("building oracle: {e:#}"))
    })
}

/// An `oracle serve` process with its own data directory (a [`Service`]). Killed (SIGKILL)
/// when dropped.
pub struct OracleProcess {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its base URL (`http://127.0.0.1:PORT`, no trailing slash).
    pub url: String,
    /// Its API.
    pub client: OracleClient,
    service: Service,
}

fn owned_env(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl OracleProcess {
    /// Initializes `data_dir` and starts serving on a free loopback port. `env` sets
    /// configuration (`DSI_ORACLE_CLOSE__AUTO=false`, ...).
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let dir = data_dir.to_str().context("a UTF-8 path")?;
        std::fs::create_dir_all(data_dir)?;
        devnet::harness::run(
            oracle_bin(),
            &["--data-dir", dir, "init"],
            &data_dir.join("init.log"),
        )?;
        let args: Vec<String> = ["--data-dir", dir, "serve", "--listen", "127.0.0.1:0"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        // The seeders of these tests listen on loopback: let the auditor reach them.
        let mut env = env.to_vec();
        if !env
            .iter()
            .any(|(k, _)| *k == "DSI_ORACLE_AUDIT__ALLOW_PRIVATE_ADDRESSES")
        {
            env.push(("DSI_ORACLE_AUDIT__ALLOW_PRIVATE_ADDRESSES", "true"));
        }
        let service = Service::spawn(
            "oracle",
            oracle_bin(),
            &args,
            &owned_env(&env),
            &data_dir.join("serve.log"),
        )?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            url: service.url.clone(),
            client: OracleClient::new(&service.url)?,
            service,
        })
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        self.service.kill();
    }

    /// Starts the process again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.service.restart()
    }

    /// Whether the process has exited on its own.
    pub fn exited(&mut self) -> bool {
        !self.service.running()
    }

    /// Starts the process again on the same port with other environment variables.
    pub fn restart_with_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        self.service.restart_with_env(&owned_env(env))
    }

    /// The admin token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    /// Sponsors `content`'s storage (one token per epoch for 1000 epochs, 3 replicas)
    /// through the admin API.
    pub async fn sponsor(&self, content: &dsi_protocol::ContentId) {
        let request = dsi_api::oracle::SponsorRequest {
            content: *content,
            per_epoch: 1_000_000_000_000,
            epochs: 1_000,
            replicas: 3,
            first_epoch: None,
        };
        self.client
            .sponsor(&self.admin_token(), &request)
            .await
            .expect("sponsor");
    }

    /// The SQLite database URL.
    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.data_dir.join("oracle.db").display())
    }
}
