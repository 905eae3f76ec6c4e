//! Accounts: signing keys read from 0600 files, the dev accounts' table, and the H160
//! address pallet-revive maps each account to.
//!
//! A secret URI (`//Alice`, a mnemonic, `0x<seed>`) is parsed once, in this process; the
//! [`Signer`] keeps the key pair and prints only its public account, so no secret reaches a
//! command line, a child's environment or a log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::str::FromStr;

use subxt::utils::AccountId32;
use subxt_signer::SecretUri;
use subxt_signer::sr25519::Keypair;

use crate::ChainError;

/// The dev accounts every `--dev` chain funds: one table for deploy, devnet and tests.
pub const DEV_ACCOUNTS: [&str; 6] = ["alice", "bob", "charlie", "dave", "eve", "ferdie"];

/// A signing account.
#[derive(Clone)]
pub struct Signer {
    pair: Keypair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.account())
    }
}

/// Reads a secret from a file that only its owner may read (mode 0600 or stricter).
pub fn read_secret_file(path: &Path) -> Result<String, ChainError> {
    let bad = |detail: String| ChainError::Key(format!("{}: {detail}", path.display()));
    if path.as_os_str().is_empty() {
        return Err(ChainError::Key("no key file given".into()));
    }
    let metadata = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(bad(format!(
            "readable by other users; run `chmod 600 {}`",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    Ok(text.trim().to_string())
}

/// Writes a secret to a new 0600 file.
pub fn write_secret_file(path: &Path, secret: &str) -> Result<(), ChainError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |e: std::io::Error| ChainError::Key(format!("{}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(bad)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bad)?;
    file.write_all(format!("{secret}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(bad)
}

/// The account reads are dry-run from when no key is given ([`crate::Chain::reader`]):
/// Ethereum-derived (its last 12 bytes are `0xEE`), so pallet-revive takes it as an origin
/// without a mapping, and nobody holds its key. Dry-runs move no money and need no balance.
pub const READER_ORIGIN: [u8; 32] = {
    let mut account = [0xEE; 32];
    let name = *b"dsi/read-only-origin";
    let mut i = 0;
    while i < name.len() {
        account[i] = name[i];
        i += 1;
    }
    account
};

impl Signer {
    /// The key of a secret URI. The error never repeats the secret.
    pub fn from_secret(secret: &str) -> Result<Self, ChainError> {
        let uri = SecretUri::from_str(secret.trim())
            .map_err(|_| ChainError::Key("not a valid secret URI".into()))?;
        let pair = Keypair::from_uri(&uri)
            .map_err(|_| ChainError::Key("cannot derive a key from the secret URI".into()))?;
        Ok(Self { pair })
    }

    /// The key whose secret URI is in `path` (0600).
    pub fn from_file(path: &Path) -> Result<Self, ChainError> {
        Self::from_secret(&read_secret_file(path)?)
            .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))
    }

    /// A dev account by name (`alice`..`ferdie`, any case, with or without `//`).
    pub fn dev(name: &str) -> Result<Self, ChainError> {
        let name = name.trim_start_matches("//").to_lowercase();
        let pair = match name.as_str() {
            "alice" => subxt_signer::sr25519::dev::alice(),
            "bob" => subxt_signer::sr25519::dev::bob(),
            "charlie" => subxt_signer::sr25519::dev::charlie(),
            "dave" => subxt_signer::sr25519::dev::dave(),
            "eve" => subxt_signer::sr25519::dev::eve(),
            "ferdie" => subxt_signer::sr25519::dev::ferdie(),
            // The name is not repeated: it could be a secret given by mistake.
            _ => {
                return Err(ChainError::Key(format!(
                    "not a dev account name (one of {})",
                    DEV_ACCOUNTS.join(", ")
                )));
            }
        };
        Ok(Self { pair })
    }

    /// The key pair.
    pub fn pair(&self) -> &Keypair {
        &self.pair
    }

    /// The substrate account.
    pub fn account(&self) -> AccountId32 {
        AccountId32(self.pair.public_key().0)
    }

    /// The H160 address pallet-revive maps this account to.
    pub fn address(&self) -> [u8; 20] {
        h160_of(&self.account().0)
    }
}

/// The H160 address of a substrate account (pallet-revive's `AccountId32Mapper`): an
/// Ethereum-derived account (last 12 bytes `0xEE`) is its first 20 bytes, any other the
/// last 20 bytes of its keccak-256.
pub fn h160_of(account: &[u8; 32]) -> [u8; 20] {
    let mut out = [0u8; 20];
    if account[20..].iter().all(|b| *b == 0xEE) {
        out.copy_from_slice(&account[..20]);
    } else {
        use dsi_protocol::merkle::MerkleHasher;
        let hash = dsi_protocol::merkle::Keccak256::hash(account);
        out.copy_from_slice(&hash[12..]);
    }
    out
}

/// Parses an account given as a dev name (`alice`) or a `0x` H160.
pub fn parse_address(text: &str) -> Result<[u8; 20], ChainError> {
    if let Some(hex) = text.strip_prefix("0x") {
        return hex_address(hex)
            .ok_or_else(|| ChainError::Key(format!("{text} is not a 20-byte hex address")));
    }
    Signer::dev(text).map(|s| s.address()).map_err(|_| {
        ChainError::Key(format!(
            "unknown account {text} (a dev name alice..ferdie or a 0x address)"
        ))
    })
}

fn hex_address(hex: &str) -> Option<[u8; 20]> {
    hex::decode(hex).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_addresses_match_pallet_revive() {
        // The addresses ink-node gives its dev accounts (what scripts/deploy hard-coded).
        let expected = [
            ("alice", "9621dde636de098b43efb0fa9b61facfe328f99d"),
            ("bob", "41dccbd49b26c50d34355ed86ff0fa9e489d1e01"),
            ("charlie", "e2235a2ffe0354b27a6a1c543be6bf2920ff2134"),
            ("dave", "a799a942f85792ddc0028a7dd32b582e75d5e57b"),
            ("eve", "203aedc6e1ee061f55ec52309d5ac8674d4e8352"),
            ("ferdie", "21a8aa80a3b05b3dd74e337f9a8f5ae4a8e39f22"),
        ];
        for (name, address) in expected {
            assert_eq!(
                hex::encode(Signer::dev(name).unwrap().address()),
                address,
                "{name}"
            );
        }
    }

    #[test]
    fn secrets_come_from_private_files_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.suri");
        write_secret_file(&path, "//Alice//dsi-test-secret").unwrap();
        let signer = Signer::from_file(&path).unwrap();
        assert!(!format!("{signer:?}").contains("dsi-test-secret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = Signer::from_file(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not a uri at all //x///").unwrap();
        let error = Signer::from_file(&path).unwrap_err().to_string();
        assert!(
            !error.contains("not a uri"),
            "the error repeats the secret: {error}"
        );
    }

    #[test]
    fn addresses_parse_from_names_and_hex() {
        assert_eq!(
            parse_address("Bob").unwrap(),
            Signer::dev("bob").unwrap().address()
        );
        assert_eq!(
            parse_address("0x0101010101010101010101010101010101010101").unwrap(),
            [1; 20]
        );
        assert!(parse_address("0x01").is_err());
        assert!(parse_address("mallory").is_err());
    }
}
