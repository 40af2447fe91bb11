//! The receiver's bookkeeping: the files it knows (by fingerprint), where reading stands in
//! each, which batches are in flight, and how far each file is committed.

use super::checkpoint::{CheckpointStore, FileCheckpoint};
use super::discover::{Finder, file_name};
use super::reader::{Line, ReadEnd, ReadPosition, SplitOptions, read_lines};
use super::{BatchSender, FilelogSetup, StartAt};
use centimane_core::{
    AckListener, AckSet, AckStatus, AckToken, Batch, Entry, OperatorChain, Timestamp, Value,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Lines per batch handed to the pipeline: bounds memory per file per read.
const LINES_PER_BATCH: usize = 1000;
/// A file unseen for this many polls (deleted, or moved out of the pattern) is forgotten.
const POLLS_TO_REMEMBER: u64 = 3;

/// One known file.
struct TrackedFile {
    fingerprint: Vec<u8>,
    path: PathBuf,
    /// Open while the file was seen by the last poll: a file renamed out of the pattern is
    /// still finished through this handle.
    handle: Option<File>,
    position: ReadPosition,
    /// Every byte before this was acknowledged.
    committed: (u64, u64),
    /// Batches in flight, oldest first: ack id, the offset and record number after its
    /// last line, and its outcome once known.
    in_flight: VecDeque<(u64, (u64, u64), Option<AckStatus>)>,
    /// A batch of this file failed: nothing after it may be committed in this run.
    blocked: bool,
    last_seen_poll: u64,
}

pub(super) struct Tracker {
    id: String,
    finder: Finder,
    split: SplitOptions,
    fingerprint_size: usize,
    start_at: StartAt,
    include_file_name: bool,
    include_file_path: bool,
    include_file_name_resolved: bool,
    include_file_path_resolved: bool,
    max_open_files: usize,
    files: HashMap<u64, TrackedFile>,
    next_file_key: u64,
    /// Ack id → file key.
    acks_pending: HashMap<u64, u64>,
    next_ack_id: u64,
    listener: Arc<dyn AckListener>,
    stop: Arc<AtomicBool>,
    store: Option<CheckpointStore>,
    checkpoint_dirty: bool,
    polls: u64,
    scratch: Vec<u8>,
    /// Paths we already warned about, so an unreadable file logs once, not every poll.
    warned: HashSet<PathBuf>,
}

impl Tracker {
    pub fn new(
        setup: &FilelogSetup,
        listener: Arc<dyn AckListener>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, String> {
        let c = &setup.config;
        let id = setup.id.to_string();
        let store = setup
            .checkpoint_dir
            .as_deref()
            .map(|dir| CheckpointStore::new(dir, &id));
        let mut tracker = Tracker {
            finder: Finder::new(&c.include, &c.exclude)?,
            split: SplitOptions {
                max_log_size: usize::try_from(c.max_log_size.0).unwrap_or(usize::MAX),
                force_flush_period: c.force_flush_period.0,
                preserve_leading_whitespaces: c.preserve_leading_whitespaces,
                preserve_trailing_whitespaces: c.preserve_trailing_whitespaces,
            },
            fingerprint_size: usize::try_from(c.fingerprint_size.0).unwrap_or(usize::MAX),
            start_at: c.start_at,
            include_file_name: c.include_file_name,
            include_file_path: c.include_file_path,
            include_file_name_resolved: c.include_file_name_resolved,
            include_file_path_resolved: c.include_file_path_resolved,
            max_open_files: c.max_concurrent_files,
            files: HashMap::new(),
            next_file_key: 0,
            acks_pending: HashMap::new(),
            next_ack_id: 0,
            listener,
            stop,
            store: None,
            checkpoint_dirty: false,
            polls: 0,
            scratch: Vec::new(),
            warned: HashSet::new(),
            id,
        };
        if let Some(store) = store {
            for cp in store.load()? {
                let Some(mut fingerprint) = cp.fingerprint_bytes() else {
                    continue;
                };
                // A smaller fingerprint_size than at save time: compare on the new size.
                fingerprint.truncate(tracker.fingerprint_size);
                let key = tracker.new_key();
                tracker.files.insert(
                    key,
                    TrackedFile {
                        fingerprint,
                        path: PathBuf::from(cp.path),
                        handle: None,
                        position: ReadPosition::at(cp.offset, cp.record_num),
                        committed: (cp.offset, cp.record_num),
                        in_flight: VecDeque::new(),
                        blocked: false,
                        last_seen_poll: 0,
                    },
                );
            }
            tracker.store = Some(store);
        }
        Ok(tracker)
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub fn in_flight(&self) -> usize {
        self.acks_pending.len()
    }

    fn new_key(&mut self) -> u64 {
        self.next_file_key += 1;
        self.next_file_key
    }

    /// One poll: find files, match them to known ones, finish files that left the
    /// pattern, then read every matched file to its end.
    pub fn poll(&mut self, chain: &mut dyn OperatorChain, sender: &BatchSender) {
        self.polls += 1;
        let first_poll = self.polls == 1;
        let mut matched: Vec<u64> = Vec::new();
        let mut seen_fingerprints: HashSet<Vec<u8>> = HashSet::new();
        for path in self.finder.find() {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    if self.warned.insert(path.clone()) {
                        tracing::warn!(receiver = %self.id, path = %path.display(), error = %e, "can't open file; will retry every poll");
                    }
                    continue;
                }
            };
            let fingerprint = match self.fingerprint(&file) {
                Ok(fp) if fp.is_empty() => continue, // empty files have no identity yet
                Ok(fp) => fp,
                Err(e) => {
                    if self.warned.insert(path.clone()) {
                        tracing::warn!(receiver = %self.id, path = %path.display(), error = %e, "can't read file");
                    }
                    continue;
                }
            };
            self.warned.remove(&path);
            // A copy (copytruncate) or a hard link has the same fingerprint: read one.
            if !seen_fingerprints.insert(fingerprint.clone()) {
                continue;
            }
            let key = match self.find_known(&fingerprint, &matched) {
                Some(key) => {
                    let f = self.files.get_mut(&key).expect("found above");
                    // The file grew past its old, short fingerprint.
                    if fingerprint.len() > f.fingerprint.len() {
                        f.fingerprint = fingerprint;
                    }
                    f.path = path;
                    f.handle = Some(file);
                    key
                }
                None => {
                    let offset = if first_poll && self.start_at == StartAt::End {
                        file.metadata().map(|m| m.len()).unwrap_or(0)
                    } else {
                        0
                    };
                    let key = self.new_key();
                    self.files.insert(
                        key,
                        TrackedFile {
                            fingerprint,
                            path,
                            handle: Some(file),
                            position: ReadPosition::at(offset, 0),
                            committed: (offset, 0),
                            in_flight: VecDeque::new(),
                            blocked: false,
                            last_seen_poll: 0,
                        },
                    );
                    self.checkpoint_dirty = true;
                    key
                }
            };
            self.files.get_mut(&key).expect("inserted").last_seen_poll = self.polls;
            matched.push(key);
        }
        // Files open since the last poll but not found now were rotated away or deleted:
        // read what is left through the old handle first, so their tail comes before the
        // first lines of their successor.
        let lost: Vec<u64> = self
            .files
            .iter()
            .filter(|(k, f)| f.handle.is_some() && !matched.contains(k))
            .map(|(k, _)| *k)
            .collect();
        for key in lost {
            self.read_file(key, chain, sender);
            if let Some(f) = self.files.get_mut(&key) {
                f.handle = None;
            }
        }
        for (i, key) in matched.iter().enumerate() {
            if self.stopping() {
                break;
            }
            self.read_file(*key, chain, sender);
            if i >= self.max_open_files
                && let Some(f) = self.files.get_mut(key)
            {
                f.handle = None;
            }
        }
        let polls = self.polls;
        let before = self.files.len();
        self.files.retain(|_, f| {
            f.handle.is_some()
                || !f.in_flight.is_empty()
                || polls.saturating_sub(f.last_seen_poll) <= POLLS_TO_REMEMBER
        });
        if self.files.len() != before {
            self.checkpoint_dirty = true;
        }
    }

    /// The first `fingerprint_size` bytes (fewer for a smaller file).
    fn fingerprint(&self, file: &File) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.fingerprint_size];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// A known file whose fingerprint is a prefix of (or equal to) this one, preferring
    /// files that are open, and never one already matched in this poll.
    fn find_known(&self, fingerprint: &[u8], matched: &[u64]) -> Option<u64> {
        let candidates = self.files.iter().filter(|(k, f)| {
            !matched.contains(k)
                && !f.fingerprint.is_empty()
                && fingerprint.starts_with(&f.fingerprint)
        });
        let mut best: Option<(u64, bool, usize)> = None;
        for (key, f) in candidates {
            let rank = (f.handle.is_some(), f.fingerprint.len());
            if best.is_none_or(|(_, open, len)| rank > (open, len)) {
                best = Some((*key, rank.0, rank.1));
            }
        }
        best.map(|(k, _, _)| k)
    }

    /// Reads a file from its offset to its end, sending a batch per `LINES_PER_BATCH`.
    fn read_file(&mut self, key: u64, chain: &mut dyn OperatorChain, sender: &BatchSender) {
        let mut lines = Vec::new();
        loop {
            if self.stopping() {
                return;
            }
            let Some(f) = self.files.get_mut(&key) else {
                return;
            };
            let Some(handle) = f.handle.as_ref() else {
                return;
            };
            let start_offset = f.position.offset;
            let end = read_lines(
                handle,
                &mut f.position,
                &self.split,
                LINES_PER_BATCH,
                &mut self.scratch,
                &mut lines,
            );
            let end = match end {
                Ok(end) => end,
                Err(e) => {
                    tracing::warn!(receiver = %self.id, path = %f.path.display(), error = %e, "read failed; will retry at the next poll");
                    ReadEnd::Eof
                }
            };
            if f.position.offset != start_offset {
                let end_pos = (f.position.offset, f.position.record_num);
                let batch = self.make_batch(key, std::mem::take(&mut lines), chain, end_pos);
                if !sender.send(batch) {
                    return;
                }
            }
            if end == ReadEnd::Eof {
                return;
            }
        }
    }

    /// Turns lines into entries, runs the operators, and attaches an ack token covering the
    /// file up to `end`.
    fn make_batch(
        &mut self,
        key: u64,
        lines: Vec<Line>,
        chain: &mut dyn OperatorChain,
        end: (u64, u64),
    ) -> Batch {
        let f = &self.files[&key];
        let observed = Timestamp::now();
        let name = self
            .include_file_name
            .then(|| Value::Str(file_name(&f.path)));
        let path = self
            .include_file_path
            .then(|| Value::Str(f.path.display().to_string()));
        let resolved = (self.include_file_name_resolved || self.include_file_path_resolved)
            .then(|| std::fs::canonicalize(&f.path).ok())
            .flatten();
        let name_resolved = resolved
            .as_deref()
            .filter(|_| self.include_file_name_resolved)
            .map(|p| Value::Str(file_name(p)));
        let path_resolved = resolved
            .as_deref()
            .filter(|_| self.include_file_path_resolved)
            .map(|p: &Path| Value::Str(p.display().to_string()));
        let mut entries = Vec::with_capacity(lines.len());
        for line in lines {
            let mut entry = Entry {
                body: Value::Str(line.text),
                observed_timestamp: observed,
                ..Entry::default()
            };
            for (k, v) in [
                ("log.file.name", &name),
                ("log.file.path", &path),
                ("log.file.name_resolved", &name_resolved),
                ("log.file.path_resolved", &path_resolved),
            ] {
                if let Some(v) = v {
                    entry.attributes.insert(k.to_owned(), v.clone());
                }
            }
            entries.push(entry);
        }
        let mut out = Vec::with_capacity(entries.len());
        chain.process(entries, &mut out);
        self.next_ack_id += 1;
        let ack_id = self.next_ack_id;
        self.acks_pending.insert(ack_id, key);
        self.files
            .get_mut(&key)
            .expect("file of the batch")
            .in_flight
            .push_back((ack_id, end, None));
        Batch::new(
            out,
            AckSet::from(AckToken::new(ack_id, self.listener.clone())),
        )
    }

    /// Records a batch's outcome and commits the file's offset past every batch that is
    /// delivered with nothing undelivered before it.
    pub fn on_ack(&mut self, id: u64, status: AckStatus) {
        let Some(key) = self.acks_pending.remove(&id) else {
            return;
        };
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        if let Some(slot) = f.in_flight.iter_mut().find(|(a, _, _)| *a == id) {
            slot.2 = Some(status);
        }
        while let Some((_, end, Some(status))) = f.in_flight.front() {
            match status {
                AckStatus::Delivered if !f.blocked => {
                    f.committed = *end;
                    self.checkpoint_dirty = true;
                }
                AckStatus::Delivered => {}
                AckStatus::Failed => {
                    if !f.blocked {
                        tracing::warn!(receiver = %self.id, path = %f.path.display(), "a batch was not delivered; this file's checkpoint stays before it and its lines will be read again at the next start");
                    }
                    f.blocked = true;
                }
            }
            f.in_flight.pop_front();
        }
    }

    pub fn close_files(&mut self) {
        for f in self.files.values_mut() {
            f.handle = None;
        }
    }

    /// Writes the checkpoint if anything was committed since the last save.
    pub fn save_checkpoint(&mut self) {
        let Some(store) = &self.store else { return };
        if !self.checkpoint_dirty {
            return;
        }
        let files = self
            .files
            .values()
            .map(|f| FileCheckpoint::new(&f.fingerprint, &f.path, f.committed.0, f.committed.1))
            .collect();
        match store.save(files) {
            Ok(()) => self.checkpoint_dirty = false,
            Err(e) => {
                tracing::error!(receiver = %self.id, path = %store.path().display(), error = %e, "can't save checkpoint; will retry after the next poll")
            }
        }
    }
}
