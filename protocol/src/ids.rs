//! Identifier newtypes. Every id prints as lowercase hex and parses back from it
//! (`Display`/`FromStr` round-trip); [`ChunkId::short`] and friends give an 8-character form
//! for logs.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};

/// Why a string could not be parsed as an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The string has the wrong number of hex digits.
    #[error("a {kind} is {expected} hex characters, got {actual}")]
    Length {
        /// What was being parsed (`chunk id`, `node id`, ...).
        kind: &'static str,
        /// Expected number of characters.
        expected: usize,
        /// Number of characters given.
        actual: usize,
    },
    /// The string has a character that is not a hex digit.
    #[error("a {kind} must be hex (0-9, a-f)")]
    NotHex {
        /// What was being parsed.
        kind: &'static str,
    },
    /// The string is not a decimal number.
    #[error("a {kind} must be a decimal number")]
    NotNumber {
        /// What was being parsed.
        kind: &'static str,
    },
    /// The network id has characters outside `a-z`, `0-9`, `-` or a bad length.
    #[error("a network id is 1 to 32 characters of a-z, 0-9 and '-'")]
    BadNetwork,
}

fn parse_hex<const N: usize>(kind: &'static str, s: &str) -> Result<[u8; N], ParseIdError> {
    if s.len() != 2 * N {
        return Err(ParseIdError::Length {
            kind,
            expected: 2 * N,
            actual: s.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError::NotHex { kind })?;
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A short, log-friendly rendering of an id: its first four bytes in hex.
#[derive(Clone, Copy)]
pub struct Short<'a>(&'a [u8]);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0[..self.0.len().min(4)])
    }
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, MaxEncodedLen)]
        #[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// A short form for logs (first 4 bytes in hex).
            pub fn short(&self) -> Short<'_> {
                Short(&self.0)
            }

            /// Parses from a byte slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>($kind, s).map(Self)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <alloc::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

byte_id!(
    /// BLAKE3-256 of a chunk's bytes.
    ChunkId, 32, "chunk id"
);
byte_id!(
    /// BLAKE3-256 of [`crate::MANIFEST_DOMAIN`] followed by a manifest's canonical SCALE
    /// encoding: the id of a file (or any content) in the swarm.
    ContentId, 32, "content id"
);
byte_id!(
    /// A node's ed25519 public key: pseudonymous identity of seeders and downloaders.
    NodeId, 32, "node id"
);
byte_id!(
    /// An ed25519 signature.
    Signature, 64, "signature"
);
byte_id!(
    /// A fresh random value that makes one storage audit challenge unlike any other.
    AuditNonce, 32, "audit nonce"
);

/// A 20-byte (H160) account that receives a seeder's rewards on chain. Displays as
/// `0x`-prefixed hex; parses with or without the prefix.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, MaxEncodedLen,
)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
pub struct PayoutAccount(pub [u8; 20]);

impl PayoutAccount {
    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for PayoutAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PayoutAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayoutAccount({self})")
    }
}

impl FromStr for PayoutAccount {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        parse_hex::<20>("payout account", s).map(Self)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for PayoutAccount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for PayoutAccount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <alloc::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An epoch number: the reward period a receipt belongs to. See [`crate::EpochSchedule`].
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Encode, Decode, MaxEncodedLen,
)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Epoch(pub u64);

impl Epoch {
    /// The following epoch (saturating).
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Epoch {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(Self)
            .map_err(|_| ParseIdError::NotNumber { kind: "epoch" })
    }
}

/// The name of a DSI network (`dsi-local`, `dsi-devnet`, ...). It is part of every receipt's
/// signing bytes, so a receipt signed for one network is worthless on another.
/// 1 to 32 characters of `a-z`, `0-9` and `-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
pub struct NetworkId(String);

impl NetworkId {
    /// The network used by local development setups.
    pub const LOCAL: &'static str = "dsi-local";

    /// Validates and wraps a network name.
    pub fn new(name: &str) -> Result<Self, ParseIdError> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(String::from(name)))
        } else {
            Err(ParseIdError::BadNetwork)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for NetworkId {
    fn default() -> Self {
        Self(String::from(Self::LOCAL))
    }
}

impl Decode for NetworkId {
    fn decode<I: parity_scale_codec::Input>(
        input: &mut I,
    ) -> Result<Self, parity_scale_codec::Error> {
        let name = String::decode(input)?;
        Self::new(&name).map_err(|_| "invalid network id".into())
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NetworkId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for NetworkId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for NetworkId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <alloc::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "blake3")]
impl ChunkId {
    /// The id of a chunk: BLAKE3-256 of its bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn ids_round_trip_through_hex() {
        let id = ChunkId([0xab; 32]);
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<ChunkId>().unwrap(), id);
        assert_eq!(alloc::format!("{}", id.short()), "abababab");
        assert_eq!(alloc::format!("{id:?}"), "ChunkId(abababab)");
        let sig = Signature([7; 64]);
        assert_eq!(sig.to_string().parse::<Signature>().unwrap(), sig);
        let acct = PayoutAccount([0x11; 20]);
        assert!(acct.to_string().starts_with("0x1111"));
        assert_eq!(acct.to_string().parse::<PayoutAccount>().unwrap(), acct);
        assert_eq!("11".repeat(20).parse::<PayoutAccount>().unwrap(), acct);
        assert_eq!("42".parse::<Epoch>().unwrap(), Epoch(42));
    }

    #[test]
    fn bad_ids_are_named_errors() {
        assert_eq!(
            "abc".parse::<NodeId>(),
            Err(ParseIdError::Length {
                kind: "node id",
                expected: 64,
                actual: 3
            })
        );
        assert_eq!(
            "zz".repeat(32).parse::<ContentId>(),
            Err(ParseIdError::NotHex { kind: "content id" })
        );
        assert!("x".parse::<Epoch>().is_err());
        assert!(NetworkId::new("").is_err());
        assert!(NetworkId::new("Upper").is_err());
        assert!(NetworkId::new(&"a".repeat(33)).is_err());
        assert_eq!(
            NetworkId::new("dsi-devnet-2").unwrap().as_str(),
            "dsi-devnet-2"
        );
    }

    #[test]
    fn network_id_decode_validates() {
        let bad = String::from("NOPE").encode();
        assert!(NetworkId::decode(&mut &bad[..]).is_err());
        let good = NetworkId::default().encode();
        assert_eq!(
            NetworkId::decode(&mut &good[..]).unwrap(),
            NetworkId::default()
        );
    }
}
