//! The DSI economics simulator: evidence that no strategy using only one's own keys,
//! content and traffic earns more than it spends.
//!
//! Every scenario runs on a fresh [`world::World`]: the real oracle in-process on SQLite,
//! real manifests, announcements and ed25519-signed receipts through the oracle's ingest
//! rules, audits over loopback HTTP at every close (each simulated network is a loopback
//! /24, `127.0.L.1`), and `protocol::reward` at close. The same honest population (four
//! seeders on four networks, three funded downloaders, a popular and a rare sponsored
//! content and one on governance's subsidized list) runs in every scenario, joined one
//! epoch later by the attacker. The honest seeders' pay is compared with the baseline run
//! without an attacker (the patient one for a patient attacker, below).
//!
//! A new attacker's keys earn `unvetted_share` of what they would; a patient one is played
//! too ([`Outcome::vetted`]): it runs its attack unmeasured until every key of its has
//! passed the market's `vetting_audits` funded audits, and only its full-share epochs
//! after that are measured.
//!
//! [`dynamics`] is the second table: whether the incentives move seeders to bring every
//! funded content to its target replication.

pub mod dynamics;
pub mod world;

use std::collections::BTreeSet;

use anyhow::Result;
use dsi_protocol::{ContentId, NodeId};

use world::{Content, World, key};

/// One token in native units (12 decimals).
pub const TOKEN: u128 = 1_000_000_000_000;

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Attacker key counts to try where keys matter.
    pub keys: Vec<u64>,
    /// Measured epochs after the honest warm-up epoch (and, for a patient attacker, after
    /// its vetting rounds).
    pub epochs: u32,
    /// Shortest epoch length in milliseconds ([`epoch_ms_for`]).
    pub epoch_ms: u64,
    /// The attacks to play (the baseline is always played: every row is compared with
    /// it); empty: all of them.
    pub attacks: Vec<Attack>,
}

/// The attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// No attacker: the baseline.
    Baseline,
    /// K downloader keys sign receipts for the attacker's seeder on its own unfunded
    /// content.
    RingUnfunded,
    /// The same on content the attacker sponsors, with credit on all K keys.
    RingSponsored,
    /// The same on a content on governance's subsidized list, with credit.
    RingSubsidized,
    /// K funded keys download a funded popular content from the attacker's seeder.
    DemandInflation,
    /// K keys on one network announce a funded content already at its target.
    ReplicaFarm,
    /// K keys on one network announce a funded content below its target (they do hold
    /// it): worth at most one replica.
    ReplicaFarmBelowTarget,
    /// K keys hold a funded content below its target on one site (one network) and each
    /// announces through a proxy in another network, every URL naming the site: without
    /// the oracle's URL check they would hold K networks' places with one copy.
    ProxyFarm,
    /// A node announces a funded content holding half of its chunks.
    HoldingHalf,
    /// A seeder that failed its audits starts again under a fresh key each epoch.
    KeyChurn,
}

impl Attack {
    /// Every attack, baseline first.
    pub const ALL: [Attack; 10] = [
        Attack::Baseline,
        Attack::RingUnfunded,
        Attack::RingSponsored,
        Attack::RingSubsidized,
        Attack::DemandInflation,
        Attack::ReplicaFarm,
        Attack::ReplicaFarmBelowTarget,
        Attack::ProxyFarm,
        Attack::HoldingHalf,
        Attack::KeyChurn,
    ];

    /// Its name on the command line (`sim --attacks`).
    pub fn slug(self) -> &'static str {
        match self {
            Attack::Baseline => "baseline",
            Attack::RingUnfunded => "ring-unfunded",
            Attack::RingSponsored => "ring-sponsored",
            Attack::RingSubsidized => "ring-subsidized",
            Attack::DemandInflation => "demand-inflation",
            Attack::ReplicaFarm => "farm-at-target",
            Attack::ReplicaFarmBelowTarget => "farm-below-target",
            Attack::ProxyFarm => "proxy-farm",
            Attack::HoldingHalf => "holding-half",
            Attack::KeyChurn => "key-churn",
        }
    }

    /// The attack named `slug` ([`Attack::slug`]).
    pub fn from_slug(slug: &str) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| a.slug() == slug)
    }

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Attack::Baseline => "baseline",
            Attack::RingUnfunded => "ring, own unfunded content",
            Attack::RingSponsored => "ring, own sponsored content",
            Attack::RingSubsidized => "ring, subsidized content",
            Attack::DemandInflation => "demand inflation",
            Attack::ReplicaFarm => "replica farm, at target",
            Attack::ReplicaFarmBelowTarget => "replica farm, below target",
            Attack::ProxyFarm => "proxy farm, one site",
            Attack::HoldingHalf => "announce more than held",
            Attack::KeyChurn => "key churn",
        }
    }

    /// Whether the number of attacker keys matters.
    pub fn keyed(self) -> bool {
        !matches!(
            self,
            Attack::Baseline | Attack::HoldingHalf | Attack::KeyChurn
        )
    }

    /// Whether a patient attacker's keys can be vetted first: they hold funded content and
    /// pass its audits (the unfunded ring's seeder holds no funded content, so it never
    /// is; the half holder, the proxy farm and the churning key fail or are refused). The
    /// baseline is played patient too: its honest population then ages as long, and the
    /// patient rows are compared with it.
    pub fn vettable(self) -> bool {
        matches!(
            self,
            Attack::Baseline
                | Attack::RingSponsored
                | Attack::RingSubsidized
                | Attack::DemandInflation
                | Attack::ReplicaFarm
                | Attack::ReplicaFarmBelowTarget
        )
    }

    /// Whether the attack uses only the attacker's own keys, content and traffic (its net
    /// must be ≤ 0). The farm below target and the half holder do store funded content
    /// (really, or half of it): they are judged against the honest alternative instead.
    pub fn own_resources_only(self) -> bool {
        matches!(
            self,
            Attack::RingUnfunded
                | Attack::RingSponsored
                | Attack::RingSubsidized
                | Attack::DemandInflation
                | Attack::ReplicaFarm
        )
    }
}

/// One scenario's figures, summed over the measured epochs.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The attack.
    pub attack: Attack,
    /// Attacker keys.
    pub keys: u64,
    /// Whether the attacker was patient: its keys ran the attack unmeasured until every one
    /// of them was vetted (earning a full share), and only then was it measured.
    pub vetted: bool,
    /// What the attacker's seeders were paid.
    pub reward: u128,
    /// What the attacker spent: credit debited from its keys and sponsorship drawn for
    /// its content.
    pub cost: u128,
    /// The honest seeders' pay.
    pub honest: u128,
    /// The most the attack may take without counting as a gain (one replica's share for
    /// the farm below target, 0 otherwise).
    pub allowance: u128,
    /// Funding offered per epoch (subsidy + sponsorships + honest debits): the ppm base.
    pub budget: u128,
    /// The most attacker keys counted as replicas of one content in one epoch (a farm on
    /// one network may have one).
    pub counted_replicas: usize,
    /// Attacker announcements the oracle refused (the proxy farm's).
    pub refused: u64,
    /// The epoch length the scenario ran with, in milliseconds.
    pub epoch_ms: u64,
    /// The longest measured round (setting up, traffic, close), in milliseconds: it must
    /// stay under `epoch_ms`.
    pub busiest_ms: u64,
}

impl Outcome {
    /// Reward minus cost (negative: the attack loses money).
    pub fn net(&self) -> i128 {
        self.reward as i128 - self.cost as i128
    }

    /// `value` in parts per million of the epoch budget.
    pub fn ppm(&self, value: i128) -> i128 {
        if self.budget == 0 {
            return 0;
        }
        value * 1_000_000 / self.budget as i128
    }
}

/// The honest population.
struct Honest {
    popular: Content,
    rare: Content,
    public: Content,
    seeders: Vec<(dsi_protocol::SecretKey, NodeId)>,
    downloaders: Vec<dsi_protocol::SecretKey>,
}

const SPONSOR: u128 = TOKEN;
const SUBSIDY: u64 = 1_000_000_000_000;
const CREDIT: u128 = 10 * TOKEN;

async fn honest(world: &mut World, contents: (Content, Content, Content)) -> Result<Honest> {
    let (popular, rare, public) = contents;
    world.sponsor(popular.id(), SPONSOR, 3).await?;
    world.sponsor(rare.id(), SPONSOR, 3).await?;
    // h1..h3 hold the popular content (its target), h4 the rare one; h2..h4 the
    // subsidized one (its target).
    let holdings: [(u8, Vec<&Content>); 4] = [
        (1, vec![&popular]),
        (2, vec![&popular, &public]),
        (3, vec![&popular, &public]),
        (4, vec![&rare, &public]),
    ];
    let mut seeders = Vec::new();
    for (location, contents) in holdings {
        let node = key(0x11, u64::from(location));
        let mut chunks = std::collections::HashMap::new();
        for c in &contents {
            chunks.extend(c.chunks.iter().map(|(k, v)| (*k, v.clone())));
        }
        let ids = contents.iter().map(|c| c.id()).collect();
        let id = world
            .node(location, &node, std::sync::Arc::new(chunks), ids)
            .await?;
        seeders.push((node, id));
    }
    let mut downloaders = Vec::new();
    for d in 0..3u64 {
        let downloader = key(0x22, d);
        world.credit(downloader.node_id(), CREDIT).await?;
        downloaders.push(downloader);
    }
    Ok(Honest {
        popular,
        rare,
        public,
        seeders,
        downloaders,
    })
}

/// An epoch of honest traffic: downloader i fetches the popular content from h(i+1), the
/// rare one from h4 and the subsidized one from h2.
async fn honest_traffic(world: &mut World, honest: &Honest) -> Result<()> {
    let mut receipts = Vec::new();
    for (i, d) in honest.downloaders.iter().enumerate() {
        receipts.extend(world.receipts(d, honest.seeders[i].1, &honest.popular));
        receipts.extend(world.receipts(d, honest.seeders[3].1, &honest.rare));
        receipts.extend(world.receipts(d, honest.seeders[1].1, &honest.public));
    }
    let expected = receipts.len();
    let accepted = world.ingest(receipts).await?;
    anyhow::ensure!(
        accepted == expected,
        "honest receipts refused: {accepted} of {expected}"
    );
    Ok(())
}

/// The ring's receipts of an epoch: every ring key signs for every chunk of `content`
/// served by the ring's seeder.
async fn ring_traffic(
    world: &mut World,
    ring: &[dsi_protocol::SecretKey],
    seeder: NodeId,
    content: Option<&Content>,
) -> Result<()> {
    if let Some(content) = content {
        let mut receipts = Vec::new();
        for downloader in ring {
            receipts.extend(world.receipts(downloader, seeder, content));
        }
        world.ingest(receipts).await?;
    }
    Ok(())
}

/// Counts `closed` into `outcome`'s busiest round, and fails if its round outlasted its
/// epoch: it would pay the sponsorships of the epochs it spans and skew every figure (and
/// age the run more than its baseline).
fn one_epoch(outcome: &mut Outcome, closed: &world::Closed, round: &str) -> Result<()> {
    outcome.busiest_ms = outcome.busiest_ms.max(closed.busy.as_millis() as u64);
    anyhow::ensure!(
        closed.epochs == 1,
        "{} with {} keys: {round} took longer than its {} ms epoch ({} epochs closed); give \
         a longer --epoch-ms",
        outcome.attack.name(),
        outcome.keys,
        outcome.epoch_ms,
        closed.epochs
    );
    Ok(())
}

/// Unmeasured rounds a patient attacker plays while its keys are vetted, at most (a market
/// that vets more slowly stops the run with an error).
const MAX_VETTING_ROUNDS: u32 = 12;

/// Runs one scenario: `vetted` makes the attacker patient (see [`Outcome::vetted`]).
pub async fn run(attack: Attack, keys: u64, vetted: bool, settings: &Settings) -> Result<Outcome> {
    anyhow::ensure!(
        !vetted || attack.vettable(),
        "{}: its keys cannot be vetted",
        attack.name()
    );
    // Contents are registered on the world; the subsidized one must be known before the
    // oracle starts (its list is configuration), so its id is computed from a scratch
    // world first.
    let public_id = world::make_content(3, 4)?.id();
    let epoch_ms = epoch_ms_for(settings.epoch_ms, keys);
    let mut world = World::new(epoch_ms, SUBSIDY, &[public_id]).await?;
    let popular = world.content(1, 8).await?;
    let rare = world.content(2, 4).await?;
    let public = world.content(3, 4).await?;
    anyhow::ensure!(public.id() == public_id, "the subsidized content moved");
    let honest = honest(&mut world, (popular, rare, public)).await?;
    let honest_ids: BTreeSet<NodeId> = honest.seeders.iter().map(|s| s.1).collect();

    // Warm-up epoch: the honest holders are proven before anyone else arrives.
    honest_traffic(&mut world, &honest).await?;
    world.close().await?;

    let mut outcome = Outcome {
        attack,
        keys,
        vetted,
        reward: 0,
        cost: 0,
        honest: 0,
        allowance: 0,
        budget: 0,
        counted_replicas: 0,
        refused: 0,
        epoch_ms,
        busiest_ms: 0,
    };
    // A patient attacker plays its attack unmeasured for as many rounds as vetting takes
    // (`vetting_audits` passed funded audits, at most `audit.chunks_per_node` counted a
    // close), the same number in every patient scenario and its baseline.
    let needed = u64::from(world.state.market().vetting_audits);
    let per_epoch = world.state.config.audit.chunks_per_node as u64;
    let vetting_rounds = if vetted {
        needed.div_ceil(per_epoch.max(1))
    } else {
        0
    };
    anyhow::ensure!(
        vetting_rounds <= u64::from(MAX_VETTING_ROUNDS),
        "vetting takes {vetting_rounds} rounds, more than the simulator plays"
    );
    let mut attackers: BTreeSet<NodeId> = BTreeSet::new();
    let mut payers: Vec<NodeId> = Vec::new();
    let mut sponsored: Vec<ContentId> = Vec::new();
    let mut ring: Vec<dsi_protocol::SecretKey> = Vec::new();
    let mut ring_content: Option<Content> = None;
    let seeder = key(0x66, 0);
    let seeder_id = seeder.node_id();
    let attacker_location = 200;
    match attack {
        Attack::Baseline | Attack::KeyChurn => {}
        Attack::RingUnfunded | Attack::RingSponsored => {
            let junk = world.content(100, 4).await?;
            world
                .node(
                    attacker_location,
                    &seeder,
                    junk.chunks.clone(),
                    vec![junk.id()],
                )
                .await?;
            attackers.insert(seeder_id);
            if attack == Attack::RingSponsored {
                world.sponsor(junk.id(), SPONSOR, 3).await?;
                sponsored.push(junk.id());
            }
            ring_content = Some(junk);
        }
        Attack::RingSubsidized | Attack::DemandInflation => {
            let content = if attack == Attack::RingSubsidized {
                honest.public.clone()
            } else {
                honest.popular.clone()
            };
            world
                .node(
                    attacker_location,
                    &seeder,
                    content.chunks.clone(),
                    vec![content.id()],
                )
                .await?;
            attackers.insert(seeder_id);
            ring_content = Some(content);
        }
        Attack::ReplicaFarm | Attack::ReplicaFarmBelowTarget => {
            let content = if attack == Attack::ReplicaFarm {
                honest.popular.clone()
            } else {
                honest.rare.clone()
            };
            for k in 0..keys {
                let node = key(0x77, k);
                let id = world
                    .node(
                        attacker_location,
                        &node,
                        content.chunks.clone(),
                        vec![content.id()],
                    )
                    .await?;
                attackers.insert(id);
            }
            if attack == Attack::ReplicaFarmBelowTarget {
                // One more replica of the rare content: the honest holder and the farm's
                // one network share the sponsorship, half each, before factors.
                outcome.allowance = SPONSOR / 2 * u128::from(settings.epochs);
            }
        }
        Attack::ProxyFarm => {
            // Each key's announcement comes from its own /24 (127.1.0.0 on), its URL names
            // the one site: refused (`url_outside_source`), so the farm holds no place.
            let content = honest.rare.clone();
            for k in 0..keys {
                let via = [127, 1 + (k / 250) as u8, (k % 250) as u8, 1];
                match world
                    .node_via(
                        via,
                        attacker_location,
                        &key(0x7a, k),
                        content.chunks.clone(),
                        vec![content.id()],
                    )
                    .await
                {
                    Ok(id) => {
                        attackers.insert(id);
                    }
                    Err(error) if error.to_string().contains("url_outside_source") => {
                        outcome.refused += 1;
                    }
                    Err(error) => return Err(error),
                }
            }
            // It does hold one real copy on one network: one replica, as an honest node
            // there announcing from it would earn.
            outcome.allowance = SPONSOR / 2 * u128::from(settings.epochs);
        }
        Attack::HoldingHalf => {
            let rare = honest.rare.clone();
            world
                .node(attacker_location, &seeder, rare.part(2), vec![rare.id()])
                .await?;
            attackers.insert(seeder_id);
        }
    }
    if matches!(
        attack,
        Attack::RingUnfunded
            | Attack::RingSponsored
            | Attack::RingSubsidized
            | Attack::DemandInflation
    ) {
        for k in 0..keys {
            let downloader = key(0x88, k);
            if attack != Attack::RingUnfunded {
                // Enough credit for every epoch's downloads, the vetting rounds' too.
                let content = ring_content.as_ref().map_or(0, |c| c.manifest.size);
                let need = u128::from(content)
                    * u128::from(world.state.config.market.price_per_byte)
                    * (u128::from(settings.epochs) + u128::from(vetting_rounds));
                world.credit(downloader.node_id(), need).await?;
                payers.push(downloader.node_id());
            }
            ring.push(downloader);
        }
    }

    let mut spent_before: Vec<u128> = vec![0; payers.len()];
    if vetted {
        // The last of these rounds is already paid in full (the close counts its own
        // audits); it is played anyway so that the check below reads stored audits only.
        for round in 0..vetting_rounds {
            honest_traffic(&mut world, &honest).await?;
            ring_traffic(&mut world, &ring, seeder_id, ring_content.as_ref()).await?;
            let closed = world.close().await?;
            one_epoch(&mut outcome, &closed, &format!("vetting round {round}"))?;
        }
        // Every attacker key is vetted, and so is every honest seeder (the patient baseline
        // must have aged as much as the scenario it is compared with).
        let mut unvetted = 0;
        for id in attackers.iter().chain(&honest_ids) {
            if world
                .state
                .store
                .funded_audits_passed(id, per_epoch)
                .await?
                < needed
            {
                unvetted += 1;
            }
        }
        anyhow::ensure!(
            unvetted == 0,
            "{} with {keys} keys: {unvetted} keys (attacker or honest) still unvetted after \
             {vetting_rounds} rounds",
            attack.name()
        );
        for (before, payer) in spent_before.iter_mut().zip(&payers) {
            *before = world.spent(*payer).await?;
        }
    }

    for round in 0..settings.epochs {
        if attack == Attack::KeyChurn {
            // Each epoch a fresh key announces the rare content holding half of it (it
            // fails its audits, so its reputation would sink: it starts over instead).
            let node = key(0x99, u64::from(round));
            let id = world
                .node(
                    attacker_location,
                    &node,
                    honest.rare.part(2),
                    vec![honest.rare.id()],
                )
                .await?;
            attackers.insert(id);
        }
        honest_traffic(&mut world, &honest).await?;
        ring_traffic(&mut world, &ring, seeder_id, ring_content.as_ref()).await?;
        let closed = world.close().await?;
        one_epoch(&mut outcome, &closed, &format!("round {round}"))?;
        let world::Closed {
            leaves, rewards, ..
        } = closed;
        for leaf in &leaves {
            if attackers.contains(&leaf.seeder) {
                outcome.reward += leaf.amount;
            } else if honest_ids.contains(&leaf.seeder) {
                outcome.honest += leaf.amount;
            }
        }
        for pay in &rewards.contents {
            if sponsored.contains(&pay.content) {
                outcome.cost += pay.paid;
            }
            let counted = pay.counted.iter().filter(|n| attackers.contains(n)).count();
            outcome.counted_replicas = outcome.counted_replicas.max(counted);
        }
        let honest_debits: u128 = honest
            .downloaders
            .iter()
            .map(|d| rewards.debited(&d.node_id()))
            .sum();
        outcome.budget = u128::from(SUBSIDY) + 2 * SPONSOR + honest_debits;
    }
    for (payer, before) in payers.iter().zip(&spent_before) {
        outcome.cost += world.spent(*payer).await?.saturating_sub(*before);
    }
    // The ppm base is one epoch's funding; the figures are per epoch too.
    let epochs = u128::from(settings.epochs.max(1));
    outcome.reward /= epochs;
    outcome.cost /= epochs;
    outcome.honest /= epochs;
    outcome.allowance /= epochs;
    Ok(outcome)
}

/// The epoch length a scenario with `keys` attacker keys runs with: at least `floor`, and
/// 3 ms more per key, so that setting up, announcing, auditing and closing K keys fits in
/// one epoch (the busiest round of 1,000 keys takes about 1.7 s on two cores: the run
/// prints each scenario's busiest round against its epoch, and stops if one outlasts it).
pub fn epoch_ms_for(floor: u64, keys: u64) -> u64 {
    floor.max(1_500u64.saturating_add(keys.saturating_mul(3)))
}

/// Every scenario's outcome and the verdict.
pub struct Report {
    /// One row per scenario and key count.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// The honest seeders' pay without an attacker, in a run that aged as long (new or
    /// patient); `None` if that baseline was not played.
    pub fn baseline(&self, vetted: bool) -> Option<u128> {
        self.outcomes
            .iter()
            .find(|o| o.attack == Attack::Baseline && o.vetted == vetted)
            .map(|o| o.honest)
    }

    /// The worst net of the attacks that use only the attacker's own resources, in ppm of
    /// the epoch budget.
    pub fn worst_attacker_net_ppm(&self) -> i128 {
        self.outcomes
            .iter()
            .filter(|o| o.attack.own_resources_only())
            .map(|o| o.ppm(o.net()))
            .max()
            .unwrap_or(0)
    }

    /// The most the honest seeders lost to an attack against the baseline, in ppm (attacks
    /// that add a real replica of an under-replicated content are not counted).
    pub fn honest_loss_ppm(&self) -> i128 {
        self.outcomes
            .iter()
            .filter(|o| o.attack != Attack::ReplicaFarmBelowTarget)
            // A row without its baseline cannot show it lost nothing.
            .map(|o| {
                self.baseline(o.vetted)
                    .map_or(i128::MAX, |b| o.ppm(b as i128 - o.honest as i128))
            })
            .max()
            .unwrap_or(0)
    }

    /// Scenarios whose attacker took more than its allowance without paying for it, or
    /// had more than one key counted as a replica of one content (all its keys share one
    /// network).
    pub fn over_allowance(&self) -> Vec<&Outcome> {
        self.outcomes
            .iter()
            .filter(|o| o.net() > o.allowance as i128 || o.counted_replicas > 1)
            .collect()
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        format!(
            "sim: worst_attacker_net_ppm={} honest_loss_ppm={} scenarios={} over_allowance={}",
            self.worst_attacker_net_ppm(),
            self.honest_loss_ppm(),
            self.outcomes.len(),
            self.over_allowance().len()
        )
    }

    /// The table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<28} {:>6} {:>6} {:>16} {:>16} {:>12} {:>12}\n",
            "scenario", "keys", "vetted", "reward (units)", "cost (units)", "net ppm", "honest ppm"
        );
        for o in &self.outcomes {
            out.push_str(&format!(
                "{:<28} {:>6} {:>6} {:>16} {:>16} {:>12} {:>12}\n",
                o.attack.name(),
                if o.attack.keyed() {
                    o.keys.to_string()
                } else {
                    "-".into()
                },
                if o.vetted { "yes" } else { "no" },
                o.reward,
                o.cost,
                o.ppm(o.net()),
                self.baseline(o.vetted).map_or_else(
                    || "-".to_string(),
                    |b| o.ppm(o.honest as i128 - b as i128).to_string()
                ),
            ));
        }
        out
    }
}

/// Runs every scenario (each keyed one for every key count; each attack whose keys can be
/// vetted also with a patient attacker), printing progress with `progress`.
pub async fn run_all(settings: &Settings, mut progress: impl FnMut(&Outcome)) -> Result<Report> {
    let mut outcomes = Vec::new();
    for attack in Attack::ALL {
        if attack != Attack::Baseline
            && !settings.attacks.is_empty()
            && !settings.attacks.contains(&attack)
        {
            continue;
        }
        let counts: Vec<u64> = if attack.keyed() {
            settings.keys.clone()
        } else {
            vec![1]
        };
        for vetted in [false, true] {
            if vetted && !attack.vettable() {
                continue;
            }
            for &keys in &counts {
                let outcome = run(attack, keys, vetted, settings).await?;
                progress(&outcome);
                outcomes.push(outcome);
            }
        }
    }
    Ok(Report { outcomes })
}
