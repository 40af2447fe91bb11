//! Checkpoints: for every known file, its fingerprint and the offset up to which every line
//! was acknowledged downstream. One JSON document per receiver, replaced atomically
//! (temporary file, fsync, rename, fsync of the directory) so a crash leaves either the old
//! or the new checkpoint, never a torn one.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use centimane_core::Map;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FileCheckpoint {
    /// The file's first bytes, base64.
    pub fingerprint: String,
    /// Where the file was last seen (informational: identity is the fingerprint).
    pub path: String,
    /// Every byte before this offset was delivered.
    pub offset: u64,
    /// Lines (tokens) before `offset`.
    pub record_num: u64,
    /// The header (see the `header` setting) was read completely.
    #[serde(default)]
    pub header_finalized: bool,
    /// Attributes the header produced, added to every entry of the file.
    #[serde(default)]
    pub header_attributes: Map,
}

impl FileCheckpoint {
    pub fn new(fingerprint: &[u8], path: &Path, offset: u64, record_num: u64) -> Self {
        FileCheckpoint {
            fingerprint: STANDARD.encode(fingerprint),
            path: path.display().to_string(),
            offset,
            record_num,
            header_finalized: false,
            header_attributes: Map::default(),
        }
    }

    pub fn fingerprint_bytes(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.fingerprint).ok()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    version: u32,
    files: Vec<FileCheckpoint>,
}

const VERSION: u32 = 1;

/// The checkpoint file of one receiver.
pub(crate) struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// `receiver_id` is the component id (`filelog/app`); `/` is not a file-name character.
    pub fn new(directory: &Path, receiver_id: &str) -> Self {
        let name = format!("filelog_{}.json", receiver_id.replace('/', "_"));
        CheckpointStore {
            path: directory.join(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoints; none when there is no file yet. A damaged file is an error:
    /// silently starting over could re-read or skip whole files.
    pub fn load(&self) -> Result<Vec<FileCheckpoint>, String> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(format!(
                    "can't read checkpoint {}: {e}",
                    self.path.display()
                ));
            }
        };
        let doc: Document = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "checkpoint {} is damaged ({e}); move it away to start over (files are then read per `start_at`)",
                self.path.display()
            )
        })?;
        if doc.version != VERSION {
            return Err(format!(
                "checkpoint {} has version {}, this build reads version {VERSION}",
                self.path.display(),
                doc.version
            ));
        }
        Ok(doc.files)
    }

    pub fn save(&self, files: Vec<FileCheckpoint>) -> std::io::Result<()> {
        let doc = Document {
            version: VERSION,
            files,
        };
        let bytes = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
        let mut file = atomic_write_file::AtomicWriteFile::options().open(&self.path)?;
        file.write_all(&bytes)?;
        file.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "filelog/app");
        assert_eq!(store.load().unwrap(), []);
        let cp = FileCheckpoint::new(b"first bytes", Path::new("/x.log"), 42, 3);
        store.save(vec![cp.clone()]).unwrap();
        assert_eq!(store.load().unwrap(), std::slice::from_ref(&cp));
        assert_eq!(cp.fingerprint_bytes().unwrap(), b"first bytes");
        assert!(store.path().ends_with("filelog_filelog_app.json"));
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "filelog");
        std::fs::write(store.path(), b"{\"version\":1,\"fil").unwrap();
        assert!(store.load().unwrap_err().contains("damaged"));
    }
}
