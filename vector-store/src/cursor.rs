use crate::VectorError;

/// Where a paged query stands: the next result page of one query on one index.
///
/// Opaque to callers; printed as 40 hex characters. It pins the index and the query (vector,
/// `k`, `nprobe`, re-rank depth), so a cursor given with another query is refused instead of
/// silently returning the wrong results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) index: [u8; 8],
    pub(crate) query: [u8; 8],
    pub(crate) page: u32,
}

impl Cursor {
    /// The zero-based result page this cursor asks for.
    pub fn page(&self) -> u32 {
        self.page
    }
}

impl core::fmt::Display for Cursor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self
            .index
            .iter()
            .chain(&self.query)
            .chain(&self.page.to_be_bytes())
        {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl core::str::FromStr for Cursor {
    type Err = VectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut bytes = [0u8; 20];
        if s.len() != 40 || hex::decode_to_slice(s, &mut bytes).is_err() {
            return Err(VectorError::invalid(
                "cursor",
                format!("{s:?} is not a cursor (40 hex characters printed by a query)"),
            ));
        }
        let mut index = [0u8; 8];
        let mut query = [0u8; 8];
        index.copy_from_slice(&bytes[..8]);
        query.copy_from_slice(&bytes[8..16]);
        let page = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        Ok(Self { index, query, page })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            index: [1; 8],
            query: [0xab; 8],
            page: 3,
        };
        let s = c.to_string();
        assert_eq!(s.len(), 40);
        assert_eq!(s.parse::<Cursor>().unwrap(), c);
        assert!("xyz".parse::<Cursor>().is_err());
    }
}
