//! Finding files: expand `include` globs by walking from each pattern's literal directory
//! prefix, then drop `exclude` matches.

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub(crate) fn compile(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid glob pattern {pattern:?}: {e}"))
}

/// The include/exclude patterns, compiled once.
pub(crate) struct Finder {
    includes: Vec<(PathBuf, usize, GlobMatcher)>,
    exclude: GlobSet,
}

impl Finder {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let includes = include
            .iter()
            .map(|p| {
                let (root, depth) = walk_root(p);
                Ok((root, depth, compile(p)?.compile_matcher()))
            })
            .collect::<Result<_, String>>()?;
        let mut set = GlobSetBuilder::new();
        for p in exclude {
            set.add(compile(p)?);
        }
        let exclude = set
            .build()
            .map_err(|e| format!("invalid exclude patterns: {e}"))?;
        Ok(Finder { includes, exclude })
    }

    /// The directories walked, and whether each is walked recursively.
    pub(crate) fn roots(&self) -> Vec<(PathBuf, bool)> {
        self.includes
            .iter()
            .map(|(root, depth, _)| (root.clone(), *depth > 1))
            .collect()
    }

    /// Regular files matching an include and no exclude, sorted, without duplicates.
    /// Unreadable directories are skipped (they are logged by the caller's next attempt to
    /// open a file, not here, to keep a busy poll loop quiet).
    pub(crate) fn find(&self) -> Vec<PathBuf> {
        let mut found = BTreeSet::new();
        for (root, depth, matcher) in &self.includes {
            let walker = walkdir::WalkDir::new(root)
                .follow_links(true)
                .max_depth(*depth);
            for entry in walker.into_iter().filter_map(Result::ok) {
                if !entry.file_type().is_file() {
                    continue;
                }
                let path = entry.path();
                if matcher.is_match(path) && !self.exclude.is_match(path) {
                    found.insert(path.to_path_buf());
                }
            }
        }
        found.into_iter().collect()
    }
}

/// The directory to walk for a pattern (its longest leading part without glob syntax) and
/// how deep to go (unbounded once a `**` appears).
fn walk_root(pattern: &str) -> (PathBuf, usize) {
    let is_glob = |s: &str| s.contains(['*', '?', '[', '{']);
    let parts: Vec<&str> = pattern.split('/').collect();
    let literal = parts.iter().take_while(|p| !is_glob(p)).count();
    let literal = literal.min(parts.len().saturating_sub(1));
    let root = if literal == 0 {
        if pattern.starts_with('/') {
            PathBuf::from("/")
        } else {
            PathBuf::from(".")
        }
    } else {
        let joined = parts[..literal].join("/");
        if joined.is_empty() {
            PathBuf::from("/")
        } else {
            PathBuf::from(joined)
        }
    };
    let rest = &parts[literal..];
    let depth = if rest.iter().any(|p| p.contains("**")) {
        usize::MAX
    } else {
        rest.len()
    };
    (root, depth)
}

/// The base name of a path, as `log.file.name` shows it.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn walk_roots() {
        assert_eq!(walk_root("/var/log/*.log"), (PathBuf::from("/var/log"), 1));
        assert_eq!(walk_root("/var/log/**/*.log").1, usize::MAX);
        assert_eq!(
            walk_root("/var/log/app.log"),
            (PathBuf::from("/var/log"), 1)
        );
        assert_eq!(walk_root("logs/*/x.log"), (PathBuf::from("logs"), 2));
        assert_eq!(walk_root("*.log"), (PathBuf::from("."), 1));
    }

    #[test]
    fn finds_includes_minus_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("a/b")).unwrap();
        for f in ["x.log", "y.txt", "a/z.log", "a/b/w.log", "skip.log"] {
            fs::write(d.join(f), "1\n").unwrap();
        }
        let inc = vec![
            format!("{}/**/*.log", d.display()),
            format!("{}/x.log", d.display()),
        ];
        let exc = vec![format!("{}/skip.log", d.display())];
        let found = Finder::new(&inc, &exc).unwrap().find();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a/b/w.log", "a/z.log", "x.log"]);
        let star = Finder::new(&[format!("{}/*.log", d.display())], &[])
            .unwrap()
            .find();
        assert_eq!(star.len(), 2, "`*` does not cross `/`: {star:?}");
    }
}
