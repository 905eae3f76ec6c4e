//! A contract bundle (`<name>.contract`, what `cargo contract build` writes): the code, and
//! the ABI the client encodes calls and decodes answers with: message and constructor
//! selectors, argument types, return types, events and the contract's `Error` enum, all as
//! ids into the bundle's own scale-info type registry.
//!
//! Arguments are encoded *against* those types (`scale-encode`) and answers decoded
//! against them (`scale-decode`, by field name): a Rust value whose shape does not match
//! the contract's ABI is an error, never silently different bytes.

use std::collections::BTreeMap;
use std::path::Path;

use scale_decode::DecodeAsType;
use scale_info::PortableRegistry;
use scale_info::form::PortableForm;
use serde::Deserialize;

use crate::ChainError;

/// A value that encodes itself as a given type of a bundle's registry (object safe, and
/// `Send + Sync` so that calls can be awaited on any thread).
pub trait EncodeArg: Send + Sync {
    /// Encodes as type `ty` of `types`.
    fn encode_arg(
        &self,
        ty: u32,
        types: &PortableRegistry,
        out: &mut Vec<u8>,
    ) -> Result<(), scale_encode::Error>;
}

impl<T: scale_encode::EncodeAsType + Send + Sync> EncodeArg for T {
    fn encode_arg(
        &self,
        ty: u32,
        types: &PortableRegistry,
        out: &mut Vec<u8>,
    ) -> Result<(), scale_encode::Error> {
        self.encode_as_type_to(ty, types, out)
    }
}

/// One argument of a call, encoded against the contract's type for it.
pub type Arg<'a> = &'a dyn EncodeArg;

/// Wraps a value as an [`Arg`].
pub fn arg<T: scale_encode::EncodeAsType + Send + Sync>(value: &T) -> Arg<'_> {
    value
}

#[derive(Deserialize)]
struct RawBundle {
    source: RawSource,
    contract: RawContract,
    spec: RawSpec,
    types: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSource {
    hash: String,
    #[serde(default)]
    contract_binary: Option<String>,
}

#[derive(Deserialize)]
struct RawContract {
    name: String,
}

#[derive(Deserialize)]
struct RawSpec {
    constructors: Vec<RawMessage>,
    messages: Vec<RawMessage>,
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawType {
    #[serde(rename = "type")]
    id: u32,
}

#[derive(Deserialize)]
struct RawArg {
    label: String,
    #[serde(rename = "type")]
    ty: RawType,
}

#[derive(Deserialize)]
struct RawMessage {
    label: String,
    selector: String,
    args: Vec<RawArg>,
    #[serde(rename = "returnType")]
    return_type: Option<RawType>,
    #[serde(default)]
    mutates: bool,
    #[serde(default)]
    payable: bool,
}

#[derive(Deserialize)]
struct RawEvent {
    label: String,
    args: Vec<RawArg>,
    signature_topic: Option<String>,
}

/// A message or constructor of the ABI.
#[derive(Clone, Debug)]
pub struct Message {
    /// Its name.
    pub label: String,
    /// Its selector.
    pub selector: [u8; 4],
    /// Argument names and type ids.
    pub args: Vec<(String, u32)>,
    /// Type id of what it returns (`Result<T, LangError>`).
    pub return_type: Option<u32>,
    /// Whether it changes state (a transaction; a read otherwise).
    pub mutates: bool,
    /// Whether it accepts a value.
    pub payable: bool,
}

/// An event of the ABI.
#[derive(Clone, Debug)]
pub struct EventSpec {
    /// Its name.
    pub label: String,
    /// Field names and type ids, in encoding order.
    pub args: Vec<(String, u32)>,
    /// Its signature topic (`None`: anonymous).
    pub signature_topic: Option<[u8; 32]>,
}

/// An event a contract emitted, decoded with its bundle.
#[derive(Clone, Debug)]
pub struct Event {
    /// The contract that emitted it.
    pub contract: String,
    /// The event's name.
    pub name: String,
    /// Its fields.
    pub fields: Vec<(String, scale_value::Value<()>)>,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} {{ ", self.contract, self.name)?;
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}: {value}")?;
        }
        f.write_str(" }")
    }
}

/// A loaded bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The contract's name.
    pub name: String,
    /// The contract's code (PolkaVM blob), if the bundle carries it (`.contract` does,
    /// `.json` does not).
    pub code: Option<Vec<u8>>,
    /// `source.hash`: blake2-256 of the code.
    pub code_hash: [u8; 32],
    registry: PortableRegistry,
    messages: BTreeMap<String, Message>,
    constructors: BTreeMap<String, Message>,
    events: Vec<EventSpec>,
}

fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    hex::decode(text.trim_start_matches("0x"))
        .ok()?
        .try_into()
        .ok()
}

fn message(raw: RawMessage) -> Option<Message> {
    Some(Message {
        selector: hex_bytes(&raw.selector)?,
        label: raw.label,
        args: raw.args.into_iter().map(|a| (a.label, a.ty.id)).collect(),
        return_type: raw.return_type.map(|t| t.id),
        mutates: raw.mutates,
        payable: raw.payable,
    })
}

impl Bundle {
    /// Reads a bundle file.
    pub fn load(path: &Path) -> Result<Self, ChainError> {
        let bad = |detail: String| ChainError::Bundle(format!("{}: {detail}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        Self::parse(&bytes).map_err(bad)
    }

    /// Parses a bundle's JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let raw: RawBundle =
            serde_json::from_slice(bytes).map_err(|e| format!("not a contract bundle: {e}"))?;
        let registry: PortableRegistry =
            serde_json::from_value(serde_json::json!({ "types": raw.types }))
                .map_err(|e| format!("unreadable type registry: {e}"))?;
        let code = match raw.source.contract_binary {
            Some(text) => Some(
                hex::decode(text.trim_start_matches("0x"))
                    .map_err(|e| format!("contract_binary is not hex: {e}"))?,
            ),
            None => None,
        };
        let code_hash = hex_bytes(&raw.source.hash).ok_or("source.hash is not 32 bytes")?;
        let index = |list: Vec<RawMessage>| -> Result<BTreeMap<String, Message>, String> {
            list.into_iter()
                .map(|m| {
                    let label = m.label.clone();
                    message(m)
                        .map(|m| (label.clone(), m))
                        .ok_or(format!("bad selector of {label}"))
                })
                .collect()
        };
        let events = raw
            .spec
            .events
            .into_iter()
            .map(|e| EventSpec {
                label: e.label,
                args: e.args.into_iter().map(|a| (a.label, a.ty.id)).collect(),
                signature_topic: e.signature_topic.as_deref().and_then(hex_bytes),
            })
            .collect();
        Ok(Self {
            name: raw.contract.name,
            code,
            code_hash,
            registry,
            messages: index(raw.spec.messages)?,
            constructors: index(raw.spec.constructors)?,
            events,
        })
    }

    /// The type registry.
    pub fn registry(&self) -> &PortableRegistry {
        &self.registry
    }

    /// A message by name.
    pub fn message(&self, label: &str) -> Result<&Message, ChainError> {
        self.messages
            .get(label)
            .ok_or_else(|| ChainError::Bundle(format!("{} has no message {label}", self.name)))
    }

    /// A constructor by name.
    pub fn constructor(&self, label: &str) -> Result<&Message, ChainError> {
        self.constructors
            .get(label)
            .ok_or_else(|| ChainError::Bundle(format!("{} has no constructor {label}", self.name)))
    }

    /// The selector of a message.
    pub fn selector(&self, label: &str) -> Result<[u8; 4], ChainError> {
        Ok(self.message(label)?.selector)
    }

    fn encode(&self, spec: &Message, args: &[Arg<'_>]) -> Result<Vec<u8>, ChainError> {
        if args.len() != spec.args.len() {
            return Err(ChainError::Bundle(format!(
                "{}.{} takes {} arguments, given {}",
                self.name,
                spec.label,
                spec.args.len(),
                args.len()
            )));
        }
        let mut out = spec.selector.to_vec();
        for (value, (name, ty)) in args.iter().zip(&spec.args) {
            value
                .encode_arg(*ty, &self.registry, &mut out)
                .map_err(|e| {
                    ChainError::Bundle(format!(
                        "{}.{}: argument {name} does not fit the contract's type: {e}",
                        self.name, spec.label
                    ))
                })?;
        }
        Ok(out)
    }

    /// The input of a message call: selector, then each argument encoded as the ABI's type.
    pub fn call_data(&self, label: &str, args: &[Arg<'_>]) -> Result<Vec<u8>, ChainError> {
        self.encode(self.message(label)?, args)
    }

    /// The input of a constructor.
    pub fn constructor_data(&self, label: &str, args: &[Arg<'_>]) -> Result<Vec<u8>, ChainError> {
        self.encode(self.constructor(label)?, args)
    }

    fn variants(&self, id: u32) -> Option<&[scale_info::Variant<PortableForm>]> {
        match &self.registry.resolve(id)?.type_def {
            scale_info::TypeDef::Variant(v) => Some(&v.variants),
            _ => None,
        }
    }

    /// The type of field 0 of variant `name` of enum `id` (the `T` of `Ok(T)`).
    fn variant_field(&self, id: u32, name: &str) -> Option<u32> {
        self.variants(id)?
            .iter()
            .find(|v| v.name == name)?
            .fields
            .first()
            .map(|f| f.ty.id)
    }

    fn is_result(&self, id: u32) -> bool {
        self.registry
            .resolve(id)
            .is_some_and(|t| t.path.segments == ["Result"])
    }

    /// Decodes a message's answer (the bytes the contract returned, reverted or not) as
    /// `T`. A `Result`-returning message decodes as `Ok(T)` or `Err(name of the contract's
    /// error variant)`; any other message as `Ok(T)`.
    pub fn decode_answer<T: DecodeAsType>(
        &self,
        label: &str,
        data: &[u8],
    ) -> Result<Result<T, String>, ChainError> {
        self.decode_with(self.message(label)?, data)
    }

    /// Decodes a constructor's answer: `Ok(())` or `Err(error name)`.
    pub fn decode_constructor_answer(
        &self,
        label: &str,
        data: &[u8],
    ) -> Result<Result<(), String>, ChainError> {
        self.decode_with(self.constructor(label)?, data)
    }

    fn decode_with<T: DecodeAsType>(
        &self,
        spec: &Message,
        data: &[u8],
    ) -> Result<Result<T, String>, ChainError> {
        let label = spec.label.as_str();
        let bad = |detail: String| ChainError::Decode {
            contract: self.name.clone(),
            message: label.to_string(),
            detail,
        };
        let outer = spec
            .return_type
            .ok_or_else(|| bad("the ABI gives no return type".into()))?;
        let (first, rest) = data
            .split_first()
            .ok_or_else(|| bad("empty answer".into()))?;
        match first {
            0 => {}
            // `Err(LangError::CouldNotReadInput)`: the selector or input was not understood.
            1 => {
                return Ok(Err(format!(
                    "LangError #{}",
                    rest.first().copied().unwrap_or(0)
                )));
            }
            other => return Err(bad(format!("answer starts with {other}, not a Result"))),
        }
        let inner = self
            .variant_field(outer, "Ok")
            .ok_or_else(|| bad("the return type is not Result<T, LangError>".into()))?;
        let decode_exact = |ty: u32, bytes: &[u8]| -> Result<T, ChainError> {
            let mut cursor = bytes;
            let value = T::decode_as_type(&mut cursor, ty, &self.registry)
                .map_err(|e| bad(format!("answer does not fit: {e}")))?;
            if !cursor.is_empty() {
                return Err(bad(format!("{} bytes left after the answer", cursor.len())));
            }
            Ok(value)
        };
        if !self.is_result(inner) {
            return decode_exact(inner, rest).map(Ok);
        }
        match rest.split_first() {
            Some((0, ok)) => {
                let ty = self
                    .variant_field(inner, "Ok")
                    .ok_or_else(|| bad("no Ok type".into()))?;
                decode_exact(ty, ok).map(Ok)
            }
            Some((1, err)) => {
                let ty = self
                    .variant_field(inner, "Err")
                    .ok_or_else(|| bad("no Err type".into()))?;
                // Our errors are field-less enums: exactly one byte, a known variant.
                let [index] = err else {
                    return Err(bad(format!(
                        "an error of {} bytes, expected one",
                        err.len()
                    )));
                };
                let variant = self
                    .variants(ty)
                    .and_then(|vs| vs.iter().find(|v| v.index == *index))
                    .ok_or_else(|| bad(format!("unknown error variant #{index}")))?;
                Ok(Err(variant.name.clone()))
            }
            _ => Err(bad(format!("unexpected answer 0x{}", hex::encode(data)))),
        }
    }

    /// Decodes an event this contract emitted: the spec with `topics[0]` as signature, or
    /// for anonymous events the one whose fields decode `data` exactly.
    pub fn decode_event(&self, data: &[u8], topics: &[[u8; 32]]) -> Option<Event> {
        // Dynamic decoding trusts length prefixes; a hostile node's odd bytes must not take
        // the process down (events are only logged).
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.decode_event_inner(data, topics)
        }))
        .ok()
        .flatten()
    }

    fn decode_event_inner(&self, data: &[u8], topics: &[[u8; 32]]) -> Option<Event> {
        let decode = |spec: &EventSpec| -> Option<Event> {
            let mut cursor = data;
            let mut fields = Vec::with_capacity(spec.args.len());
            for (name, ty) in &spec.args {
                let value =
                    scale_value::scale::decode_as_type(&mut cursor, *ty, &self.registry).ok()?;
                fields.push((name.clone(), value.remove_context()));
            }
            cursor.is_empty().then(|| Event {
                contract: self.name.clone(),
                name: spec.label.clone(),
                fields,
            })
        };
        if let Some(spec) = topics.first().and_then(|topic| {
            self.events
                .iter()
                .find(|e| e.signature_topic.as_ref() == Some(topic))
        }) {
            return decode(spec);
        }
        self.events
            .iter()
            .filter(|e| e.signature_topic.is_none())
            .find_map(decode)
    }
}

#[cfg(test)]
mod tests {
    use parity_scale_codec::Encode;

    use super::*;
    use crate::contracts::{Address, Params};

    fn bundle(name: &str) -> Bundle {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../contracts/bundles")
            .join(format!("{name}.contract"));
        Bundle::load(&path).expect("the committed bundle loads")
    }

    #[test]
    fn calls_are_encoded_as_the_abi_types_say() {
        let pool = bundle("reward_pool");
        let (epoch, base, root, total, batch) = (7u64, Some(6u64), [1u8; 32], 5u128, [2u8; 32]);
        let (subsidy, parts) = (3u128, vec![[8u8; 32]]);
        let data = pool
            .call_data(
                "submit",
                &[
                    arg(&epoch),
                    arg(&base),
                    arg(&root),
                    arg(&total),
                    arg(&batch),
                    arg(&subsidy),
                    arg(&parts),
                ],
            )
            .unwrap();
        let mut expected = pool.selector("submit").unwrap().to_vec();
        (epoch, base, root, total, batch, subsidy, parts).encode_to(&mut expected);
        assert_eq!(data, expected);
        // A funding part: what the contract hashes is what the call carries.
        let part = crate::contracts::FundingPart {
            draws: vec![(4, 10)],
            debits: vec![([6u8; 32], 11)],
        };
        let data = pool
            .call_data(
                "fund_part",
                &[arg(&epoch), arg(&2u32), arg(&part.draws), arg(&part.debits)],
            )
            .unwrap();
        let mut expected = pool.selector("fund_part").unwrap().to_vec();
        let args = (epoch, 2u32, part.draws.clone(), part.debits.clone());
        args.encode_to(&mut expected);
        assert_eq!(data, expected);
        assert_eq!(
            part.hash(epoch, 2),
            <dsi_protocol::merkle::Keccak256 as dsi_protocol::MerkleHasher>::hash(&args.encode())
        );
        // The H160 of a claim is one field of 20 bytes.
        let claim = pool
            .call_data(
                "claim",
                &[
                    arg(&1u64),
                    arg(&[3u8; 32]),
                    arg(&Address([4; 20])),
                    arg(&9u128),
                    arg(&vec![[5u8; 32]]),
                ],
            )
            .unwrap();
        let mut expected = pool.selector("claim").unwrap().to_vec();
        (1u64, [3u8; 32], [4u8; 20], 9u128, vec![[5u8; 32]]).encode_to(&mut expected);
        assert_eq!(claim, expected);
        // The market: encoded as the protocol's `MarketParams`, whose bytes the oracle reads.
        let multipliers = bundle("multipliers");
        let market = dsi_protocol::reward::MarketParams {
            price_per_byte: 1_234_567_890_123,
            fee: dsi_protocol::fixed::Ppm(2),
            vetting_audits: 3,
            unvetted_share: dsi_protocol::fixed::Ppm(4),
        };
        let data = multipliers
            .call_data(
                "set_market",
                &[arg(&crate::contracts::Market::from(market))],
            )
            .unwrap();
        let mut expected = multipliers.selector("set_market").unwrap().to_vec();
        market.encode_to(&mut expected);
        assert_eq!(data, expected);
    }

    #[test]
    fn arguments_of_the_wrong_shape_are_refused_by_name() {
        let pool = bundle("reward_pool");
        let error = pool
            .call_data("claimed", &[arg(&7u32)])
            .unwrap_err()
            .to_string();
        assert!(error.contains("argument seeder"), "{error}");
        let error = pool.call_data("claimed", &[]).unwrap_err().to_string();
        assert!(error.contains("takes 1 arguments, given 0"), "{error}");
        let error = pool.call_data("drain", &[]).unwrap_err().to_string();
        assert!(error.contains("no message drain"), "{error}");
    }

    #[test]
    fn answers_and_errors_decode_by_name() {
        let pool = bundle("reward_pool");
        // Ok(Err(AlreadyVoted)): the third variant of reward_pool's Error.
        let refused = pool.decode_answer::<bool>("submit", &[0, 1, 2]).unwrap();
        assert_eq!(refused, Err("AlreadyVoted".to_string()));
        let accepted = pool.decode_answer::<bool>("submit", &[0, 0, 1]).unwrap();
        assert_eq!(accepted, Ok(true));
        // A wrong shape is an error, not a value: truncated or padded errors, unknown
        // variants, a first byte that is no Result.
        assert!(pool.decode_answer::<bool>("submit", &[0, 1]).is_err());
        assert!(pool.decode_answer::<bool>("submit", &[0, 1, 2, 0]).is_err());
        assert!(pool.decode_answer::<bool>("submit", &[0, 1, 200]).is_err());
        assert!(pool.decode_answer::<bool>("submit", &[2, 0, 1]).is_err());
        assert!(pool.decode_answer::<u128>("submit", &[0, 0, 1]).is_err());
        assert!(pool.decode_answer::<bool>("submit", &[0, 0, 1, 9]).is_err());
        let multipliers = bundle("multipliers");
        let params = Params::from(dsi_protocol::reward::RewardParams::default());
        let mut answer = vec![0u8];
        (
            (
                params.rarity.base,
                params.rarity.slope,
                params.rarity.min,
                params.rarity.max,
            ),
            params.target_replication,
            (
                params.demand.base,
                params.demand.slope,
                params.demand.min,
                params.demand.max,
            ),
            params.bandwidth_share,
        )
            .encode_to(&mut answer);
        let decoded: Params = multipliers
            .decode_answer("params", &answer)
            .unwrap()
            .unwrap();
        assert_eq!(decoded, params);
    }

    #[test]
    fn anonymous_events_decode_with_the_emitting_contracts_bundle() {
        let pool = bundle("reward_pool");
        let data = ([9u8; 20], 1_000u128).encode();
        let event = pool.decode_event(&data, &[]).expect("an event of the pool");
        assert_eq!(event.name, "Funded");
        assert!(
            event.to_string().starts_with("reward_pool.Funded { from:"),
            "{event}"
        );
        assert!(pool.decode_event(&[1, 2, 3], &[]).is_none());
    }
}
