//! Deploy: uploads and instantiates the four contracts with the chain client, wires them
//! (governance administers the other three), reads the wiring back, and writes
//! `deployment.json`. The multipliers start at `RewardParams::default()` and
//! `MarketParams::default()` (the protocol's one source), the accounts come from
//! [`crate::accounts`]' one table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dsi_protocol::reward::{MarketParams, RewardParams};

use crate::accounts::Signer;
use crate::bundle::{Bundle, arg};
use crate::client::Node;
use crate::contracts::{Address, Bounds, Contract, Deployment, Market, Params};
use crate::{ChainError, Result};

/// `reward_pool::VETO_MARGIN_BLOCKS`: the challenge window must exceed the governance
/// timelock by this much.
pub const VETO_MARGIN_BLOCKS: u32 = 4;

/// What to deploy.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    /// Node RPC URL.
    pub url: String,
    /// Who pays for the deployment.
    pub deployer: Signer,
    /// The governance council.
    pub council: Vec<[u8; 20]>,
    /// Approvals a proposal needs.
    pub council_threshold: u32,
    /// Blocks between approval and execution.
    pub timelock: u32,
    /// The oracle committee.
    pub committee: Vec<[u8; 20]>,
    /// Identical submissions that make an epoch final.
    pub committee_threshold: u32,
    /// Blocks after finality in which governance can veto.
    pub challenge_blocks: u32,
    /// Most one epoch may add (native units).
    pub max_epoch_total: u128,
    /// Where the four `<name>.contract` bundles are.
    pub bundles: PathBuf,
}

/// Whether `threshold` of `members` is a strict majority (the contracts refuse less).
pub fn strict_majority(members: usize, threshold: u32) -> bool {
    let threshold = threshold as usize;
    members > 0 && threshold <= members && threshold * 2 > members
}

impl DeployOptions {
    /// Refuses what the contracts would refuse, with a clearer message.
    pub fn check(&self) -> Result<()> {
        let usage = |m: String| Err(ChainError::Deployment(m));
        if self.challenge_blocks < self.timelock.saturating_add(VETO_MARGIN_BLOCKS) {
            return usage(format!(
                "a challenge window of {} blocks leaves governance no time to veto (at least the timelock + {VETO_MARGIN_BLOCKS} = {})",
                self.challenge_blocks,
                self.timelock.saturating_add(VETO_MARGIN_BLOCKS)
            ));
        }
        for (what, members, threshold) in [
            ("council", self.council.len(), self.council_threshold),
            ("committee", self.committee.len(), self.committee_threshold),
        ] {
            if !strict_majority(members, threshold) {
                return usage(format!(
                    "a {what} threshold of {threshold} of {members} members is not a strict majority"
                ));
            }
        }
        Ok(())
    }
}

fn hex20(address: &[u8; 20]) -> String {
    format!("0x{}", hex::encode(address))
}

async fn instantiate(
    node: &Node,
    deployer: &Signer,
    bundle: &Bundle,
    data: Vec<u8>,
    salt: [u8; 32],
) -> Result<[u8; 20]> {
    let code = bundle.code.clone().ok_or_else(|| {
        ChainError::Bundle(format!(
            "{} carries no code (use the .contract bundle)",
            bundle.name
        ))
    })?;
    let failed = |error: String| ChainError::Dispatch {
        contract: bundle.name.clone(),
        message: "new".into(),
        error,
    };
    let dry = node
        .dry_run_instantiate(deployer, code.clone(), data.clone(), Some(salt))
        .await?
        .map_err(failed)?;
    if dry.reverted {
        let error = match bundle.decode_constructor_answer("new", &dry.data)? {
            Err(name) => name,
            Ok(()) => "reverted".into(),
        };
        return Err(ChainError::Refused {
            contract: leak(&bundle.name),
            message: "new".into(),
            error,
        });
    }
    let address = dry
        .address
        .ok_or_else(|| failed("no address in the dry-run".into()))?;
    node.instantiate(deployer, code, data, Some(salt), &dry)
        .await?
        .map_err(failed)?;
    Ok(address)
}

/// The contract names are a fixed set: name one without allocating per error.
fn leak(name: &str) -> &'static str {
    Contract::ALL
        .into_iter()
        .map(Contract::name)
        .find(|n| *n == name)
        .unwrap_or("contract")
}

/// `<dir>/<name>.contract`, or `<dir>/<name>/<name>.contract` (the layout of
/// `contracts/target/ink`).
pub fn bundle_path(dir: &Path, contract: Contract) -> PathBuf {
    let file = format!("{}.contract", contract.name());
    let flat = dir.join(&file);
    if flat.exists() {
        flat
    } else {
        dir.join(contract.name()).join(file)
    }
}

/// Deploys the four contracts and checks their wiring. Returns the deployment (not yet
/// written: see [`write_deployment`]).
pub async fn deploy(options: &DeployOptions, progress: impl Fn(&str)) -> Result<Deployment> {
    options.check()?;
    let mut bundles = BTreeMap::new();
    let mut artifacts = BTreeMap::new();
    for contract in Contract::ALL {
        let path = bundle_path(&options.bundles, contract);
        let path = path.canonicalize().map_err(|e| {
            ChainError::Bundle(format!(
                "{}: {e} (build with scripts/deploy --build-only)",
                path.display()
            ))
        })?;
        bundles.insert(contract, Bundle::load(&path)?);
        artifacts.insert(contract.name().to_string(), path);
    }
    let bundle = |c: Contract| -> Result<&Bundle> {
        bundles
            .get(&c)
            .ok_or_else(|| ChainError::Bundle(format!("no bundle for {}", c.name())))
    };
    let node = Node::new(&options.url);
    let deployer = &options.deployer;
    progress(&format!(
        "deploying to {} as {}",
        options.url,
        hex20(&deployer.address())
    ));
    node.map_account(deployer).await?;
    // One salt per deployment: the addresses the dry-runs give are the real ones, and a
    // second deployment of the same code and arguments gets new addresses.
    let salt: [u8; 32] = {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut seed = nanos.to_le_bytes().to_vec();
        seed.extend_from_slice(&deployer.address());
        <dsi_protocol::merkle::Keccak256 as dsi_protocol::merkle::MerkleHasher>::hash(&seed)
    };
    let council: Vec<Address> = options.council.iter().copied().map(Address).collect();
    let committee: Vec<Address> = options.committee.iter().copied().map(Address).collect();

    let b = bundle(Contract::Governance)?;
    let data = b.constructor_data(
        "new",
        &[
            arg(&council),
            arg(&options.council_threshold),
            arg(&options.timelock),
        ],
    )?;
    let governance = instantiate(&node, deployer, b, data, salt).await?;
    progress(&format!("governance   {}", hex20(&governance)));

    let b = bundle(Contract::RewardPool)?;
    let data = b.constructor_data(
        "new",
        &[
            arg(&Address(governance)),
            arg(&committee),
            arg(&options.committee_threshold),
            arg(&options.challenge_blocks),
            arg(&options.timelock),
            arg(&options.max_epoch_total),
        ],
    )?;
    let reward_pool = instantiate(&node, deployer, b, data, salt).await?;
    progress(&format!("reward_pool  {}", hex20(&reward_pool)));

    let b = bundle(Contract::Reputation)?;
    let data = b.constructor_data(
        "new",
        &[
            arg(&Address(governance)),
            arg(&committee),
            arg(&options.committee_threshold),
        ],
    )?;
    let reputation = instantiate(&node, deployer, b, data, salt).await?;
    progress(&format!("reputation   {}", hex20(&reputation)));

    let b = bundle(Contract::Multipliers)?;
    let data = b.constructor_data(
        "new",
        &[
            arg(&Address(governance)),
            arg(&Bounds::default()),
            arg(&Params::from(RewardParams::default())),
            arg(&Market::from(MarketParams::default())),
        ],
    )?;
    let multipliers = instantiate(&node, deployer, b, data, salt).await?;
    progress(&format!("multipliers  {}", hex20(&multipliers)));

    let mut settings = BTreeMap::new();
    let list = |v: &[[u8; 20]]| serde_json::json!(v.iter().map(hex20).collect::<Vec<_>>());
    settings.insert(
        "deployer".into(),
        serde_json::json!(hex20(&deployer.address())),
    );
    settings.insert("council".into(), list(&options.council));
    settings.insert("council_threshold".into(), options.council_threshold.into());
    settings.insert("timelock_blocks".into(), options.timelock.into());
    settings.insert("committee".into(), list(&options.committee));
    settings.insert(
        "committee_threshold".into(),
        options.committee_threshold.into(),
    );
    settings.insert("challenge_blocks".into(), options.challenge_blocks.into());
    settings.insert(
        "max_epoch_total".into(),
        serde_json::json!(options.max_epoch_total.to_string()),
    );
    settings.insert(
        "deployed_at_unix".into(),
        serde_json::json!(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        ),
    );
    let deployment = Deployment {
        url: options.url.clone(),
        reward_pool: hex20(&reward_pool),
        reputation: hex20(&reputation),
        multipliers: hex20(&multipliers),
        governance: hex20(&governance),
        artifacts,
        settings,
    };
    check_wiring(&deployment, &options.council).await?;
    progress("governance administers the other three; the council reads back");
    Ok(deployment)
}

/// Reads the wiring back from the chain, without a key ([`crate::Chain::reader`]):
/// governance is the admin of the other three and the council is the one deployed.
pub async fn check_wiring(deployment: &Deployment, council: &[[u8; 20]]) -> Result<()> {
    let chain = crate::Chain::reader(deployment.clone(), None)?;
    let governance = Address(deployment.address(Contract::Governance)?);
    let wrong = |what: &str, got: String| {
        Err(ChainError::Deployment(format!(
            "{what} reads back as {got}, expected governance {governance}"
        )))
    };
    let (admin, _, _): (Address, u32, bool) =
        chain.query(Contract::RewardPool, "settings", &[]).await?;
    if admin != governance {
        return wrong("reward_pool's admin", admin.to_string());
    }
    for contract in [Contract::Reputation, Contract::Multipliers] {
        let admin: Address = chain.query(contract, "governance", &[]).await?;
        if admin != governance {
            return wrong(&format!("{}'s admin", contract.name()), admin.to_string());
        }
    }
    let (members, _): (Vec<Address>, u32) =
        chain.query(Contract::Governance, "council", &[]).await?;
    if members.iter().map(|a| a.0).collect::<Vec<_>>() != council {
        return Err(ChainError::Deployment(format!(
            "the council reads back as {}",
            members
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// Writes `deployment.json`.
pub fn write_deployment(deployment: &Deployment, path: &Path) -> Result<()> {
    let bad = |e: String| ChainError::Deployment(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(deployment).map_err(|e| bad(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DeployOptions {
        DeployOptions {
            url: "ws://127.0.0.1:1".into(),
            deployer: Signer::dev("alice").unwrap(),
            council: vec![[1; 20], [2; 20], [3; 20]],
            council_threshold: 2,
            timelock: 5,
            committee: vec![[1; 20]],
            committee_threshold: 1,
            challenge_blocks: 20,
            max_epoch_total: 1,
            bundles: PathBuf::from("."),
        }
    }

    #[test]
    fn deploy_refuses_what_the_contracts_would_refuse() {
        assert!(options().check().is_ok());
        let mut o = options();
        o.challenge_blocks = 8;
        assert!(
            o.check()
                .unwrap_err()
                .to_string()
                .contains("no time to veto")
        );
        let mut o = options();
        o.council_threshold = 1;
        assert!(
            o.check()
                .unwrap_err()
                .to_string()
                .contains("strict majority")
        );
        let mut o = options();
        o.committee = vec![[1; 20], [2; 20]];
        assert!(
            o.check()
                .unwrap_err()
                .to_string()
                .contains("committee threshold of 1 of 2")
        );
    }
}
