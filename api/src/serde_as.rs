//! JSON forms that serde does not give by itself: `u128` amounts as decimal strings (JSON
//! numbers lose precision above 2^53) and 32-byte hashes as `0x`-prefixed hex.

/// serde: `u128` as a decimal string (`"1000000000000"`).
pub mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes.
    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    /// Deserializes; only ASCII digits are accepted.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(serde::de::Error::custom(format!(
                "{text:?} is not a decimal amount"
            )));
        }
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// serde: `Option<u128>` as a decimal string or `null`.
pub mod decimal_option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes.
    pub fn serialize<S: Serializer>(value: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => s.collect_str(value),
            None => s.serialize_none(),
        }
    }

    /// Deserializes `null` or a decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
            None => Ok(None),
            Some(text) => {
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(serde::de::Error::custom(format!(
                        "{text:?} is not a decimal amount"
                    )));
                }
                text.parse().map(Some).map_err(serde::de::Error::custom)
            }
        }
    }
}

fn parse_hash<E: serde::de::Error>(text: &str) -> Result<[u8; 32], E> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| E::custom(format!("{text:?} does not start with 0x")))?;
    let mut out = [0; 32];
    hex::decode_to_slice(digits, &mut out).map_err(E::custom)?;
    Ok(out)
}

/// serde: a 32-byte hash as `0x` + 64 lowercase hex digits.
pub mod hex_32 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes.
    pub fn serialize<S: Serializer>(value: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(value)))
    }

    /// Deserializes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        super::parse_hash(&text)
    }
}

/// serde: a list of 32-byte hashes, each as `0x` + 64 hex digits.
pub mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes.
    pub fn serialize<S: Serializer>(value: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(value.iter().map(|h| format!("0x{}", hex::encode(h))))
    }

    /// Deserializes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|text| super::parse_hash(text)).collect()
    }
}
