//! The `file` exporter's output file, with rotation by size as the Collector's file
//! exporter does it (lumberjack): before a write would take the file past
//! `max_megabytes`, the file is renamed to `<stem>-<UTC time>.<ext>` beside it (e.g.
//! `logs-2026-11-25T08-00-00.123.jsonl`), a new file is started, and only the newest
//! `max_backups` backups are kept.
//!
//! Invariant: a record (one batch's bytes) is never split between two files. A record
//! larger than the limit gets a file of its own rather than being refused.

use crate::config::Fields;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `rotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before the file would grow past this many MiB (default 100).
    pub max_megabytes: u64,
    /// How many backups to keep, oldest deleted first; 0 keeps them all (default 100).
    pub max_backups: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_megabytes: 100,
            max_backups: 100,
        }
    }
}

const KEYS: &[&str] = &["max_megabytes", "max_backups"];

pub(super) fn parse(block: serde_json::Value) -> Result<Rotation, String> {
    let mut f = Fields::new("rotation.", block, KEYS)?;
    let d = Rotation::default();
    let rotation = Rotation {
        max_megabytes: f.take("max_megabytes")?.unwrap_or(d.max_megabytes),
        max_backups: f.take("max_backups")?.unwrap_or(d.max_backups),
    };
    if rotation.max_megabytes == 0 {
        return Err("`rotation.max_megabytes` must be at least 1".into());
    }
    Ok(rotation)
}

/// The file being written, its size, and when to rotate it.
pub(super) struct Output {
    path: PathBuf,
    /// `None` after a failed write, until the next write reopens the path (the file may
    /// have been removed or remounted).
    file: Option<File>,
    /// The file's length as far as our writes know.
    size: u64,
    /// `None`: never rotate.
    max_bytes: Option<u64>,
    max_backups: usize,
    /// The time and number of the last backup made, so that backups made within one
    /// millisecond get increasing numbers even after pruning freed a smaller one.
    last_backup: Option<(String, u64)>,
}

impl Output {
    pub(super) fn new(path: PathBuf, file: File, rotation: Option<Rotation>) -> Self {
        let size = file.metadata().map_or(0, |m| m.len());
        Output {
            path,
            file: Some(file),
            size,
            max_bytes: rotation
                .as_ref()
                .map(|r| r.max_megabytes.saturating_mul(1 << 20)),
            max_backups: rotation.map_or(0, |r| r.max_backups),
            last_backup: None,
        }
    }

    /// Appends `bytes` in one go, rotating first if they would not fit. On failure the
    /// file is cut back to where it was, so a retry does not leave half a record in front
    /// of the whole one.
    pub(super) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let len = bytes.len() as u64;
        if self
            .max_bytes
            .is_some_and(|max| self.size > 0 && self.size.saturating_add(len) > max)
        {
            self.rotate()?;
        }
        let handle = match &mut self.file {
            Some(handle) => handle,
            None => {
                let file = super::open(&self.path)?;
                self.size = file.metadata()?.len();
                self.file.insert(file)
            }
        };
        let result = handle.write_all(bytes).and_then(|()| handle.flush());
        match result {
            Ok(()) => self.size += len,
            Err(_) => {
                // Best effort: if even this fails there is nothing better to do than retry.
                let _ = handle.set_len(self.size);
                self.file = None;
            }
        }
        result
    }

    /// Renames the current file to a new backup and prunes old backups. The next append
    /// creates the file again.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let (backup, order) =
            free_backup_path(&self.path, jiff::Timestamp::now(), self.last_backup.take());
        std::fs::rename(&self.path, &backup)?;
        self.last_backup = Some(order);
        self.size = 0;
        if self.max_backups > 0
            && let Err(error) = prune(&self.path, self.max_backups)
        {
            // Old backups staying around is no reason to hold back new records.
            tracing::warn!(path = %self.path.display(), %error, "cannot remove old backups of the output file");
        }
        Ok(())
    }
}

/// `dir/stem-`, `.ext` (or empty): what every backup name of `path` starts and ends with.
fn backup_affixes(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    (format!("{stem}-"), ext)
}

/// A backup name for `path` at `now` that is not taken yet and sorts after `last` (the
/// previous backup's time and number), with its time and number.
fn free_backup_path(
    path: &Path,
    now: jiff::Timestamp,
    last: Option<(String, u64)>,
) -> (PathBuf, (String, u64)) {
    let (prefix, ext) = backup_affixes(path);
    let time = now.strftime("%Y-%m-%dT%H-%M-%S%.3f").to_string();
    // Several rotations in one millisecond (records larger than the limit) are numbered.
    let mut n = match last {
        Some((last_time, last_n)) if last_time == time => last_n + 1,
        _ => 0,
    };
    loop {
        let name = match n {
            0 => format!("{prefix}{time}{ext}"),
            n => format!("{prefix}{time}-{n}{ext}"),
        };
        let candidate = path.with_file_name(name);
        if !candidate.exists() {
            return (candidate, (time, n));
        }
        n += 1;
    }
}

/// Deletes the oldest backups of `path` beyond `keep`. Backup names sort by time.
fn prune(path: &Path, keep: usize) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let (prefix, ext) = backup_affixes(path);
    let mut backups: Vec<((String, u64), PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let order = backup_order(name.strip_prefix(&prefix)?.strip_suffix(&ext)?)?;
            Some((order, p))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for (_, old) in backups.into_iter().take(excess) {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// Where a backup named with `text` (`2026-11-25T08-00-00.123`, maybe followed by `-<n>`)
/// sorts among the others, oldest first; `None` if `text` is not a backup time.
fn backup_order(text: &str) -> Option<(String, u64)> {
    let time = text.get(..23)?;
    let shape_ok = time.char_indices().all(|(i, c)| match i {
        4 | 7 | 13 | 16 => c == '-',
        10 => c == 'T',
        19 => c == '.',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let n = match text.get(23..)? {
        "" => 0,
        rest => rest
            .strip_prefix('-')
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))?
            .parse()
            .ok()?,
    };
    Some((time.to_owned(), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn output(path: &Path, max_bytes: u64, max_backups: usize) -> Output {
        let file = super::super::open(path).unwrap();
        let mut out = Output::new(path.to_owned(), file, Some(Rotation::default()));
        out.max_bytes = Some(max_bytes);
        out.max_backups = max_backups;
        out
    }

    /// The backups' file names, oldest first.
    fn backups(dir: &Path) -> Vec<String> {
        let mut names: Vec<((String, u64), String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|n| {
                let time = n.strip_prefix("out-")?.strip_suffix(".jsonl")?;
                Some((backup_order(time)?, n))
            })
            .collect();
        names.sort();
        names.into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn rotates_before_the_limit_and_keeps_records_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut out = output(&path, 10, 0);
        out.append(b"aaaa\n").unwrap();
        out.append(b"bbbb\n").unwrap(); // exactly 10: fits
        out.append(b"cccc\n").unwrap(); // would be 15: rotate first
        out.append(b"a record longer than the limit\n").unwrap(); // alone in its file
        out.append(b"dd\n").unwrap();
        let contents: Vec<String> = backups(dir.path())
            .iter()
            .map(|n| std::fs::read_to_string(dir.path().join(n)).unwrap())
            .collect();
        assert_eq!(
            contents,
            ["aaaa\nbbbb\n", "cccc\n", "a record longer than the limit\n"]
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "dd\n");
    }

    #[test]
    fn keeps_only_the_newest_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        // Someone else's file that merely looks similar is left alone.
        std::fs::write(dir.path().join("out-notes.jsonl"), "x").unwrap();
        let mut out = output(&path, 4, 2);
        for record in ["1111", "2222", "3333", "4444", "5555"] {
            out.append(record.as_bytes()).unwrap();
        }
        let kept: Vec<String> = backups(dir.path())
            .iter()
            .map(|n| std::fs::read_to_string(dir.path().join(n)).unwrap())
            .collect();
        assert_eq!(kept, ["3333", "4444"]);
        assert!(dir.path().join("out-notes.jsonl").exists());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "5555");
    }

    #[test]
    fn backup_names() {
        let t: jiff::Timestamp = "2026-11-25T08:00:00.123456Z".parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs.jsonl");
        let (p, order) = free_backup_path(&logs, t, None);
        assert_eq!(p.file_name().unwrap(), "logs-2026-11-25T08-00-00.123.jsonl");
        std::fs::write(&p, "").unwrap();
        let (q, order) = free_backup_path(&logs, t, Some(order));
        assert_eq!(
            q.file_name().unwrap(),
            "logs-2026-11-25T08-00-00.123-1.jsonl"
        );
        std::fs::remove_file(&p).unwrap();
        let (r, _) = free_backup_path(&logs, t, Some(order));
        assert_eq!(
            r.file_name().unwrap(),
            "logs-2026-11-25T08-00-00.123-2.jsonl",
            "a pruned smaller number is not reused"
        );
        let (s, _) = free_backup_path(&logs, t, None);
        assert_eq!(s, p, "free again, and nothing known about earlier backups");
        let time = "2026-11-25T08-00-00.123";
        assert_eq!(backup_order(time), Some((time.to_owned(), 0)));
        assert_eq!(
            backup_order(&format!("{time}-12")),
            Some((time.to_owned(), 12))
        );
        assert!(backup_order(&format!("{time}-2")) < backup_order(&format!("{time}-12")));
        assert_eq!(backup_order(&format!("{time}-")), None);
        assert_eq!(backup_order("notes"), None);
        assert_eq!(backup_order("2026-11-25T08-00-00.12x"), None);
    }

    #[test]
    fn config() {
        assert_eq!(parse(json!(null)), Ok(Rotation::default()));
        assert_eq!(
            parse(json!({"max_megabytes": 5, "max_backups": 3})),
            Ok(Rotation {
                max_megabytes: 5,
                max_backups: 3
            })
        );
        for (block, want) in [
            (json!({"max_megabytes": 0}), "`rotation.max_megabytes`"),
            (json!({"max_megabytes": -1}), "`rotation.max_megabytes`"),
            (json!({"max_days": 1}), "unknown key `rotation.max_days`"),
        ] {
            let err = parse(block.clone()).unwrap_err();
            assert!(err.contains(want), "{block}: {err}");
        }
    }
}
