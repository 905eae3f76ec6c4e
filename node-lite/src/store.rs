//! The chunk store: chunks and manifests on disk, content-addressed.
//!
//! - A chunk lives at `chunks/<first byte hex>/<id hex>`; its name is the BLAKE3 of its
//!   bytes, so a chunk is stored once however many files contain it.
//! - A manifest lives at `manifests/<content id hex>.manifest` (canonical SCALE bytes).
//!   `add` writes it last, after every chunk is durable, so a manifest on disk means its
//!   content was complete when it was added.
//! - Writes go to a temporary file that is renamed into place: a crash leaves either the old
//!   state or the new, never a torn chunk under its final name.
//! - A chunk that fails verification is moved to `quarantine/` and reported; it then counts
//!   as missing and can be fetched again (`node-lite verify --repair`).
//!
//! All functions here are blocking; async callers use `spawn_blocking`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use dsi_protocol::manifest::{self, content_id_of_bytes};
use dsi_protocol::{ChunkId, ContentId, Manifest, ManifestError};
use serde::Serialize;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A chunk's bytes do not hash to its id; it was moved to quarantine.
    #[error("chunk {id} is corrupt on disk (its bytes hash to {actual}); moved to quarantine")]
    Corrupt {
        /// The chunk.
        id: ChunkId,
        /// What its bytes hash to.
        actual: ChunkId,
    },
    /// A manifest file does not match its content id or is invalid.
    #[error("manifest {content} on disk is damaged: {reason}")]
    BadManifest {
        /// The content id.
        content: ContentId,
        /// What is wrong.
        reason: String,
    },
    /// The content cannot be described by a valid manifest (bad chunk size or name).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What `add_file` did.
#[derive(Debug, Clone)]
pub struct AddReport {
    /// The content id of the added file.
    pub content_id: ContentId,
    /// Its manifest.
    pub manifest: Manifest,
    /// Chunks written now (the rest were already stored).
    pub chunks_new: usize,
    /// Bytes written now.
    pub bytes_new: u64,
}

/// What a full verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Chunk files hashed.
    pub chunks_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Chunks whose bytes did not match their id (now in quarantine).
    pub corrupt: Vec<ChunkId>,
    /// Chunks that manifests list but the store does not have, per content.
    pub missing: Vec<(ContentId, Vec<usize>)>,
}

/// Which chunks of a manifest a node holds: bit `i` (byte `i / 8`, least significant bit
/// first) is chunk `i`. Serialized as hex.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: usize,
}

impl Bitfield {
    /// All clear, for `len` chunks.
    pub fn new(len: usize) -> Self {
        Self {
            bytes: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// Number of chunks covered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it covers no chunks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether chunk `i` is held.
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.bytes[i / 8] & (1 << (i % 8)) != 0
    }

    /// Marks chunk `i` (ignored past the end).
    pub fn set(&mut self, i: usize, value: bool) {
        if i < self.len {
            if value {
                self.bytes[i / 8] |= 1 << (i % 8);
            } else {
                self.bytes[i / 8] &= !(1 << (i % 8));
            }
        }
    }

    /// Number of chunks held.
    pub fn count(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Hex of the bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// Parses hex for `len` chunks; bits past `len` must be clear.
    pub fn from_hex(text: &str, len: usize) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        if bytes.len() != len.div_ceil(8) {
            return None;
        }
        let field = Self { bytes, len };
        let extra = (len..field.bytes.len() * 8).any(|i| field.bytes[i / 8] & (1 << (i % 8)) != 0);
        (!extra).then_some(field)
    }
}

/// Chunks and manifests under a data directory.
#[derive(Clone, Debug)]
pub struct ChunkStore {
    root: PathBuf,
}

impl ChunkStore {
    /// Opens (creating its folders if needed) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        for sub in ["chunks", "manifests", "quarantine", "pins"] {
            let path = data_dir.join(sub);
            fs::create_dir_all(&path).map_err(io_error("cannot create", &path))?;
        }
        Ok(Self {
            root: data_dir.to_path_buf(),
        })
    }

    /// The data directory the store lives in.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Where chunk `id` is (or would be) stored.
    pub fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_string();
        self.root.join("chunks").join(&hex[..2]).join(hex)
    }

    fn manifest_path(&self, content: &ContentId) -> PathBuf {
        self.root
            .join("manifests")
            .join(format!("{content}.manifest"))
    }

    /// Whether the store has a file for chunk `id` (not verified).
    pub fn has_chunk(&self, id: &ChunkId) -> bool {
        self.chunk_path(id).is_file()
    }

    /// Stores verified chunk bytes unless already present. Returns whether it wrote them.
    /// With `sync`, the file is flushed to disk before it is renamed into place.
    pub fn put_chunk(&self, id: &ChunkId, bytes: &[u8], sync: bool) -> Result<bool, StoreError> {
        let path = self.chunk_path(id);
        if path.is_file() {
            return Ok(false);
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_error("cannot create", &dir))?;
        write_atomically(&dir, &path, bytes, sync)?;
        Ok(true)
    }

    /// Reads chunk `id` without verifying it. `None` if it is not stored.
    pub fn read_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.chunk_path(id);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot read", &path)(e)),
        }
    }

    /// Reads chunk `id` and checks its hash. A chunk that does not match is moved to
    /// quarantine and reported as [`StoreError::Corrupt`].
    pub fn read_chunk_verified(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = self.read_chunk(id)? else {
            return Ok(None);
        };
        let actual = ChunkId::of(&bytes);
        if actual != *id {
            self.quarantine(id)?;
            return Err(StoreError::Corrupt { id: *id, actual });
        }
        Ok(Some(bytes))
    }

    /// Moves chunk `id` to `quarantine/` (keeping earlier quarantined copies).
    pub fn quarantine(&self, id: &ChunkId) -> Result<(), StoreError> {
        let from = self.chunk_path(id);
        let to = self
            .root
            .join("quarantine")
            .join(format!("{id}.{}", dsi_protocol::now_ms()));
        match fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot quarantine", &from)(e)),
        }
    }

    /// Stores a manifest durably and returns its content id.
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<ContentId, StoreError> {
        manifest.validate()?;
        let bytes = manifest.to_bytes();
        let content = content_id_of_bytes(&bytes);
        let path = self.manifest_path(&content);
        if !path.is_file() {
            write_atomically(&self.root.join("manifests"), &path, &bytes, true)?;
        }
        Ok(content)
    }

    /// The canonical bytes of manifest `content`, checked against the id. `None` if absent.
    pub fn manifest_bytes(&self, content: &ContentId) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.manifest_path(content);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("cannot read", &path)(e)),
        };
        if content_id_of_bytes(&bytes) != *content {
            return Err(StoreError::BadManifest {
                content: *content,
                reason: "its bytes do not hash to its content id".into(),
            });
        }
        Ok(Some(bytes))
    }

    /// Manifest `content`, checked and decoded. `None` if absent.
    pub fn manifest(&self, content: &ContentId) -> Result<Option<Manifest>, StoreError> {
        let Some(bytes) = self.manifest_bytes(content)? else {
            return Ok(None);
        };
        Manifest::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| StoreError::BadManifest {
                content: *content,
                reason: e.to_string(),
            })
    }

    /// Every manifest in the store, by content id.
    pub fn list(&self) -> Result<Vec<(ContentId, Manifest)>, StoreError> {
        let dir = self.root.join("manifests");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error("cannot list", &dir))? {
            let entry = entry.map_err(io_error("cannot list", &dir))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".manifest")) else {
                continue;
            };
            let Ok(content) = id.parse::<ContentId>() else {
                continue;
            };
            if let Some(manifest) = self.manifest(&content)? {
                out.push((content, manifest));
            }
        }
        out.sort_by(|a, b| a.1.name.cmp(&b.1.name).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Every content held, with how many of its chunks are stored (`GET /v1/content`,
    /// `node-lite list`).
    pub fn entries(&self) -> Result<Vec<dsi_api::node::ContentEntry>, StoreError> {
        Ok(self
            .list()?
            .into_iter()
            .map(|(content_id, m)| dsi_api::node::ContentEntry {
                content_id,
                held: self.held(&m).count() as u64,
                chunks: m.chunk_count() as u64,
                name: m.name,
                size: m.size,
                chunk_size: m.chunk_size,
            })
            .collect())
    }

    /// Which chunks of `manifest` the store has.
    pub fn held(&self, manifest: &Manifest) -> Bitfield {
        let mut field = Bitfield::new(manifest.chunk_count());
        for (i, id) in manifest.chunks.iter().enumerate() {
            field.set(i, self.has_chunk(id));
        }
        field
    }

    /// Splits a file into chunks of `chunk_size`, stores the new ones, makes them durable,
    /// then stores the manifest. `progress` is called with bytes read so far.
    pub fn add_file(
        &self,
        path: &Path,
        name: &str,
        chunk_size: u32,
        progress: &mut dyn FnMut(u64),
    ) -> Result<AddReport, StoreError> {
        manifest::validate_chunk_size(chunk_size)?;
        manifest::validate_name(name)?;
        let mut file = File::open(path).map_err(io_error("cannot open", path))?;
        let size = file
            .metadata()
            .map_err(io_error("cannot stat", path))?
            .len();
        let mut buffer = vec![0u8; chunk_size as usize];
        let mut chunks = Vec::new();
        let mut written = Vec::new();
        let mut bytes_new = 0u64;
        let mut read_total = 0u64;
        loop {
            let n = read_full(&mut file, &mut buffer).map_err(io_error("cannot read", path))?;
            if n == 0 {
                break;
            }
            let bytes = &buffer[..n];
            let id = ChunkId::of(bytes);
            if self.put_chunk(&id, bytes, false)? {
                written.push(id);
                bytes_new += n as u64;
            }
            chunks.push(id);
            read_total += n as u64;
            progress(read_total);
        }
        if read_total != size {
            return Err(StoreError::Io {
                action: "file changed while being read",
                path: path.to_path_buf(),
                source: io::Error::other(format!("expected {size} bytes, read {read_total}")),
            });
        }
        self.sync_chunks(&written)?;
        let manifest = Manifest::new(name, read_total, chunk_size, chunks)?;
        let content_id = self.put_manifest(&manifest)?;
        Ok(AddReport {
            content_id,
            manifest,
            chunks_new: written.len(),
            bytes_new,
        })
    }

    /// Every stored chunk file: its id, length and modification time (unreadable entries
    /// and temporary files are skipped).
    pub fn chunk_files(&self) -> Result<Vec<(ChunkId, u64, std::time::SystemTime)>, StoreError> {
        let chunks_dir = self.root.join("chunks");
        let mut files = Vec::new();
        for shard in fs::read_dir(&chunks_dir).map_err(io_error("cannot list", &chunks_dir))? {
            let shard = shard.map_err(io_error("cannot list", &chunks_dir))?.path();
            if !shard.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&shard).map_err(io_error("cannot list", &shard))? {
                let Ok(entry) = entry else { continue };
                let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<ChunkId>().ok())
                else {
                    continue;
                };
                if let Ok(meta) = entry.metadata()
                    && meta.is_file()
                {
                    let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                    files.push((id, meta.len(), modified));
                }
            }
        }
        Ok(files)
    }

    /// Bytes the stored chunks take (their lengths; manifests and pins are not counted).
    pub fn usage(&self) -> Result<u64, StoreError> {
        Ok(self.chunk_files()?.iter().map(|(_, len, _)| len).sum())
    }

    fn pin_path(&self, content: &ContentId) -> PathBuf {
        self.root.join("pins").join(content.to_string())
    }

    /// Pins `content`: it is never evicted to make room. Returns whether it was unpinned.
    pub fn pin(&self, content: &ContentId) -> Result<bool, StoreError> {
        let path = self.pin_path(content);
        if path.is_file() {
            return Ok(false);
        }
        write_atomically(&self.root.join("pins"), &path, b"", true)?;
        Ok(true)
    }

    /// Unpins `content`. Returns whether it was pinned.
    pub fn unpin(&self, content: &ContentId) -> Result<bool, StoreError> {
        let path = self.pin_path(content);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.root.join("pins"))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("cannot remove", &path)(e)),
        }
    }

    /// Whether `content` is pinned.
    pub fn is_pinned(&self, content: &ContentId) -> bool {
        self.pin_path(content).is_file()
    }

    /// When `content` was last used (added, or read through the gateway): its manifest
    /// file's modification time.
    pub fn last_used(&self, content: &ContentId) -> Option<std::time::SystemTime> {
        fs::metadata(self.manifest_path(content))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Marks `content` used now (best effort: a failure only makes it look older).
    pub fn touch(&self, content: &ContentId) {
        if let Ok(file) = File::options()
            .append(true)
            .open(self.manifest_path(content))
        {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Removes the manifest of `content` (its chunks stay until removed one by one).
    pub fn remove_manifest(&self, content: &ContentId) -> Result<(), StoreError> {
        let path = self.manifest_path(content);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.root.join("manifests")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot remove", &path)(e)),
        }
    }

    /// Removes chunk `id`'s file. Returns the bytes freed.
    pub fn remove_chunk(&self, id: &ChunkId) -> Result<u64, StoreError> {
        let path = self.chunk_path(id);
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => Ok(len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_error("cannot remove", &path)(e)),
        }
    }

    /// Flushes chunk files and their directory entries to disk.
    pub fn sync_chunks(&self, ids: &[ChunkId]) -> Result<(), StoreError> {
        let mut dirs = BTreeSet::new();
        for id in ids {
            let path = self.chunk_path(id);
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_error("cannot sync", &path))?;
            if let Some(parent) = path.parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Hashes every stored chunk, quarantines the corrupt ones, and lists what manifests
    /// are missing. `progress` is called with bytes hashed so far.
    pub fn verify_all(&self, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        let mut files: Vec<ChunkId> = self.chunk_files()?.into_iter().map(|(id, ..)| id).collect();
        files.sort();
        for id in files {
            match self.read_chunk_verified(&id) {
                Ok(Some(bytes)) => report.bytes_checked += bytes.len() as u64,
                Ok(None) => continue,
                Err(StoreError::Corrupt { id, .. }) => report.corrupt.push(id),
                Err(e) => return Err(e),
            }
            report.chunks_checked += 1;
            progress(report.bytes_checked);
        }
        for (content, manifest) in self.list()? {
            let held = self.held(&manifest);
            let missing: Vec<usize> = (0..held.len()).filter(|i| !held.get(*i)).collect();
            if !missing.is_empty() {
                report.missing.push((content, missing));
            }
        }
        Ok(report)
    }
}

/// Reads until `buffer` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes `bytes` to a temporary file in `dir` and renames it to `path`.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_error("cannot create a temporary file in", dir))?;
    tmp.write_all(bytes)
        .map_err(io_error("cannot write", tmp.path()))?;
    if sync {
        tmp.as_file()
            .sync_all()
            .map_err(io_error("cannot sync", path))?;
    }
    tmp.persist(path).map_err(|e| StoreError::Io {
        action: "cannot rename into place",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("cannot sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsi_protocol::manifest::MIN_CHUNK_SIZE;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn add_over_interesting_sizes() {
        let c = MIN_CHUNK_SIZE as usize;
        for size in [0, 1, c - 1, c, c + 1, 7 * c + 3] {
            let tmp = tempfile::tempdir().unwrap();
            let store = ChunkStore::open(tmp.path()).unwrap();
            let bytes = data(size, 1);
            let file = tmp.path().join("input");
            fs::write(&file, &bytes).unwrap();
            let report = store
                .add_file(&file, "input", MIN_CHUNK_SIZE, &mut |_| {})
                .unwrap();
            assert_eq!(report.manifest.size, size as u64);
            assert_eq!(report.manifest.chunk_count(), size.div_ceil(c));
            let mut joined = Vec::new();
            for id in &report.manifest.chunks {
                joined.extend(store.read_chunk_verified(id).unwrap().unwrap());
            }
            assert_eq!(joined, bytes, "size {size}");
            assert_eq!(
                store.manifest(&report.content_id).unwrap().unwrap(),
                report.manifest
            );
            assert_eq!(
                store.held(&report.manifest).count(),
                report.manifest.chunk_count()
            );
        }
    }

    #[test]
    fn adding_twice_stores_nothing_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(tmp.path()).unwrap();
        let mut bytes = data(3 * MIN_CHUNK_SIZE as usize, 2);
        // Two identical chunks inside one file are stored once.
        let (a, b) = bytes.split_at_mut(MIN_CHUNK_SIZE as usize);
        b[..MIN_CHUNK_SIZE as usize].copy_from_slice(a);
        let file = tmp.path().join("f");
        fs::write(&file, &bytes).unwrap();
        let first = store
            .add_file(&file, "f", MIN_CHUNK_SIZE, &mut |_| {})
            .unwrap();
        assert_eq!(first.chunks_new, 2);
        let second = store
            .add_file(&file, "f", MIN_CHUNK_SIZE, &mut |_| {})
            .unwrap();
        assert_eq!(second.chunks_new, 0);
        assert_eq!(second.bytes_new, 0);
        assert_eq!(first.content_id, second.content_id);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn corruption_is_detected_quarantined_and_refetchable() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(tmp.path()).unwrap();
        let file = tmp.path().join("f");
        let bytes = data(2 * MIN_CHUNK_SIZE as usize, 3);
        fs::write(&file, &bytes).unwrap();
        let report = store
            .add_file(&file, "f", MIN_CHUNK_SIZE, &mut |_| {})
            .unwrap();
        let bad = report.manifest.chunks[1];
        let mut on_disk = fs::read(store.chunk_path(&bad)).unwrap();
        on_disk[10] ^= 0xff;
        fs::write(store.chunk_path(&bad), &on_disk).unwrap();
        let verify = store.verify_all(&mut |_| {}).unwrap();
        assert_eq!(verify.corrupt, vec![bad]);
        assert_eq!(verify.missing, vec![(report.content_id, vec![1])]);
        assert!(!store.has_chunk(&bad));
        assert_eq!(
            fs::read_dir(tmp.path().join("quarantine")).unwrap().count(),
            1
        );
        // Re-fetching means putting the right bytes back.
        let good = &bytes[MIN_CHUNK_SIZE as usize..];
        assert!(store.put_chunk(&bad, good, true).unwrap());
        assert!(store.verify_all(&mut |_| {}).unwrap().missing.is_empty());
    }

    #[test]
    fn damaged_manifest_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(tmp.path()).unwrap();
        let manifest = Manifest::new("x", 0, MIN_CHUNK_SIZE, vec![]).unwrap();
        let content = store.put_manifest(&manifest).unwrap();
        fs::write(store.manifest_path(&content), b"garbage").unwrap();
        assert!(matches!(
            store.manifest(&content),
            Err(StoreError::BadManifest { .. })
        ));
    }

    #[test]
    fn bitfield_hex_round_trip() {
        let mut field = Bitfield::new(11);
        field.set(0, true);
        field.set(10, true);
        let parsed = Bitfield::from_hex(&field.to_hex(), 11).unwrap();
        assert_eq!(parsed, field);
        assert_eq!(parsed.count(), 2);
        assert!(
            Bitfield::from_hex("ffff", 11).is_none(),
            "bits past the end must be clear"
        );
        assert!(Bitfield::from_hex("ff", 11).is_none());
    }
}
