//! The chain client: reads the `multipliers` contract at epoch close, submits each closed
//! epoch's root and total to `reward_pool` and its reputation scores to `reputation`, and
//! claims for seeders.
//!
//! It drives `cargo contract` 6.0.0-alpha (the pinned tool `scripts/setup` installs, built
//! on `contract-extrinsics` of the same ink! set) rather than linking subxt: the tokio/sqlx
//! workspace stays free of the Substrate crates, and the contract ABI comes from the
//! `.contract` bundles `scripts/deploy` built. Balances are read with the node's JSON-RPC
//! (`state_call` of `ReviveApi_balance`).
//!
//! Every write is preceded by a dry-run of the same message: the contracts refuse a second
//! identical vote (`AlreadyVoted`) or an epoch that is already final (`EpochTooOld`), so
//! the dry-run tells whether the write is still needed, and a restarted oracle never
//! submits twice. After a write the client reads the state back to confirm it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dsi_protocol::fixed::{LinearCurve, Ppm};
use dsi_protocol::reward::RewardParams;
use dsi_protocol::{ContentId, NodeId, PayoutAccount};
use serde::Deserialize;
use serde_json::Value;

/// A chain failure.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The deployment file or an artifact is missing or malformed.
    #[error("deployment: {0}")]
    Deployment(String),
    /// `cargo contract` could not run or its output made no sense.
    #[error("cargo contract {message} failed: {detail}")]
    Tool {
        /// The message called.
        message: String,
        /// What went wrong.
        detail: String,
    },
    /// The contract answered with an error.
    #[error("{contract}.{message} refused: {error}")]
    Refused {
        /// The contract.
        contract: &'static str,
        /// The message.
        message: String,
        /// The contract's error variant.
        error: String,
    },
    /// The node's JSON-RPC failed.
    #[error("node RPC: {0}")]
    Rpc(String),
}

type Result<T> = std::result::Result<T, ChainError>;

/// Most scores in one `reputation.submit` call (the contract's `MAX_BATCH`): an epoch's
/// scores go in as many parts as they need.
pub const REPUTATION_PART: usize = 256;

/// What `scripts/deploy` writes.
#[derive(Clone, Debug, Deserialize)]
pub struct Deployment {
    /// Node RPC URL (ws://).
    pub url: String,
    /// `reward_pool` address.
    pub reward_pool: String,
    /// `reputation` address.
    pub reputation: String,
    /// `multipliers` address.
    pub multipliers: String,
    /// `governance` address.
    pub governance: String,
    /// Contract bundles by name (absolute paths).
    #[serde(default)]
    pub artifacts: std::collections::BTreeMap<String, PathBuf>,
}

impl Deployment {
    /// Reads a deployment file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ChainError::Deployment(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| ChainError::Deployment(format!("{}: {e}", path.display())))
    }
}

/// A contract of the deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    /// reward_pool.
    RewardPool,
    /// reputation.
    Reputation,
    /// multipliers.
    Multipliers,
    /// governance.
    Governance,
}

impl Contract {
    fn name(self) -> &'static str {
        match self {
            Self::RewardPool => "reward_pool",
            Self::Reputation => "reputation",
            Self::Multipliers => "multipliers",
            Self::Governance => "governance",
        }
    }
}

/// An epoch as `reward_pool` records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEpoch {
    /// Its root.
    pub root: [u8; 32],
    /// Its total.
    pub total: u128,
    /// `Final` or `Vetoed`.
    pub status: String,
    /// First block claims are accepted in.
    pub claimable_from: u32,
    /// The epoch it follows on the good chain (`None` for the first).
    pub base: Option<u64>,
}

/// Outcome of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Sent now.
    Sent,
    /// Nothing to send: the chain already has it.
    AlreadyThere,
}

/// A governance proposal as the contract records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Its id.
    pub id: u32,
    /// Who proposed it (0x H160).
    pub proposer: String,
    /// How many members approved it.
    pub approvals: usize,
    /// Block in which it reached the threshold (the timelock starts there).
    pub approved_at: Option<u32>,
    /// Whether it was executed.
    pub executed: bool,
}

/// The client.
#[derive(Clone, Debug)]
pub struct Chain {
    /// The deployment.
    pub deployment: Deployment,
    url: String,
    suri: String,
    cargo: String,
}

fn hex32(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// The `Ok` payload of a message's answer (`data` → `Ok` → value).
fn ok_value(answer: &Value) -> Option<&Value> {
    let tuple = &answer["data"]["Tuple"];
    (tuple["ident"] == "Ok").then(|| &tuple["values"][0])
}

/// `Ok(x)` / `Err(e)` of a `Result`-returning message.
fn result_of(value: &Value) -> std::result::Result<&Value, String> {
    let tuple = &value["Tuple"];
    match tuple["ident"].as_str() {
        Some("Ok") => Ok(&tuple["values"][0]),
        Some("Err") => Err(tuple["values"][0]["Tuple"]["ident"]
            .as_str()
            .unwrap_or("unknown error")
            .to_string()),
        _ => Err(format!("unexpected answer {value}")),
    }
}

fn uint(value: &Value) -> Option<u128> {
    match &value["UInt"] {
        Value::Number(n) => n.as_u64().map(u128::from),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .or_else(|| value["UInt"].as_f64().map(|f| f as u128))
}

/// An `Option<u64>` answer: `Some(Some(n))`, `Some(None)`, or `None` if it is not one.
fn option_u64(value: &Value) -> Option<Option<u64>> {
    option_uint(value)?
        .map(|v| u64::try_from(v).ok())
        .map_or(Some(None), |v| v.map(Some))
}

/// An `Option<u128>` answer: `Some(Some(n))`, `Some(None)`, or `None` if it is not one.
fn option_uint(value: &Value) -> Option<Option<u128>> {
    let tuple = &value["Tuple"];
    match tuple["ident"].as_str()? {
        "None" => Some(None),
        "Some" => uint(&tuple["values"][0]).map(Some),
        _ => None,
    }
}

/// An `Option<(u64, u32)>` answer (a tuple is a `Tuple` without ident).
fn option_epoch_part(value: &Value) -> Option<Option<(u64, u32)>> {
    let tuple = &value["Tuple"];
    match tuple["ident"].as_str()? {
        "None" => Some(None),
        "Some" => {
            let pair = tuple["values"][0]["Tuple"]["values"].as_array()?;
            let epoch = u64::try_from(uint(pair.first()?)?).ok()?;
            let part = u32::try_from(uint(pair.get(1)?)?).ok()?;
            Some(Some((epoch, part)))
        }
        _ => None,
    }
}

/// An `Option<u64>` in cargo-contract's argument syntax (`Some(3)`, `None`).
fn option_arg(value: Option<u64>) -> String {
    value.map_or_else(|| "None".to_string(), |v| format!("Some({v})"))
}

fn bytes32(value: &Value) -> Option<[u8; 32]> {
    let elems = value["Seq"]["elems"].as_array()?;
    let bytes: Vec<u8> = elems
        .iter()
        .map(|e| e["UInt"].as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

fn curve(value: &Value) -> Option<LinearCurve> {
    let map = &value["Map"];
    let field = |name: &str| {
        uint(&map[name])
            .and_then(|v| u32::try_from(v).ok())
            .map(Ppm)
    };
    Some(LinearCurve {
        base: field("base")?,
        slope: field("slope")?,
        min: field("min")?,
        max: field("max")?,
    })
}

/// The first JSON object in `text` (tools print one, then other lines).
fn first_json(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// The bytes in cargo-contract's `Call did revert "..."` panic message.
fn reverted_data(stderr: &str) -> Option<Vec<u8>> {
    let start = stderr.find("Call did revert \"")? + "Call did revert \"".len();
    let rest = &stderr[start..];
    let mut bytes = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(bytes),
            '\\' => match chars.next()? {
                'u' => {
                    let mut digits = String::new();
                    if chars.next()? != '{' {
                        return None;
                    }
                    for d in chars.by_ref() {
                        if d == '}' {
                            break;
                        }
                        digits.push(d);
                    }
                    let code = u32::from_str_radix(&digits, 16).ok()?;
                    let mut buffer = [0u8; 4];
                    bytes.extend_from_slice(
                        char::from_u32(code)?.encode_utf8(&mut buffer).as_bytes(),
                    );
                }
                '0' => bytes.push(0),
                't' => bytes.push(b'\t'),
                'n' => bytes.push(b'\n'),
                'r' => bytes.push(b'\r'),
                other => {
                    let mut buffer = [0u8; 4];
                    bytes.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
                }
            },
            other => {
                let mut buffer = [0u8; 4];
                bytes.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    None
}

/// The name of variant `index` of the contract's `Error` enum, from its bundle's ABI.
fn error_name(bundle: &Path, index: u8) -> Option<String> {
    let abi: Value = serde_json::from_slice(&std::fs::read(bundle).ok()?).ok()?;
    abi["types"].as_array()?.iter().find_map(|entry| {
        let ty = &entry["type"];
        if ty["path"].as_array()?.last()? != "Error" {
            return None;
        }
        ty["def"]["variant"]["variants"]
            .as_array()?
            .iter()
            .find(|v| v["index"].as_u64() == Some(u64::from(index)))?["name"]
            .as_str()
            .map(str::to_string)
    })
}

impl Chain {
    /// A client for `deployment`, signing as `suri`.
    pub fn new(deployment: Deployment, url: Option<String>, suri: String) -> Self {
        let url = url
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| deployment.url.clone());
        Self {
            deployment,
            url,
            suri,
            cargo: std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        }
    }

    /// The node's RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn address(&self, contract: Contract) -> &str {
        match contract {
            Contract::RewardPool => &self.deployment.reward_pool,
            Contract::Reputation => &self.deployment.reputation,
            Contract::Multipliers => &self.deployment.multipliers,
            Contract::Governance => &self.deployment.governance,
        }
    }

    fn artifact(&self, contract: Contract) -> Result<&Path> {
        let path = self
            .deployment
            .artifacts
            .get(contract.name())
            .ok_or_else(|| {
                ChainError::Deployment(format!(
                    "no artifact for {} (redeploy with scripts/deploy)",
                    contract.name()
                ))
            })?;
        if !path.exists() {
            return Err(ChainError::Deployment(format!(
                "artifact {} is missing (run scripts/deploy)",
                path.display()
            )));
        }
        Ok(path)
    }

    /// Runs `cargo contract call`; returns its JSON answer. With `execute` the extrinsic is
    /// submitted and the call waits for inclusion. Reads (dry runs) that fail in the tool or
    /// on the RPC connection are tried up to four times: they change nothing, and a busy
    /// node now and then drops a connection.
    async fn call(
        &self,
        contract: Contract,
        message: &str,
        args: &[String],
        execute: bool,
        value: Option<u128>,
    ) -> Result<Value> {
        let mut attempt = 1;
        loop {
            match self
                .call_once(contract, message, args, execute, value)
                .await
            {
                Err(ChainError::Tool { message: m, detail }) if !execute && attempt < 4 => {
                    tracing::warn!(call = %m, attempt, "chain read failed, trying again: {detail}");
                    tokio::time::sleep(Duration::from_millis(1000 * attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn call_once(
        &self,
        contract: Contract,
        message: &str,
        args: &[String],
        execute: bool,
        value: Option<u128>,
    ) -> Result<Value> {
        let tool = |detail: String| ChainError::Tool {
            message: format!("{}.{message}", contract.name()),
            detail,
        };
        let mut command = tokio::process::Command::new(&self.cargo);
        command
            .args(["contract", "call", "--url", &self.url, "--suri", &self.suri])
            .args(["--contract", self.address(contract), "--message", message])
            .arg("--output-json")
            .arg(self.artifact(contract)?);
        if let Some(value) = value {
            command.args(["--value", &value.to_string()]);
        }
        if execute {
            command.args(["--execute", "--skip-confirm"]);
        }
        // `--args` takes every following word: it must come last.
        if !args.is_empty() {
            command.arg("--args").args(args);
        }
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| tool(format!("cannot run cargo contract: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            // Answers the one question it may ask (mapping a new account).
            let _ = stdin.write_all(b"y\n").await;
        }
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .map_err(|_| tool("timed out after 120 s".into()))?
            .map_err(|e| tool(e.to_string()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if execute {
            // cargo-contract 6.0.0-alpha fails to decode anonymous events after a successful
            // extrinsic; callers confirm writes by reading the state back.
            return Ok(Value::Null);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(bytes) = reverted_data(&stderr) {
            // cargo-contract 6.0.0-alpha panics on a dry-run that reverts, printing the
            // returned bytes: SCALE `Err(index)` of the contract's `Error` enum.
            let name = match bytes.as_slice() {
                [1, index, ..] => error_name(self.artifact(contract)?, *index)
                    .unwrap_or_else(|| format!("error #{index}")),
                other => format!("reverted with {}", hex::encode(other)),
            };
            return Ok(
                serde_json::json!({"data": {"Tuple": {"ident": "Ok", "values": [
                    {"Tuple": {"ident": "Err", "values": [{"Tuple": {"ident": name, "values": []}}]}}
                ]}}}),
            );
        }
        let start = stdout.find('{').ok_or_else(|| {
            // Failures come as `{"generic_error": {"error": "..."}}` on stderr, then a
            // backtrace.
            let detail = first_json(&stderr)
                .and_then(|v| v["generic_error"]["error"].as_str().map(str::to_string))
                .and_then(|e| e.lines().next().map(str::to_string))
                .unwrap_or_else(|| stderr.lines().take(3).collect::<Vec<_>>().join(" "));
            tool(format!("no JSON answer: {detail}"))
        })?;
        let answer: Value = serde_json::from_str(&stdout[start..])
            .map_err(|e| tool(format!("unreadable answer: {e}")))?;
        if let Some(error) = answer.get("generic_error") {
            return Err(tool(
                error["error"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ));
        }
        Ok(answer)
    }

    async fn query(&self, contract: Contract, message: &str, args: &[String]) -> Result<Value> {
        let answer = self.call(contract, message, args, false, None).await?;
        ok_value(&answer).cloned().ok_or_else(|| ChainError::Tool {
            message: format!("{}.{message}", contract.name()),
            detail: format!("unexpected answer {answer}"),
        })
    }

    /// Dry-runs a `Result`-returning message: `Ok(())` if it would succeed, the contract's
    /// error name otherwise.
    async fn dry_run(
        &self,
        contract: Contract,
        message: &str,
        args: &[String],
    ) -> Result<std::result::Result<(), String>> {
        let value = self.query(contract, message, args).await?;
        Ok(result_of(&value).map(|_| ()))
    }

    /// Dry-runs a write, then sends it unless the contract answers with one of the
    /// `already` errors (nothing to do: [`Written::AlreadyThere`]); any other error is
    /// `Refused` with `label`.
    async fn write_once(
        &self,
        contract: Contract,
        message: &str,
        args: &[String],
        already: &[&str],
        label: String,
    ) -> Result<Written> {
        match self.dry_run(contract, message, args).await? {
            Ok(()) => {}
            Err(error) if already.contains(&error.as_str()) => return Ok(Written::AlreadyThere),
            Err(error) => {
                return Err(ChainError::Refused {
                    contract: contract.name(),
                    message: label,
                    error,
                });
            }
        }
        self.call(contract, message, args, true, None).await?;
        Ok(Written::Sent)
    }

    /// `reward_pool.epoch(n)`.
    pub async fn epoch(&self, epoch: u64) -> Result<Option<ChainEpoch>> {
        let value = self
            .query(Contract::RewardPool, "epoch", &[epoch.to_string()])
            .await?;
        let tuple = &value["Tuple"];
        if tuple["ident"] == "None" {
            return Ok(None);
        }
        let map = &tuple["values"][0]["Map"];
        let parse = || {
            Some(ChainEpoch {
                root: bytes32(&map["root"])?,
                total: uint(&map["total"])?,
                status: map["status"]["Tuple"]["ident"].as_str()?.to_string(),
                claimable_from: u32::try_from(uint(&map["claimable_from"])?).ok()?,
                base: option_u64(&map["base"])?,
            })
        };
        parse().map(Some).ok_or_else(|| ChainError::Tool {
            message: "reward_pool.epoch".into(),
            detail: format!("unexpected record {value}"),
        })
    }

    /// `reward_pool.current_block()`.
    pub async fn current_block(&self) -> Result<u32> {
        let value = self
            .query(Contract::RewardPool, "current_block", &[])
            .await?;
        uint(&value)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ChainError::Rpc(format!("bad block number {value}")))
    }

    /// `reward_pool.claimed(seeder)`.
    pub async fn claimed(&self, seeder: &NodeId) -> Result<u128> {
        let value = self
            .query(Contract::RewardPool, "claimed", &[hex32(&seeder.0)])
            .await?;
        uint(&value).ok_or_else(|| ChainError::Rpc(format!("bad amount {value}")))
    }

    /// `reward_pool.free_balance()`.
    pub async fn free_balance(&self) -> Result<u128> {
        let value = self
            .query(Contract::RewardPool, "free_balance", &[])
            .await?;
        uint(&value).ok_or_else(|| ChainError::Rpc(format!("bad amount {value}")))
    }

    /// Funds the pool with `amount` native units (12 decimals).
    pub async fn fund(&self, amount: u128) -> Result<()> {
        let before = self.free_balance().await?;
        self.call(Contract::RewardPool, "fund", &[], true, Some(amount))
            .await?;
        let after = self.free_balance().await?;
        if after < before.saturating_add(amount) {
            return Err(ChainError::Refused {
                contract: "reward_pool",
                message: "fund".into(),
                error: format!("free balance went from {before} to {after}"),
            });
        }
        Ok(())
    }

    /// `reward_pool.last_good_epoch()`: the newest final, not vetoed epoch (the base the
    /// next submission must name).
    pub async fn last_good_epoch(&self) -> Result<Option<u64>> {
        let value = self
            .query(Contract::RewardPool, "last_good_epoch", &[])
            .await?;
        option_u64(&value).ok_or_else(|| ChainError::Tool {
            message: "reward_pool.last_good_epoch".into(),
            detail: format!("unexpected answer {value}"),
        })
    }

    /// Submits an epoch's root, following `base` on the good chain, unless the chain
    /// already has this member's vote or a final record for it. `Refused` with `WrongBase`
    /// when `base` is not the chain's latest good epoch (not final yet, or vetoed).
    pub async fn submit_root(
        &self,
        epoch: u64,
        base: Option<u64>,
        root: &[u8; 32],
        total: u128,
        batch: &ContentId,
    ) -> Result<Written> {
        let args = [
            epoch.to_string(),
            option_arg(base),
            hex32(root),
            total.to_string(),
            hex32(&batch.0),
        ];
        self.write_once(
            Contract::RewardPool,
            "submit",
            &args,
            &["AlreadyVoted", "EpochTooOld"],
            format!("submit({epoch})"),
        )
        .await
    }

    /// `reputation.last_epoch()`.
    pub async fn reputation_last_epoch(&self) -> Result<Option<u64>> {
        let value = self.query(Contract::Reputation, "last_epoch", &[]).await?;
        let tuple = &value["Tuple"];
        if tuple["ident"] == "None" {
            return Ok(None);
        }
        Ok(uint(&tuple["values"][0]).and_then(|v| u64::try_from(v).ok()))
    }

    /// `reputation.last_part()`: the last applied (epoch, part).
    pub async fn reputation_last_part(&self) -> Result<Option<(u64, u32)>> {
        let value = self.query(Contract::Reputation, "last_part", &[]).await?;
        option_epoch_part(&value).ok_or_else(|| ChainError::Tool {
            message: "reputation.last_part".into(),
            detail: format!("unexpected answer {value}"),
        })
    }

    /// `reputation.score(node)`: (ppm, epoch).
    pub async fn reputation_score(&self, node: &NodeId) -> Result<Option<(u32, u64)>> {
        let value = self
            .query(Contract::Reputation, "score", &[hex32(&node.0)])
            .await?;
        let tuple = &value["Tuple"];
        if tuple["ident"] == "None" {
            return Ok(None);
        }
        let map = &tuple["values"][0]["Map"];
        Ok(uint(&map["ppm"])
            .zip(uint(&map["epoch"]))
            .and_then(|(p, e)| Some((u32::try_from(p).ok()?, u64::try_from(e).ok()?))))
    }

    /// Submits part `part` of an epoch's scores (sorted by node, at most
    /// [`REPUTATION_PART`]) unless already there.
    pub async fn submit_scores(
        &self,
        epoch: u64,
        part: u32,
        scores: &[(NodeId, u32)],
    ) -> Result<Written> {
        let list = scores
            .iter()
            .map(|(node, ppm)| format!("({}, {ppm})", hex32(&node.0)))
            .collect::<Vec<_>>()
            .join(", ");
        let args = [epoch.to_string(), part.to_string(), format!("[{list}]")];
        self.write_once(
            Contract::Reputation,
            "submit",
            &args,
            &["AlreadyVoted", "EpochTooOld"],
            format!("submit({epoch}, part {part})"),
        )
        .await
    }

    /// `multipliers.params()` as the protocol's reward parameters.
    pub async fn params(&self) -> Result<RewardParams> {
        let value = self.query(Contract::Multipliers, "params", &[]).await?;
        let map = &value["Map"];
        let parse = || {
            Some(RewardParams {
                rarity: curve(&map["rarity"])?,
                target_replication: u32::try_from(uint(&map["target_replication"])?).ok()?,
                demand: curve(&map["demand"])?,
                bandwidth_share: Ppm(u32::try_from(uint(&map["bandwidth_share"])?).ok()?),
            })
        };
        parse().ok_or_else(|| ChainError::Tool {
            message: "multipliers.params".into(),
            detail: format!("unexpected answer {value}"),
        })
    }

    /// `multipliers.boost(content)`.
    pub async fn boost(&self, content: &ContentId) -> Result<Ppm> {
        let value = self
            .query(Contract::Multipliers, "boost", &[hex32(&content.0)])
            .await?;
        uint(&value)
            .and_then(|v| u32::try_from(v).ok())
            .map(Ppm)
            .ok_or_else(|| ChainError::Rpc(format!("bad boost {value}")))
    }

    /// Claims a leaf: pays `payout` what the seeder earned in `epoch` (`amount`). Returns
    /// what was paid (0 when the leaf was already paid).
    pub async fn claim(
        &self,
        epoch: u64,
        seeder: &NodeId,
        payout: &PayoutAccount,
        amount: u128,
        proof: &[[u8; 32]],
    ) -> Result<u128> {
        let proof = proof
            .iter()
            .map(|h| hex32(h))
            .collect::<Vec<_>>()
            .join(", ");
        let args = [
            epoch.to_string(),
            hex32(&seeder.0),
            hex32(&payout.0),
            amount.to_string(),
            format!("[{proof}]"),
        ];
        match self.dry_run(Contract::RewardPool, "claim", &args).await? {
            Ok(()) => {}
            Err(error) if error == "AlreadyClaimed" => return Ok(0),
            Err(error) => {
                return Err(ChainError::Refused {
                    contract: "reward_pool",
                    message: format!("claim({epoch})"),
                    error,
                });
            }
        }
        self.call(Contract::RewardPool, "claim", &args, true, None)
            .await?;
        let paid = self.claimed_in(epoch, seeder).await?;
        if paid != Some(amount) {
            return Err(ChainError::Refused {
                contract: "reward_pool",
                message: format!("claim({epoch})"),
                error: format!("the leaf paid {paid:?} after the claim, expected {amount}"),
            });
        }
        Ok(amount)
    }

    /// `reward_pool.claimed_in(epoch, seeder)`: what that leaf paid, `None` while unclaimed.
    pub async fn claimed_in(&self, epoch: u64, seeder: &NodeId) -> Result<Option<u128>> {
        let value = self
            .query(
                Contract::RewardPool,
                "claimed_in",
                &[epoch.to_string(), hex32(&seeder.0)],
            )
            .await?;
        option_uint(&value).ok_or_else(|| ChainError::Rpc(format!("bad amount {value}")))
    }

    /// The same client signing as another account (a council member, say).
    pub fn signing_as(&self, suri: String) -> Self {
        Self {
            suri,
            ..self.clone()
        }
    }

    /// The selector of `message` in `contract`'s ABI (its bundle).
    pub fn selector(&self, contract: Contract, message: &str) -> Result<[u8; 4]> {
        let bundle = self.artifact(contract)?;
        let bad =
            |detail: String| ChainError::Deployment(format!("{}: {detail}", bundle.display()));
        let abi: Value = serde_json::from_slice(
            &std::fs::read(bundle).map_err(|e| bad(format!("cannot read: {e}")))?,
        )
        .map_err(|e| bad(e.to_string()))?;
        let selector = abi["spec"]["messages"]
            .as_array()
            .and_then(|messages| messages.iter().find(|m| m["label"] == message))
            .and_then(|m| m["selector"].as_str())
            .ok_or_else(|| bad(format!("no message {message}")))?;
        hex::decode(selector.trim_start_matches("0x"))
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| bad(format!("bad selector {selector}")))
    }

    /// `governance.next_id()`: the id the next proposal gets.
    pub async fn next_proposal_id(&self) -> Result<u32> {
        let value = self.query(Contract::Governance, "next_id", &[]).await?;
        uint(&value)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ChainError::Rpc(format!("bad proposal id {value}")))
    }

    /// `governance.proposal(id)`.
    pub async fn proposal(&self, id: u32) -> Result<Option<Proposal>> {
        let value = self
            .query(Contract::Governance, "proposal", &[id.to_string()])
            .await?;
        let tuple = &value["Tuple"];
        if tuple["ident"] == "None" {
            return Ok(None);
        }
        let map = &tuple["values"][0]["Map"];
        let parse = || {
            let approved_at = &map["approved_at"]["Tuple"];
            Some(Proposal {
                id,
                proposer: format!("0x{}", map["proposer"]["Hex"]["s"].as_str()?),
                approvals: map["approvals"]["Seq"]["elems"].as_array()?.len(),
                approved_at: match approved_at["ident"].as_str()? {
                    "Some" => Some(u32::try_from(uint(&approved_at["values"][0])?).ok()?),
                    _ => None,
                },
                executed: map["executed"]["Bool"].as_bool()?,
            })
        };
        parse().map(Some).ok_or_else(|| ChainError::Tool {
            message: "governance.proposal".into(),
            detail: format!("unexpected record {value}"),
        })
    }

    /// Proposes (and approves, as the proposer) a governance call of `message` on
    /// `contract` with SCALE-encoded `input`. Returns the proposal id.
    pub async fn propose_call(
        &self,
        contract: Contract,
        message: &str,
        input: &[u8],
    ) -> Result<u32> {
        let selector = self.selector(contract, message)?;
        let action = format!(
            "Call {{ callee: {}, selector: {}, input: {} }}",
            self.address(contract),
            hex32(&selector),
            hex32(input)
        );
        let args = [action];
        let value = self.query(Contract::Governance, "propose", &args).await?;
        let id = match result_of(&value) {
            Ok(id) => uint(id)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| ChainError::Rpc(format!("bad proposal id {value}")))?,
            Err(error) => {
                return Err(ChainError::Refused {
                    contract: "governance",
                    message: format!("propose({contract:?}.{message})"),
                    error,
                });
            }
        };
        self.call(Contract::Governance, "propose", &args, true, None)
            .await?;
        if self.proposal(id).await?.is_none() {
            return Err(ChainError::Refused {
                contract: "governance",
                message: "propose".into(),
                error: format!("proposal {id} is not on chain after the call"),
            });
        }
        Ok(id)
    }

    /// Proposes `multipliers.set_rarity(curve, target_replication)`.
    pub async fn propose_rarity(&self, curve: LinearCurve, target_replication: u32) -> Result<u32> {
        let mut input = Vec::with_capacity(20);
        for value in [curve.base, curve.slope, curve.min, curve.max] {
            input.extend_from_slice(&value.0.to_le_bytes());
        }
        input.extend_from_slice(&target_replication.to_le_bytes());
        self.propose_call(Contract::Multipliers, "set_rarity", &input)
            .await
    }

    /// Approves proposal `id` as this client's account (a council member).
    pub async fn approve(&self, id: u32) -> Result<Written> {
        let args = [id.to_string()];
        self.write_once(
            Contract::Governance,
            "approve",
            &args,
            &["AlreadyApproved"],
            format!("approve({id})"),
        )
        .await
    }

    /// Executes proposal `id` (approved, timelock passed). `Refused` with `Timelocked`,
    /// `NotApproved`, `ExecutionFailed`... when the contract would refuse.
    pub async fn execute(&self, id: u32) -> Result<Written> {
        let args = [id.to_string()];
        let written = self
            .write_once(
                Contract::Governance,
                "execute",
                &args,
                &["AlreadyExecuted"],
                format!("execute({id})"),
            )
            .await?;
        if written == Written::AlreadyThere {
            return Ok(written);
        }
        match self.proposal(id).await? {
            Some(proposal) if proposal.executed => Ok(Written::Sent),
            _ => Err(ChainError::Refused {
                contract: "governance",
                message: format!("execute({id})"),
                error: "not executed after the call".into(),
            }),
        }
    }

    /// Makes the node seal `blocks` blocks. ink-node's instant seal makes a block only for
    /// a transaction, so each block carries a transfer of one plank (10^-12 of a token) into
    /// the reward pool. Returns the new block number.
    pub async fn advance_blocks(&self, blocks: u32) -> Result<u32> {
        let target = self.current_block().await?.saturating_add(blocks);
        loop {
            self.call(Contract::RewardPool, "fund", &[], true, Some(1))
                .await?;
            let now = self.current_block().await?;
            if now >= target {
                return Ok(now);
            }
        }
    }

    /// An account's balance in native units, read with `ReviveApi_balance` over JSON-RPC.
    pub async fn balance(&self, account: &PayoutAccount) -> Result<u128> {
        let http = self
            .url
            .replacen("ws://", "http://", 1)
            .replacen("wss://", "https://", 1);
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "state_call",
            "params": ["ReviveApi_balance", hex32(&account.0)],
        });
        let answer: Value = reqwest::Client::new()
            .post(&http)
            .json(&body)
            .send()
            .await
            .map_err(|e| ChainError::Rpc(e.to_string()))?
            .json()
            .await
            .map_err(|e| ChainError::Rpc(e.to_string()))?;
        let text = answer["result"]
            .as_str()
            .ok_or_else(|| ChainError::Rpc(format!("state_call failed: {answer}")))?;
        let bytes = hex::decode(text.trim_start_matches("0x"))
            .map_err(|e| ChainError::Rpc(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(ChainError::Rpc(format!("U256 of {} bytes", bytes.len())));
        }
        // U256 little-endian, 18-decimal EVM units: native = value / 10^6.
        if bytes[16..].iter().any(|b| *b != 0) {
            return Err(ChainError::Rpc("balance beyond u128".into()));
        }
        let mut low = [0u8; 16];
        low.copy_from_slice(&bytes[..16]);
        Ok(u128::from_le_bytes(low) / 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_errors_are_read_from_the_json_on_stderr() {
        let stderr = "{\n  \"generic_error\": {\n    \"error\": \"RPC error: connection refused\\n\\nStack backtrace:\\n   0: <unknown>\"\n  }\n}\n\nStack backtrace:\n   0: <unknown>\n";
        let v = first_json(stderr).expect("json");
        assert_eq!(
            v["generic_error"]["error"]
                .as_str()
                .and_then(|e| e.lines().next()),
            Some("RPC error: connection refused")
        );
        assert!(first_json("no json here").is_none());
    }

    #[test]
    fn reverted_bytes_are_read_from_the_panic_message() {
        let stderr =
            "thread 'main' panicked at call.rs:199:25:\nCall did revert \"\\u{1}\\u{6}\"\nstack";
        assert_eq!(reverted_data(stderr), Some(vec![1, 6]));
        assert_eq!(reverted_data("no revert here"), None);
    }

    #[test]
    fn answers_are_parsed() {
        let answer =
            serde_json::json!({"data": {"Tuple": {"ident": "Ok", "values": [{"UInt": 5}]}}});
        assert_eq!(ok_value(&answer).and_then(uint), Some(5));
        let err = serde_json::json!({"Tuple": {"ident": "Err", "values": [{"Tuple": {"ident": "AlreadyVoted", "values": []}}]}});
        assert_eq!(result_of(&err), Err("AlreadyVoted".to_string()));
        let bytes = serde_json::json!({"Seq": {"elems": (0..32).map(|i| serde_json::json!({"UInt": i})).collect::<Vec<_>>()}});
        assert_eq!(bytes32(&bytes).map(|b| b[31]), Some(31));
        let some = serde_json::json!({"Tuple": {"ident": "Some", "values": [{"UInt": 3}]}});
        let none = serde_json::json!({"Tuple": {"ident": "None", "values": []}});
        assert_eq!(option_u64(&some), Some(Some(3)));
        assert_eq!(option_u64(&none), Some(None));
        assert_eq!(option_u64(&serde_json::json!({"UInt": 3})), None);
        let part = serde_json::json!({"Tuple": {"ident": "Some", "values": [
            {"Tuple": {"ident": null, "values": [{"UInt": 7}, {"UInt": 2}]}}
        ]}});
        assert_eq!(option_epoch_part(&part), Some(Some((7, 2))));
        assert_eq!(option_epoch_part(&none), Some(None));
        assert_eq!(
            (option_arg(Some(3)), option_arg(None)),
            ("Some(3)".to_string(), "None".to_string())
        );
    }
}
