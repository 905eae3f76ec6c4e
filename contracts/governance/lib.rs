//! # governance: a council that administers the other DSI contracts
//!
//! A council member `propose`s an [`Action`]; members `approve` it; once `threshold` current
//! members approved, a timelock of `timelock` blocks starts; after it, any member may
//! `execute` it. The council's threshold must be a strict majority of its members
//! ([`dsi_contracts_common::valid_committee`]).
//!
//! **The timelock restarts with every council.** Only approvals of current members count.
//! `approved_at` records the block in which a proposal reached the threshold; when the
//! council changes (`council_since`), a proposal approved before the change may have lost
//! its approvals, so its timelock counts from the change at the earliest, and a proposal
//! that reaches the threshold again under the new council starts a new timelock from that
//! approval. A proposal that lost its approvals in a rotation therefore never executes right
//! after one new member approves: every council gets a full timelock to look at what it
//! lets through. Actions are calls to another contract (`Action::Call`: callee, selector,
//! SCALE-encoded arguments: how governance changes multipliers, vetoes epochs, pauses the
//! pool or rotates the oracle committee) or changes to the council itself.
//!
//! Governance is the only admin of `reward_pool`, `reputation` and `multipliers`: their
//! administrative messages accept calls from this contract's address only.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
pub mod governance {
    use dsi_contracts_common::valid_committee;
    use ink::env::call::{build_call, ExecutionInput, Selector};
    use ink::prelude::vec::Vec;
    use ink::storage::Mapping;

    /// Everything that can go wrong.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Error {
        /// The caller is not a council member.
        Unauthorized,
        /// Members and threshold do not make a council.
        InvalidCouncil,
        /// No proposal with this id.
        UnknownProposal,
        /// This member already approved this proposal.
        AlreadyApproved,
        /// The proposal was already executed.
        AlreadyExecuted,
        /// Fewer than `threshold` current members approved.
        NotApproved,
        /// The timelock has not passed yet.
        Timelocked,
        /// The called contract refused or failed.
        ExecutionFailed,
        /// Arithmetic overflow.
        Overflow,
    }

    /// Result of every message.
    pub type Result<T> = core::result::Result<T, Error>;

    /// What a proposal does when executed.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Action {
        /// Call `selector` on `callee` with SCALE-encoded `input` arguments. The callee's
        /// message must return `Result<(), E>` with a field-less error enum.
        Call {
            /// Contract to call.
            callee: Address,
            /// The message selector.
            selector: [u8; 4],
            /// SCALE-encoded arguments.
            input: Vec<u8>,
        },
        /// Replace the council.
        SetCouncil {
            /// New members.
            members: Vec<Address>,
            /// New threshold.
            threshold: u32,
        },
        /// Change the timelock (blocks).
        SetTimelock {
            /// New timelock.
            blocks: u32,
        },
    }

    /// A proposal and its state.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Proposal {
        /// What it does.
        pub action: Action,
        /// Who proposed it.
        pub proposer: Address,
        /// Who approved it (the proposer included).
        pub approvals: Vec<Address>,
        /// Block in which it last reached the threshold of current members (restarted by
        /// an approval under a new council): the timelock starts there, and not before the
        /// current council took office.
        pub approved_at: Option<u32>,
        /// Whether it was executed.
        pub executed: bool,
    }

    /// A proposal was made.
    #[ink(event, anonymous)]
    pub struct Proposed {
        id: u32,
        proposer: Address,
    }

    /// A member approved a proposal.
    #[ink(event, anonymous)]
    pub struct Approved {
        id: u32,
        member: Address,
        approvals: u32,
    }

    /// A proposal was executed.
    #[ink(event, anonymous)]
    pub struct Executed {
        id: u32,
    }

    /// The governance council.
    #[ink(storage)]
    pub struct Governance {
        council: Vec<Address>,
        threshold: u32,
        timelock: u32,
        /// Block in which the current council took office (construction or `SetCouncil`).
        council_since: u32,
        next_id: u32,
        proposals: Mapping<u32, Proposal>,
    }

    /// Arguments that are already SCALE-encoded, written as they are.
    struct RawInput<'a>(&'a [u8]);

    impl ink::scale::Encode for RawInput<'_> {
        fn size_hint(&self) -> usize {
            self.0.len()
        }

        fn encode_to<T: ink::scale::Output + ?Sized>(&self, dest: &mut T) {
            dest.write(self.0);
        }
    }

    impl Governance {
        /// A council of `council` members, `threshold` approvals and a timelock in blocks.
        #[ink(constructor)]
        pub fn new(council: Vec<Address>, threshold: u32, timelock: u32) -> Result<Self> {
            if !valid_committee(&council, threshold) {
                return Err(Error::InvalidCouncil);
            }
            Ok(Self {
                council,
                threshold,
                timelock,
                council_since: Self::env().block_number(),
                next_id: 0,
                proposals: Mapping::default(),
            })
        }

        /// A member proposes an action (and approves it). Returns the proposal id.
        #[ink(message)]
        pub fn propose(&mut self, action: Action) -> Result<u32> {
            let caller = self.ensure_member()?;
            let id = self.next_id;
            self.next_id = id.checked_add(1).ok_or(Error::Overflow)?;
            let mut proposal = Proposal {
                action,
                proposer: caller,
                approvals: Vec::new(),
                approved_at: None,
                executed: false,
            };
            self.env().emit_event(Proposed {
                id,
                proposer: caller,
            });
            self.add_approval(id, &mut proposal, caller);
            self.proposals.insert(id, &proposal);
            Ok(id)
        }

        /// A member approves a proposal.
        #[ink(message)]
        pub fn approve(&mut self, id: u32) -> Result<()> {
            let caller = self.ensure_member()?;
            let mut proposal = self.proposals.get(id).ok_or(Error::UnknownProposal)?;
            if proposal.executed {
                return Err(Error::AlreadyExecuted);
            }
            if proposal.approvals.contains(&caller) {
                return Err(Error::AlreadyApproved);
            }
            self.add_approval(id, &mut proposal, caller);
            self.proposals.insert(id, &proposal);
            Ok(())
        }

        /// A member executes an approved proposal after its timelock.
        #[ink(message)]
        pub fn execute(&mut self, id: u32) -> Result<()> {
            self.ensure_member()?;
            let mut proposal = self.proposals.get(id).ok_or(Error::UnknownProposal)?;
            if proposal.executed {
                return Err(Error::AlreadyExecuted);
            }
            if self.current_approvals(&proposal) < self.threshold {
                return Err(Error::NotApproved);
            }
            if self.env().block_number() < self.unlocks_at(&proposal)? {
                return Err(Error::Timelocked);
            }
            // Marked before the call: a callee that calls back cannot execute it twice.
            proposal.executed = true;
            self.proposals.insert(id, &proposal);
            match proposal.action {
                Action::Call {
                    callee,
                    selector,
                    input,
                } => {
                    let result = build_call::<ink::env::DefaultEnvironment>()
                        .call(callee)
                        .exec_input(
                            ExecutionInput::new(Selector::new(selector)).push_arg(RawInput(&input)),
                        )
                        .returns::<core::result::Result<(), u8>>()
                        .try_invoke();
                    if !matches!(result, Ok(Ok(Ok(())))) {
                        return Err(Error::ExecutionFailed);
                    }
                }
                Action::SetCouncil { members, threshold } => {
                    if !valid_committee(&members, threshold) {
                        return Err(Error::InvalidCouncil);
                    }
                    self.council = members;
                    self.threshold = threshold;
                    self.council_since = self.env().block_number();
                }
                Action::SetTimelock { blocks } => self.timelock = blocks,
            }
            self.env().emit_event(Executed { id });
            Ok(())
        }

        /// A proposal.
        #[ink(message)]
        pub fn proposal(&self, id: u32) -> Option<Proposal> {
            self.proposals.get(id)
        }

        /// Council members and threshold.
        #[ink(message)]
        pub fn council(&self) -> (Vec<Address>, u32) {
            (self.council.clone(), self.threshold)
        }

        /// The timelock in blocks.
        #[ink(message)]
        pub fn timelock(&self) -> u32 {
            self.timelock
        }

        /// Block in which the current council took office.
        #[ink(message)]
        pub fn council_since(&self) -> u32 {
            self.council_since
        }

        /// First block in which proposal `id` may execute, if enough current members
        /// approved it.
        #[ink(message)]
        pub fn executable_from(&self, id: u32) -> Option<u32> {
            let proposal = self.proposals.get(id)?;
            if proposal.executed || self.current_approvals(&proposal) < self.threshold {
                return None;
            }
            self.unlocks_at(&proposal).ok()
        }

        /// The id the next proposal will get.
        #[ink(message)]
        pub fn next_id(&self) -> u32 {
            self.next_id
        }

        fn ensure_member(&self) -> Result<Address> {
            let caller = self.env().caller();
            if self.council.contains(&caller) {
                Ok(caller)
            } else {
                Err(Error::Unauthorized)
            }
        }

        /// Approvals by members of the current council.
        fn current_approvals(&self, proposal: &Proposal) -> u32 {
            proposal
                .approvals
                .iter()
                .filter(|a| self.council.contains(a))
                .count() as u32
        }

        /// When an approved proposal's timelock ends: counted from its approval, and never
        /// from before the current council took office.
        fn unlocks_at(&self, proposal: &Proposal) -> Result<u32> {
            let approved_at = proposal.approved_at.ok_or(Error::NotApproved)?;
            approved_at
                .max(self.council_since)
                .checked_add(self.timelock)
                .ok_or(Error::Overflow)
        }

        fn add_approval(&self, id: u32, proposal: &mut Proposal, member: Address) {
            proposal.approvals.push(member);
            let approvals = self.current_approvals(proposal);
            // Reaching the threshold first, or again under a council that took office after
            // the last approval, (re)starts the timelock.
            let stale = proposal
                .approved_at
                .is_none_or(|at| at <= self.council_since);
            if approvals >= self.threshold && stale {
                proposal.approved_at = Some(self.env().block_number());
            }
            self.env().emit_event(Approved {
                id,
                member,
                approvals,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::governance::*;
    use ink::env::test;
    use ink::env::DefaultEnvironment;

    /// Council alice, bob, charlie; threshold 2; timelock 5 blocks.
    fn council() -> Governance {
        let a = test::default_accounts();
        Governance::new(vec![a.alice, a.bob, a.charlie], 2, 5).unwrap()
    }

    fn advance(blocks: u32) {
        for _ in 0..blocks {
            test::advance_block::<DefaultEnvironment>();
        }
    }

    trait Block {
        /// The current block number.
        fn env_block(&self) -> u32;
    }

    impl Block for Governance {
        fn env_block(&self) -> u32 {
            ink::env::block_number::<DefaultEnvironment>()
        }
    }

    #[ink::test]
    fn constructor_rejects_bad_councils() {
        let a = test::default_accounts();
        assert_eq!(
            Governance::new(vec![], 1, 0).err(),
            Some(Error::InvalidCouncil)
        );
        assert_eq!(
            Governance::new(vec![a.alice], 2, 0).err(),
            Some(Error::InvalidCouncil)
        );
        assert_eq!(
            Governance::new(vec![a.alice, a.alice], 1, 0).err(),
            Some(Error::InvalidCouncil)
        );
        // Half the council or less never decides.
        assert_eq!(
            Governance::new(vec![a.alice, a.bob], 1, 0).err(),
            Some(Error::InvalidCouncil)
        );
        assert_eq!(
            Governance::new(vec![a.alice, a.bob, a.charlie, a.django], 2, 0).err(),
            Some(Error::InvalidCouncil)
        );
        assert!(
            Governance::new(vec![a.alice], 1, 0).is_ok(),
            "1 of 1 stays allowed"
        );
        let g = council();
        assert_eq!(g.council(), (vec![a.alice, a.bob, a.charlie], 2));
        assert_eq!(g.timelock(), 5);
    }

    #[ink::test]
    fn propose_approve_timelock_execute() {
        let a = test::default_accounts();
        let mut g = council();
        test::set_caller(a.eve);
        assert_eq!(
            g.propose(Action::SetTimelock { blocks: 1 }),
            Err(Error::Unauthorized)
        );
        test::set_caller(a.alice);
        let id = g.propose(Action::SetTimelock { blocks: 1 }).unwrap();
        assert_eq!(id, 0);
        assert_eq!(g.next_id(), 1);
        assert_eq!(g.approve(id), Err(Error::AlreadyApproved));
        assert_eq!(g.approve(7), Err(Error::UnknownProposal));
        assert_eq!(g.execute(id), Err(Error::NotApproved));
        test::set_caller(a.eve);
        assert_eq!(g.approve(id), Err(Error::Unauthorized));
        assert_eq!(g.execute(id), Err(Error::Unauthorized));
        test::set_caller(a.bob);
        assert_eq!(g.approve(id), Ok(()));
        let proposal = g.proposal(id).unwrap();
        assert_eq!(proposal.approvals, vec![a.alice, a.bob]);
        assert!(proposal.approved_at.is_some());
        assert_eq!(g.execute(id), Err(Error::Timelocked));
        advance(4);
        assert_eq!(g.execute(id), Err(Error::Timelocked));
        advance(1);
        assert_eq!(g.execute(id), Ok(()));
        assert_eq!(g.timelock(), 1);
        assert_eq!(g.execute(id), Err(Error::AlreadyExecuted));
        test::set_caller(a.charlie);
        assert_eq!(g.approve(id), Err(Error::AlreadyExecuted));
    }

    #[ink::test]
    fn the_council_rotates_itself_and_old_approvals_stop_counting() {
        let a = test::default_accounts();
        let mut g = council();
        test::set_caller(a.alice);
        let pending = g.propose(Action::SetTimelock { blocks: 9 }).unwrap();
        let rotate = g
            .propose(Action::SetCouncil {
                members: vec![a.django, a.eve],
                threshold: 2,
            })
            .unwrap();
        test::set_caller(a.bob);
        g.approve(rotate).unwrap();
        advance(5);
        assert_eq!(g.execute(rotate), Ok(()));
        assert_eq!(g.council(), (vec![a.django, a.eve], 2));
        // Alice is no longer a member: her approval of the pending proposal does not count.
        test::set_caller(a.django);
        g.approve(pending).unwrap();
        advance(5);
        assert_eq!(g.execute(pending), Err(Error::NotApproved));
        test::set_caller(a.eve);
        g.approve(pending).unwrap();
        advance(5);
        assert_eq!(g.execute(pending), Ok(()));
        assert_eq!(g.timelock(), 9);
        // An invalid council proposal fails at execution and changes nothing.
        let bad = g
            .propose(Action::SetCouncil {
                members: vec![],
                threshold: 1,
            })
            .unwrap();
        test::set_caller(a.django);
        g.approve(bad).unwrap();
        advance(9);
        assert_eq!(g.execute(bad), Err(Error::InvalidCouncil));
        assert_eq!(g.council(), (vec![a.django, a.eve], 2));
    }

    /// Issue 13 item 7: a proposal that lost its approvals in a council rotation does not
    /// execute the moment one new member approves; its timelock restarts.
    #[ink::test]
    fn a_rotation_restarts_the_timelock() {
        let a = test::default_accounts();
        let mut g = council();
        advance(1);
        test::set_caller(a.alice);
        let pending = g.propose(Action::SetTimelock { blocks: 9 }).unwrap();
        test::set_caller(a.bob);
        g.approve(pending).unwrap();
        let approved_at = g.proposal(pending).unwrap().approved_at.unwrap();
        assert_eq!(g.executable_from(pending), Some(approved_at + 5));
        // The council is replaced by charlie, django, eve before it executes: the
        // approvals of alice and bob no longer count.
        test::set_caller(a.alice);
        let rotate = g
            .propose(Action::SetCouncil {
                members: vec![a.charlie, a.django, a.eve],
                threshold: 2,
            })
            .unwrap();
        test::set_caller(a.bob);
        g.approve(rotate).unwrap();
        advance(5);
        assert_eq!(g.execute(rotate), Ok(()));
        assert_eq!(g.council_since(), g.env_block());
        assert_eq!(g.executable_from(pending), None);
        advance(20);
        test::set_caller(a.django);
        g.approve(pending).unwrap();
        assert_eq!(g.execute(pending), Err(Error::NotApproved));
        // When: one more new member approves, long after the old timelock ended.
        test::set_caller(a.eve);
        g.approve(pending).unwrap();
        // Then: the timelock starts again from this approval.
        let restarted = g.proposal(pending).unwrap().approved_at.unwrap();
        assert_eq!(restarted, g.env_block());
        assert!(restarted > approved_at);
        assert_eq!(g.execute(pending), Err(Error::Timelocked), "no bypass");
        advance(4);
        assert_eq!(g.execute(pending), Err(Error::Timelocked));
        advance(1);
        assert_eq!(g.execute(pending), Ok(()));
        assert_eq!(g.timelock(), 9);
    }

    /// A proposal that keeps its approvals through a rotation still waits a full timelock
    /// from the rotation: the new council gets the time to look at it.
    #[ink::test]
    fn a_rotation_that_keeps_the_approvals_still_gives_the_new_council_a_timelock() {
        let a = test::default_accounts();
        let mut g = council();
        advance(1);
        test::set_caller(a.alice);
        let pending = g.propose(Action::SetTimelock { blocks: 9 }).unwrap();
        let rotate = g
            .propose(Action::SetCouncil {
                members: vec![a.alice, a.bob, a.django],
                threshold: 2,
            })
            .unwrap();
        test::set_caller(a.bob);
        g.approve(pending).unwrap();
        g.approve(rotate).unwrap();
        advance(5);
        // Without the rotation the pending proposal could execute now.
        assert_eq!(g.executable_from(pending), Some(g.env_block()));
        assert_eq!(g.execute(rotate), Ok(()));
        let since = g.council_since();
        assert_eq!(g.executable_from(pending), Some(since + 5));
        advance(2);
        assert_eq!(g.execute(pending), Err(Error::Timelocked));
        advance(3);
        assert_eq!(g.execute(pending), Ok(()));
        // A council of one of two is refused at execution.
        let bad = g
            .propose(Action::SetCouncil {
                members: vec![a.alice, a.bob],
                threshold: 1,
            })
            .unwrap();
        test::set_caller(a.alice);
        g.approve(bad).unwrap();
        advance(9);
        assert_eq!(g.execute(bad), Err(Error::InvalidCouncil));
    }
}
