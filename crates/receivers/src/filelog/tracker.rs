//! The receiver's bookkeeping: the files it knows (by fingerprint), where reading stands in
//! each, which batches are in flight, and how far each file is committed.

use super::checkpoint::{CheckpointStore, FileCheckpoint};
use super::config::{Compression, OnTruncate, StartAt};
use super::discover::{Finder, file_name};
use super::fileinfo::{self, SharedLock};
use super::order::Selector;
use super::reader::{Line, ReadBuffer, ReadEnd, ReadPosition, SplitOptions, read_lines};
use super::split::{Decode, Split, Trim};
use super::{BatchSender, FilelogSetup, FilelogStats};
use centimane_core::{
    AckListener, AckSet, AckStatus, AckToken, Batch, Entry, Map, OperatorChain, Timestamp, Value,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Lines per batch handed to the pipeline: bounds memory per file per read. A batch's
/// entries are freed on this thread before the next batch is built; 256 lines' blocks
/// (a few hundred of each size) fit the agent's per-thread malloc cache (see
/// `centimane::allocator`), and the cache stays small enough not to fragment the heap.
const LINES_PER_BATCH: usize = 256;
/// A file unseen for this many polls (deleted, or moved out of the pattern) is forgotten.
const POLLS_TO_REMEMBER: u64 = 3;

/// One known file.
struct TrackedFile {
    fingerprint: Vec<u8>,
    path: PathBuf,
    /// Open while the file was seen by the last poll: a file renamed out of the pattern is
    /// still finished through this handle.
    handle: Option<File>,
    /// Device and inode of the open handle, to tell whether a path still is this file.
    identity: Option<(u64, u64)>,
    gzip: bool,
    position: ReadPosition,
    /// Every byte before this was acknowledged (offset, record number).
    committed: (u64, u64),
    /// Batches in flight, oldest first: ack id, the offset and record number after its
    /// last line, and its outcome once known.
    in_flight: VecDeque<(u64, (u64, u64), Option<AckStatus>)>,
    /// A batch of this file failed: nothing after it may be committed in this run.
    blocked: bool,
    /// The header is complete (or there is no header setting).
    header_done: bool,
    header_attributes: Map,
    /// Read to its end at least once (for `delete_after_read`).
    reached_eof: bool,
    last_seen_poll: u64,
}

impl TrackedFile {
    fn new(fingerprint: Vec<u8>, path: PathBuf, position: ReadPosition, header_done: bool) -> Self {
        TrackedFile {
            fingerprint,
            committed: (position.offset, position.record_num),
            path,
            handle: None,
            identity: None,
            gzip: false,
            position,
            in_flight: VecDeque::new(),
            blocked: false,
            header_done,
            header_attributes: Map::default(),
            reached_eof: false,
            last_seen_poll: 0,
        }
    }
}

/// Which file attributes every entry gets.
struct AttributeFlags {
    name: bool,
    path: bool,
    name_resolved: bool,
    path_resolved: bool,
    owner: bool,
    group: bool,
    permissions: bool,
    record_number: bool,
    record_offset: bool,
}

/// The header setting, ready to use.
struct Header {
    pattern: regex::Regex,
    chain: Box<dyn OperatorChain>,
}

/// The most attribute slots a new record is made with ahead of need.
const ATTRIBUTES_ROOM_MAX: usize = 32;

pub(super) struct Tracker {
    id: String,
    finder: Finder,
    selector: Selector,
    split: SplitOptions,
    fingerprint_size: usize,
    start_at: StartAt,
    compression: Compression,
    on_truncate: OnTruncate,
    delete_after_read: bool,
    acquire_fs_lock: bool,
    attributes: AttributeFlags,
    header: Option<Header>,
    max_open_files: usize,
    /// Files read per poll at most (0 = all).
    max_files_per_poll: usize,
    files: HashMap<u64, TrackedFile>,
    next_file_key: u64,
    /// Ack id → file key.
    acks_pending: HashMap<u64, u64>,
    next_ack_id: u64,
    /// How many attributes the last record out of the operators had room for (parsers
    /// grow a record's map to exactly what they need): each new record's map is made with
    /// that much room, so parsers filling it do not grow it again.
    attributes_room: usize,
    listener: Arc<dyn AckListener>,
    stop: Arc<AtomicBool>,
    store: Option<CheckpointStore>,
    checkpoint_dirty: bool,
    polls: u64,
    scratch: ReadBuffer,
    /// Paths we already warned about, so an unreadable file logs once, not every poll.
    warned: HashSet<PathBuf>,
    stats: Arc<FilelogStats>,
}

impl Tracker {
    pub fn new(
        setup: &mut FilelogSetup,
        listener: Arc<dyn AckListener>,
        stop: Arc<AtomicBool>,
        stats: Arc<FilelogStats>,
    ) -> Result<Self, String> {
        let c = &setup.config;
        let id = setup.id.to_string();
        let decode = Decode::from_name(&c.encoding).ok_or("`encoding`: unknown encoding")?;
        let split = match &c.multiline {
            Some(m) => match (&m.line_start_pattern, &m.line_end_pattern) {
                (Some(p), _) => Split::LineStart {
                    pattern: super::config::multiline_regex(p)?,
                    omit: m.omit_pattern,
                },
                (None, Some(p)) => Split::LineEnd {
                    pattern: super::config::multiline_regex(p)?,
                    omit: m.omit_pattern,
                },
                (None, None) => return Err("`multiline` needs a pattern".into()),
            },
            None if matches!(decode, Decode::Bytes) => Split::Raw,
            None => {
                let (newline, unit) = decode.newline();
                Split::Newline { newline, unit }
            }
        };
        let header = match (&c.header, setup.header_chain.take()) {
            (Some(h), Some(chain)) => Some(Header {
                pattern: regex::Regex::new(&h.pattern)
                    .map_err(|e| format!("`header.pattern`: {e}"))?,
                chain,
            }),
            (Some(_), None) => {
                return Err("`header` is set but no metadata operator chain was built".into());
            }
            (None, _) => None,
        };
        let store = setup
            .checkpoint_dir
            .as_deref()
            .map(|dir| CheckpointStore::new(dir, &id));
        let per_batch = (c.max_concurrent_files / 2).max(1);
        let mut tracker = Tracker {
            finder: Finder::new(&c.include, &c.exclude)?,
            selector: Selector::new(c.exclude_older_than.0, c.ordering_criteria.as_ref())?,
            split: SplitOptions {
                split,
                decode,
                trim: Trim {
                    leading: !c.preserve_leading_whitespaces,
                    trailing: !c.preserve_trailing_whitespaces,
                },
                max_log_size: usize::try_from(c.max_log_size.0).unwrap_or(usize::MAX),
                truncate: c.max_log_size_behavior == super::config::MaxLogSizeBehavior::Truncate,
                force_flush_period: c.force_flush_period.0,
            },
            fingerprint_size: usize::try_from(c.fingerprint_size.0).unwrap_or(usize::MAX),
            start_at: c.start_at,
            compression: c.compression,
            on_truncate: c.on_truncate,
            delete_after_read: c.delete_after_read,
            acquire_fs_lock: c.acquire_fs_lock,
            attributes: AttributeFlags {
                name: c.include_file_name,
                path: c.include_file_path,
                name_resolved: c.include_file_name_resolved,
                path_resolved: c.include_file_path_resolved,
                owner: c.include_file_owner_name,
                group: c.include_file_owner_group_name,
                permissions: c.include_file_permissions,
                record_number: c.include_file_record_number,
                record_offset: c.include_file_record_offset,
            },
            header,
            max_open_files: c.max_concurrent_files,
            max_files_per_poll: c.max_batches.saturating_mul(per_batch),
            files: HashMap::new(),
            next_file_key: 0,
            acks_pending: HashMap::new(),
            next_ack_id: 0,
            attributes_room: 0,
            listener,
            stop,
            store: None,
            checkpoint_dirty: false,
            polls: 0,
            scratch: ReadBuffer::default(),
            warned: HashSet::new(),
            stats,
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
                let header_done = tracker.header.is_none() || cp.header_finalized;
                let mut f = TrackedFile::new(
                    fingerprint,
                    PathBuf::from(cp.path),
                    ReadPosition::at(cp.offset, cp.record_num),
                    header_done,
                );
                f.header_attributes = cp.header_attributes;
                tracker.files.insert(key, f);
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

    /// At least one poll happened.
    pub fn polled(&self) -> bool {
        self.polls > 0
    }

    pub fn in_flight(&self) -> usize {
        self.acks_pending.len()
    }

    /// The directories file events should wake the poll loop for.
    pub fn watch_roots(&self) -> Vec<(PathBuf, bool)> {
        self.finder.roots()
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
        let mut paths = self.selector.select(self.finder.find());
        if self.max_files_per_poll > 0 {
            paths.truncate(self.max_files_per_poll);
        }
        for path in paths {
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
            let meta = file.metadata().ok();
            let identity = meta.as_ref().map(|m| (m.dev(), m.ino()));
            let len = meta.as_ref().map_or(0, |m| m.len());
            let gzip = match self.compression {
                Compression::None => false,
                Compression::Gzip => true,
                Compression::Auto => path.extension().is_some_and(|e| e == "gz"),
            };
            let key = match self.find_known(&fingerprint, &matched) {
                Some(key) => {
                    let on_truncate = self.on_truncate;
                    let f = self.files.get_mut(&key).expect("found above");
                    // The file grew past its old, short fingerprint.
                    if fingerprint.len() > f.fingerprint.len() {
                        f.fingerprint = fingerprint;
                    }
                    if len < f.position.offset && !gzip {
                        // Truncated and rewritten with the same first bytes.
                        match on_truncate {
                            OnTruncate::Ignore => {}
                            OnTruncate::ReadWholeFile => f.position = ReadPosition::at(0, 0),
                            OnTruncate::ReadNew => {
                                f.position = ReadPosition::at(len, f.position.record_num)
                            }
                        }
                    }
                    f.path = path;
                    f.handle = Some(file);
                    f.identity = identity;
                    f.gzip = gzip;
                    key
                }
                None => {
                    let offset = if first_poll && self.start_at == StartAt::End {
                        len
                    } else {
                        0
                    };
                    let key = self.new_key();
                    let mut f = TrackedFile::new(
                        fingerprint,
                        path,
                        ReadPosition::at(offset, 0),
                        self.header.is_none() || offset > 0,
                    );
                    f.handle = Some(file);
                    f.identity = identity;
                    f.gzip = gzip;
                    self.files.insert(key, f);
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
            if !self.delete_after_read {
                self.read_file(key, chain, sender);
                sender.flush_waited();
            }
            if let Some(f) = self.files.get_mut(&key) {
                f.handle = None;
            }
        }
        for (i, key) in matched.iter().enumerate() {
            if self.stopping() {
                break;
            }
            self.read_file(*key, chain, sender);
            sender.flush_waited();
            if i >= self.max_open_files
                && let Some(f) = self.files.get_mut(key)
            {
                f.handle = None;
            }
        }
        self.delete_finished_files();
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
        self.publish_stats();
    }

    /// Updates the figures self-metrics read: open files and unread bytes.
    fn publish_stats(&self) {
        let open = self
            .files
            .values()
            .filter_map(|f| Some((f.handle.as_ref()?, f.position.offset)));
        let (mut count, mut behind) = (0u64, 0u64);
        for (handle, offset) in open {
            count += 1;
            let len = handle.metadata().map_or(offset, |m| m.len());
            behind += len.saturating_sub(offset);
        }
        self.stats.files_open.store(count, Ordering::Relaxed);
        self.stats.bytes_behind.store(behind, Ordering::Relaxed);
    }

    /// `delete_after_read`: a file is deleted once it was read to its end and everything
    /// read was acknowledged — never before, so a crash can't lose its lines.
    fn delete_finished_files(&mut self) {
        if !self.delete_after_read {
            return;
        }
        let mut deleted = Vec::new();
        for (key, f) in &self.files {
            let done = f.reached_eof
                && f.in_flight.is_empty()
                && !f.blocked
                && f.committed.0 == f.position.offset;
            if !done || f.handle.is_none() {
                continue;
            }
            // Only if the path still is this file (not a successor created meanwhile).
            let same = std::fs::metadata(&f.path).ok().map(|m| (m.dev(), m.ino())) == f.identity;
            if same {
                match std::fs::remove_file(&f.path) {
                    Ok(()) => deleted.push(*key),
                    Err(e) => {
                        tracing::warn!(receiver = %self.id, path = %f.path.display(), error = %e, "can't delete file after reading it")
                    }
                }
            }
        }
        for key in deleted {
            self.files.remove(&key);
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
        let Some(f) = self.files.get(&key) else {
            return;
        };
        if f.gzip {
            return self.read_gzip(key, chain, sender);
        }
        let mut lines = Vec::new();
        // Bytes read for one batch and left over carry into the next batch of this call;
        // what was read before this call may be stale (the file may have been truncated).
        self.scratch.forget();
        let mut first = true;
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
            let start = (f.position.offset, f.position.record_num);
            let lock = if self.acquire_fs_lock {
                SharedLock::acquire(handle).ok()
            } else {
                None
            };
            let mut source = handle;
            let positioned = if std::mem::take(&mut first) {
                source.seek(SeekFrom::Start(f.position.offset)).map(drop)
            } else {
                Ok(())
            };
            let end = positioned.and_then(|()| {
                read_lines(
                    &mut source,
                    &mut f.position,
                    &self.split,
                    LINES_PER_BATCH,
                    &mut self.scratch,
                    &mut lines,
                    false,
                )
            });
            drop(lock);
            let end = match end {
                Ok(end) => end,
                Err(e) => {
                    tracing::warn!(receiver = %self.id, path = %f.path.display(), error = %e, "read failed; will retry at the next poll");
                    ReadEnd::Eof
                }
            };
            if end == ReadEnd::Eof {
                f.reached_eof = true;
            }
            let end_pos = (f.position.offset, f.position.record_num);
            if end_pos != start {
                let batch = self.make_batch(key, &mut lines, chain, end_pos);
                if !sender.send(batch) {
                    return;
                }
            }
            if end == ReadEnd::Eof {
                return;
            }
        }
    }

    /// A gzip file: decode each complete member appended since the last read. The offset
    /// (in compressed bytes) only moves past a member once it decoded completely, so a
    /// member still being written is read again, whole, at the next poll.
    fn read_gzip(&mut self, key: u64, chain: &mut dyn OperatorChain, sender: &BatchSender) {
        use std::io::{BufRead, BufReader, Read};
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
            let offset = f.position.offset;
            let mut source = handle;
            if source.seek(SeekFrom::Start(offset)).is_err() {
                return;
            }
            let mut buffered = BufReader::new(source);
            match buffered.fill_buf() {
                Ok([]) => {
                    f.reached_eof = true;
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
            let mut decoder = flate2::bufread::GzDecoder::new(buffered);
            let mut text = Vec::new();
            if let Err(e) = decoder.read_to_end(&mut text) {
                tracing::debug!(receiver = %self.id, path = %f.path.display(), error = %e, "gzip member incomplete; will retry");
                return;
            }
            let buffered = decoder.into_inner();
            let unread = buffered.buffer().len() as u64;
            let Ok(consumed_to) = buffered.into_inner().stream_position() else {
                return;
            };
            let member_end = consumed_to - unread;
            // Decode the member's lines with positions relative to the member.
            let mut pos = ReadPosition::at(0, f.position.record_num);
            let mut lines = Vec::new();
            let mut scratch = ReadBuffer::default();
            let mut src: &[u8] = &text;
            while read_lines(
                &mut src,
                &mut pos,
                &self.split,
                usize::MAX,
                &mut scratch,
                &mut lines,
                true,
            )
            .is_ok_and(|e| e == ReadEnd::Full)
            {}
            let record_num = pos.record_num;
            let f = self.files.get_mut(&key).expect("file being read");
            let start_record = f.position.record_num;
            f.position = ReadPosition::at(member_end, record_num);
            let mut chunks = lines.into_iter().peekable();
            let mut batch_lines = Vec::new();
            loop {
                batch_lines.clear();
                batch_lines.extend(chunks.by_ref().take(LINES_PER_BATCH));
                let last = chunks.peek().is_none();
                // Only the member's last batch may commit the member's end.
                let end = if last {
                    (member_end, record_num)
                } else {
                    (offset, start_record)
                };
                let batch = self.make_batch(key, &mut batch_lines, chain, end);
                if !sender.send(batch) {
                    return;
                }
                if last {
                    break;
                }
            }
        }
    }

    /// Turns `lines` into entries (header lines feed the header instead), runs the
    /// operators, and attaches an ack token covering the file up to `end`. `lines` is left
    /// empty.
    fn make_batch(
        &mut self,
        key: u64,
        lines: &mut Vec<Line>,
        chain: &mut dyn OperatorChain,
        end: (u64, u64),
    ) -> Batch {
        // Free the entries exporters are done with here, where they were allocated.
        centimane_core::recycle::collect();
        let observed = Timestamp::now();
        let flags = &self.attributes;
        let f = self.files.get_mut(&key).expect("file of the batch");
        let mut file_attrs: Vec<(&'static str, Value)> = Vec::new();
        if flags.name {
            file_attrs.push(("log.file.name", Value::Str(file_name(&f.path).into())));
        }
        if flags.path {
            file_attrs.push((
                "log.file.path",
                Value::Str(f.path.display().to_string().into()),
            ));
        }
        if (flags.name_resolved || flags.path_resolved)
            && let Ok(resolved) = std::fs::canonicalize(&f.path)
        {
            if flags.name_resolved {
                file_attrs.push((
                    "log.file.name_resolved",
                    Value::Str(file_name(&resolved).into()),
                ));
            }
            if flags.path_resolved {
                file_attrs.push((
                    "log.file.path_resolved",
                    Value::Str(resolved.display().to_string().into()),
                ));
            }
        }
        if (flags.owner || flags.group || flags.permissions)
            && let Some(meta) = f.handle.as_ref().and_then(|h| h.metadata().ok())
        {
            if flags.owner
                && let Some(n) = fileinfo::user_name(meta.uid())
            {
                file_attrs.push(("log.file.owner.name", Value::Str(n.into())));
            }
            if flags.group
                && let Some(n) = fileinfo::group_name(meta.gid())
            {
                file_attrs.push(("log.file.owner.group.name", Value::Str(n.into())));
            }
            if flags.permissions {
                file_attrs.push((
                    "log.file.permissions",
                    Value::Str(fileinfo::permissions(&meta).into()),
                ));
            }
        }
        let mut entries = centimane_core::recycle::spare(lines.len());
        // The attributes every entry of this batch starts with (file attributes, then the
        // header's), built once and copied for each line.
        let mut common: Option<Map> = None;
        // By reference, the body taken out: moving each `Line` out of the vector copied it
        // through the stack in pieces the CPU could not forward (a `perf annotate` hot spot).
        // The vector is left empty, its room kept for the next read.
        for line in lines.iter_mut() {
            if !f.header_done {
                if let Some(h) = self.header.as_mut() {
                    let text = line.body.to_text();
                    if h.pattern.is_match(&text) {
                        let mut out = Vec::new();
                        h.chain.process(
                            vec![Entry {
                                body: std::mem::take(&mut line.body),
                                observed_timestamp: observed,
                                ..Entry::default()
                            }],
                            &mut out,
                        );
                        for e in out {
                            f.header_attributes.extend(e.attributes);
                        }
                        continue;
                    }
                }
                f.header_done = true;
            }
            // Header lines come first: once past them, the header's attributes are final.
            let attributes = common.get_or_insert_with(|| {
                let mut m = centimane_core::Map::with_capacity(
                    file_attrs.len() + f.header_attributes.len(),
                );
                for (k, v) in &file_attrs {
                    m.insert((*k).into(), v.clone());
                }
                for (k, v) in &f.header_attributes {
                    m.insert(k.clone(), v.clone());
                }
                m
            });
            // Pushed empty and filled in place: an entry assembled on the stack was copied
            // into the vector with wider loads than the stores that had just built its
            // body and attribute map, a store-forwarding stall at every line.
            entries.push(Entry {
                observed_timestamp: observed,
                ..Entry::default()
            });
            let entry = entries.last_mut().expect("pushed above");
            entry.body = std::mem::take(&mut line.body);
            attributes.clone_into_with_capacity(&mut entry.attributes, self.attributes_room);
            if flags.record_number {
                entry.attributes.insert(
                    "log.file.record_number".into(),
                    Value::Int(line.record_num as i64),
                );
            }
            if flags.record_offset {
                entry.attributes.insert(
                    "log.file.record_offset".into(),
                    Value::Int(line.offset as i64),
                );
            }
        }
        lines.clear();
        let mut out = centimane_core::recycle::spare(entries.len());
        chain.process(entries, &mut out);
        self.attributes_room = out
            .last()
            .map_or(0, |e| e.attributes.capacity().min(ATTRIBUTES_ROOM_MAX));
        self.next_ack_id += 1;
        let ack_id = self.next_ack_id;
        self.acks_pending.insert(ack_id, key);
        f.in_flight.push_back((ack_id, end, None));
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
            .map(|f| FileCheckpoint {
                header_finalized: f.header_done,
                header_attributes: f.header_attributes.clone(),
                ..FileCheckpoint::new(&f.fingerprint, &f.path, f.committed.0, f.committed.1)
            })
            .collect();
        match store.save(files) {
            Ok(()) => {
                self.checkpoint_dirty = false;
                let now = Timestamp::now().as_nanosecond().try_into().unwrap_or(0);
                self.stats
                    .checkpoint_saved_unix_nanos
                    .store(now, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(receiver = %self.id, path = %store.path().display(), error = %e, "can't save checkpoint; will retry after the next poll")
            }
        }
    }
}
