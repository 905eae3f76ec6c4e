//! The process harness: real DSI programs as child processes on loopback, for the devnet
//! and for the end-to-end tests (`tests/`), in one place.
//!
//! - [`Service`]: a long-running program (`node-lite serve`, `oracle serve`) whose first
//!   line of output ends with the URL it listens on; stderr goes to a log file; killed when
//!   dropped; restartable on the same address.
//! - [`InkNode`]: a throwaway `ink-node --tmp` with RPC and p2p on loopback.
//! - [`run`]: a command run to completion, logged, failing with its stderr.
//! - [`cargo_bin`]: a binary of this workspace, built by cargo in the caller's profile.
//!
//! Configuration files are written from the programs' typed `Config` structs
//! (`node_lite::Config::save`, `oracle::Config::save`), never edited as text.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// A child process with a log file, killed when dropped.
#[derive(Debug)]
pub struct Service {
    /// A short name (`oracle`, `seeder-a`).
    pub name: String,
    /// Its URL (`http://127.0.0.1:PORT`, no trailing slash).
    pub url: String,
    /// Its log file (stderr, appended across restarts).
    pub log: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Service {
    /// Spawns `program args...` with `env` set, stderr appended to `log`, and waits (60 s at
    /// most) for its first line on stdout, whose last word is the URL it listens on. To be
    /// restartable on the same address, `args` should hold `--listen ADDR`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Self> {
        let mut service = Self {
            name: name.to_string(),
            url: String::new(),
            log: log.to_path_buf(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            env: env.to_vec(),
            child: None,
        };
        service.start()?;
        Ok(service)
    }

    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} ({})", self.name, self.program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).ok();
        let url = line
            .as_deref()
            .and_then(|l| l.split_whitespace().last())
            .filter(|w| w.starts_with("http://"))
            .map(|w| w.trim_end_matches('/').to_string());
        let Some(url) = url else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} did not start (first line {:?}); see {}",
                self.name,
                line.unwrap_or_default(),
                self.log.display()
            );
        };
        self.url = url;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL (nothing is flushed).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the address it had (after [`Service::kill`], or killing
    /// it now).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let address = self.url.trim_start_matches("http://").to_string();
        if let Some(at) = self.args.iter().position(|a| a == "--listen")
            && let Some(value) = self.args.get_mut(at + 1)
        {
            *value = address;
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.start() {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() > deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Restarts with other environment variables.
    pub fn restart_with_env(&mut self, env: &[(String, String)]) -> Result<()> {
        self.env = env.to_vec();
        self.restart()
    }

    /// Whether the process is running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The throwaway chain: `ink-node --tmp` on loopback.
#[derive(Debug)]
pub struct InkNode {
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    /// Its log.
    pub log: PathBuf,
    child: Child,
}

impl InkNode {
    /// Starts `ink-node` with a temporary base path, RPC and p2p on loopback, and waits
    /// (60 s at most) until its RPC server runs.
    pub fn start(program: &Path, log: &Path) -> Result<Self> {
        Self::start_with(program, log, None, None)
    }

    /// Starts `ink-node` keeping its chain in `base` (`None`: a temporary one) with RPC on
    /// `rpc_port` (`None`: a free one). A node restarted on the same base and port goes on
    /// with the same chain at the same URL.
    pub fn start_with(
        program: &Path,
        log: &Path,
        base: Option<&Path>,
        rpc_port: Option<u16>,
    ) -> Result<Self> {
        let rpc = match rpc_port {
            Some(port) => port,
            None => free_port()?,
        };
        let p2p = free_port()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut command = Command::new(program);
        match base {
            Some(base) => command.arg("--base-path").arg(base),
            None => command.arg("--tmp"),
        };
        let child = command
            .args(["--rpc-port", &rpc.to_string()])
            .args(["--listen-addr", &format!("/ip4/127.0.0.1/tcp/{p2p}")])
            .args(["--no-prometheus", "--no-telemetry"])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {} (install it with scripts/setup --with-node)",
                    program.display()
                )
            })?;
        let mut node = Self {
            url: format!("ws://127.0.0.1:{rpc}"),
            log: log.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let seen = std::fs::read_to_string(log)
            .map(|t| t.matches("Running JSON-RPC server").count())
            .unwrap_or(0);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.matches("Running JSON-RPC server").count() > seen {
                return Ok(node);
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                bail!("ink-node exited ({status}); see {}", log.display());
            }
            ensure!(
                Instant::now() < deadline,
                "ink-node did not start within 60 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl InkNode {
    /// Kills the node at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The RPC port.
    pub fn rpc_port(&self) -> Option<u16> {
        self.url.rsplit(':').next()?.parse().ok()
    }
}

impl Drop for InkNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `program args...` to completion with `DSI_LOG=warn`, appending the command line and
/// its output to `log`; fails with its stderr unless it exits 0. Returns stdout.
pub fn run(program: &Path, args: &[&str], log: &Path) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .env("DSI_LOG", "warn")
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    writeln!(file, "$ {} {}", program.display(), args.join(" "))?;
    file.write_all(&output.stdout)?;
    file.write_all(&output.stderr)?;
    ensure!(
        output.status.success(),
        "{} {} failed ({}): {}",
        program.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `node-lite init` in `dir` (with `program`, logging to `log`), then `edit` on the node's
/// configuration, saved as its `config.toml`. Returns the node's id.
pub fn init_node(
    program: &Path,
    dir: &Path,
    log: &Path,
    edit: impl FnOnce(&mut node_lite::Config),
) -> Result<dsi_protocol::NodeId> {
    run(
        program,
        &["--data-dir", dir.to_str().context("a UTF-8 path")?, "init"],
        log,
    )?;
    let data_dir = node_lite::DataDir::new(dir);
    let mut config = data_dir.config()?;
    edit(&mut config);
    config.save(dir)?;
    Ok(data_dir.key()?.node_id())
}

/// A binary of this workspace, built now by `cargo build -p PACKAGE --bin BIN` in the
/// calling test's profile (release when the caller was built for release) and located from
/// cargo's JSON messages, so a test never runs a stale binary or guesses the target dir.
pub fn cargo_bin(package: &str, bin: &str) -> Result<PathBuf> {
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
    ensure!(output.status.success(), "cargo build -p {package} failed");
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        #[derive(serde::Deserialize)]
        struct Target {
            name: String,
        }
        #[derive(serde::Deserialize)]
        struct Message {
            reason: String,
            target: Option<Target>,
            executable: Option<PathBuf>,
        }
        let Ok(message) = serde_json::from_str::<Message>(line) else {
            continue;
        };
        if message.reason == "compiler-artifact"
            && message.target.is_some_and(|t| t.name == bin)
            && let Some(path) = message.executable
        {
            return Ok(path);
        }
    }
    bail!("cargo did not report an executable for {bin}")
}
