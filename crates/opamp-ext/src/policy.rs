//! The local `remote_config.allow` policy: which files a remote config may tail and where
//! it may send them. The server can't override it (it lives in the local config only).
//!
//! A remote filelog `include` pattern is allowed when every path it can match is matched
//! by one of the allowed globs. That is a question about two *languages*, so it is decided
//! on glob tokens rather than by matching one glob against the other as text (where the
//! allowed `/var/log/*` would "match" the text `/var/log/**` and let a recursive pattern
//! through). The check is conservative: it may refuse a pattern that is in fact inside the
//! allowed set (e.g. written with different but equivalent wildcards), never the reverse.
//!
//! Not covered: symlinks inside an allowed directory that point elsewhere; whoever writes
//! the allow-list owns those directories.

use serde_json::Value;

/// `remote_config.allow`. Each list that is absent means "no restriction"; an empty list
/// allows nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowPolicy {
    /// Globs the `include` patterns of remote `filelog` receivers must stay inside.
    pub include_globs: Option<Vec<PathGlob>>,
    /// Patterns for exporter `endpoint`/`logs_endpoint` values.
    pub exporter_endpoints: Option<Vec<EndpointPattern>>,
    /// Globs for the `path` of remote `file` exporters.
    pub exporter_paths: Option<Vec<PathGlob>>,
}

/// One allowed path glob, with the Collector's (doublestar) syntax: `*` and `?` stay
/// within a path segment, `**` as a whole segment spans directories, `[a-z]`, `{a,b}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PathGlob {
    text: String,
    /// One token list per `{a,b}` alternative.
    alternatives: Vec<Vec<Allowed>>,
}

/// An allowed exporter endpoint: literal text where `*` stands for a run of characters
/// that holds no `/`, `:`, `@`, `?` or `#` (so it can't swallow a host, port or path):
/// `collector:4317`, `https://*.example.com:4318`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPattern(String);

/// Tokens of an allowed glob, each with the set of strings it matches.
#[derive(Debug, Clone, PartialEq)]
enum Allowed {
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `[...]`: one character from the set.
    Class(CharClass),
    /// `*`: any string without `/`.
    Star,
    /// A trailing `**`: any string.
    Any,
    /// `**/`: the empty string, or any string that ends with `/`.
    Dirs,
}

/// Tokens of a remote pattern, each standing for a *superset* of what it matches.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Remote {
    Lit(char),
    /// Any string without `/` (`*`, `?`, a class that can't match `/`).
    Segment,
    /// Any string (`**`, a class that might match `/`).
    Any,
    /// `**/`: the empty string or any string ending with `/`.
    Dirs,
}

#[derive(Debug, Clone, PartialEq)]
struct CharClass {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl CharClass {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

/// The most alternatives one pattern may expand to; a remote config can't make the check
/// expensive with nested braces.
const MAX_ALTERNATIVES: usize = 256;

impl PathGlob {
    pub fn parse(text: &str) -> Result<PathGlob, String> {
        if text.is_empty() {
            return Err("an empty glob matches nothing".into());
        }
        let alternatives = expand_braces(text)?
            .iter()
            .map(|alt| tokenize(alt))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{text:?}: {e}"))?;
        Ok(PathGlob {
            text: text.to_owned(),
            alternatives,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether every path `pattern` can match is matched by this glob.
    fn covers(&self, pattern: &[Remote]) -> bool {
        self.alternatives
            .iter()
            .any(|allowed| Cover::new(allowed, pattern).run())
    }
}

impl EndpointPattern {
    pub fn parse(text: &str) -> Result<EndpointPattern, String> {
        if text.is_empty() {
            return Err("an empty endpoint pattern matches nothing".into());
        }
        Ok(EndpointPattern(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn matches(&self, endpoint: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let text: Vec<char> = endpoint.chars().collect();
        // reachable[j]: the pattern consumed so far can end at text position j.
        let mut reachable = vec![false; text.len() + 1];
        reachable[0] = true;
        for &p in &pattern {
            let mut next = vec![false; text.len() + 1];
            for j in 0..=text.len() {
                if !reachable[j] {
                    continue;
                }
                if p == '*' {
                    next[j] = true;
                    let mut k = j;
                    while k < text.len() && !matches!(text[k], '/' | ':' | '@' | '?' | '#') {
                        k += 1;
                        next[k] = true;
                    }
                } else if j < text.len() && text[j] == p {
                    next[j + 1] = true;
                }
            }
            reachable = next;
        }
        reachable[text.len()]
    }
}

impl AllowPolicy {
    fn is_unrestricted(&self) -> bool {
        self.include_globs.is_none()
            && self.exporter_endpoints.is_none()
            && self.exporter_paths.is_none()
    }

    /// Checks a remote config (the agent's YAML) against the policy. The error says which
    /// component and value is outside it. Component types the policy can't reason about
    /// are refused while the matching list is set (fail closed).
    pub fn check(&self, yaml: &str) -> Result<(), String> {
        if self.is_unrestricted() {
            return Ok(());
        }
        let config: Value = serde_saphyr::from_str(yaml)
            .map_err(|e| format!("the remote config is not valid YAML: {e}"))?;
        if let Some(globs) = &self.include_globs {
            for (id, block) in section(&config, "receivers") {
                match component_type(id) {
                    "filelog" => {
                        for pattern in
                            strings(block.get("include"), &format!("receivers.{id}.include"))?
                        {
                            check_path(
                                &pattern,
                                globs,
                                &format!("receivers.{id}.include"),
                                "include_globs",
                            )?;
                        }
                    }
                    // Listens on the network; reads no files.
                    "otlp" => {}
                    other => {
                        return Err(format!(
                            "receivers.{id}: receiver type `{other}` can't be checked against `remote_config.allow.include_globs`, so it is refused"
                        ));
                    }
                }
            }
        }
        for (id, block) in section(&config, "exporters") {
            let place = format!("exporters.{id}");
            match component_type(id) {
                "otlp" | "otlphttp" => {
                    if let Some(patterns) = &self.exporter_endpoints {
                        for key in ["endpoint", "logs_endpoint"] {
                            if let Some(value) = block.get(key) {
                                check_endpoint(value, patterns, &format!("{place}.{key}"))?;
                            }
                        }
                    }
                }
                "file" => {
                    if let Some(globs) = &self.exporter_paths {
                        for path in strings(block.get("path"), &format!("{place}.path"))? {
                            check_path(&path, globs, &format!("{place}.path"), "exporter_paths")?;
                        }
                    }
                }
                "debug" => {}
                other if self.exporter_endpoints.is_some() || self.exporter_paths.is_some() => {
                    return Err(format!(
                        "{place}: exporter type `{other}` can't be checked against `remote_config.allow`, so it is refused"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn component_type(id: &str) -> &str {
    id.split_once('/').map_or(id, |(kind, _)| kind)
}

/// The entries of a top-level section; anything that is not a mapping has none (the agent's
/// own validation refuses such a config with a better message).
fn section<'a>(config: &'a Value, name: &str) -> impl Iterator<Item = (&'a str, &'a Value)> {
    config
        .get(name)
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
}

/// A string or a list of strings; anything else can't be checked and is refused.
fn strings(value: Option<&Value>, place: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    format!("{place}: expected strings, so the policy can't check it")
                })
            })
            .collect(),
        Some(_) => Err(format!(
            "{place}: expected a list of strings, so the policy can't check it"
        )),
    }
}

fn refuse_env(value: &str, place: &str) -> Result<(), String> {
    // Substitution happens after this check, so `${...}` could expand to anything.
    if value.contains("${") {
        return Err(format!(
            "{place}: {value:?} uses an environment reference, which a remote config may not do here"
        ));
    }
    Ok(())
}

fn check_path(pattern: &str, allowed: &[PathGlob], place: &str, key: &str) -> Result<(), String> {
    refuse_env(pattern, place)?;
    let outside = || {
        let list = allowed
            .iter()
            .map(|g| format!("{:?}", g.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        format!("{place}: {pattern:?} is outside `remote_config.allow.{key}` ([{list}])")
    };
    let alternatives = expand_braces(pattern).map_err(|e| format!("{place}: {pattern:?}: {e}"))?;
    for alt in alternatives {
        if alt.split(['/', '\\']).any(|segment| segment == "..") {
            return Err(format!(
                "{place}: {pattern:?} climbs out of a directory with `..`"
            ));
        }
        let tokens = tokenize(&alt).map_err(|e| format!("{place}: {pattern:?}: {e}"))?;
        let remote: Vec<Remote> = tokens.iter().map(Allowed::widen).collect();
        if !allowed.iter().any(|g| g.covers(&remote)) {
            return Err(outside());
        }
    }
    Ok(())
}

fn check_endpoint(value: &Value, allowed: &[EndpointPattern], place: &str) -> Result<(), String> {
    let Some(endpoint) = value.as_str() else {
        return Err(format!(
            "{place}: expected a string, so the policy can't check it"
        ));
    };
    refuse_env(endpoint, place)?;
    if allowed.iter().any(|p| p.matches(endpoint)) {
        return Ok(());
    }
    let list = allowed
        .iter()
        .map(|p| format!("{:?}", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    Err(format!(
        "{place}: {endpoint:?} is not in `remote_config.allow.exporter_endpoints` ([{list}])"
    ))
}

impl Allowed {
    /// The remote reading of a token: a superset of what the agent's matcher will accept.
    fn widen(&self) -> Remote {
        match self {
            Allowed::Lit(c) => Remote::Lit(*c),
            Allowed::One | Allowed::Star => Remote::Segment,
            Allowed::Class(class) if !class.matches('/') => Remote::Segment,
            Allowed::Class(_) | Allowed::Any => Remote::Any,
            Allowed::Dirs => Remote::Dirs,
        }
    }
}

/// The containment check `L(remote) ⊆ L(allowed)`: each remote token must be absorbed by an
/// allowed token whose language contains it. Memoized over (allowed, remote) positions, so
/// it is quadratic in the pattern lengths.
struct Cover<'a> {
    allowed: &'a [Allowed],
    remote: &'a [Remote],
    memo: Vec<Option<bool>>,
}

impl<'a> Cover<'a> {
    fn new(allowed: &'a [Allowed], remote: &'a [Remote]) -> Self {
        Cover {
            allowed,
            remote,
            memo: vec![None; (allowed.len() + 1) * (remote.len() + 1)],
        }
    }

    fn run(&mut self) -> bool {
        self.at(0, 0)
    }

    fn at(&mut self, a: usize, r: usize) -> bool {
        let key = a * (self.remote.len() + 1) + r;
        if let Some(done) = self.memo[key] {
            return done;
        }
        let result = self.step(a, r);
        self.memo[key] = Some(result);
        result
    }

    fn step(&mut self, a: usize, r: usize) -> bool {
        let Some(token) = self.allowed.get(a) else {
            return r == self.remote.len();
        };
        let next = self.remote.get(r).copied();
        let one_char = |ok: &dyn Fn(char) -> bool| matches!(next, Some(Remote::Lit(c)) if ok(c));
        match token {
            Allowed::Any => self.at(a + 1, r) || (next.is_some() && self.at(a, r + 1)),
            Allowed::Dirs => {
                if self.at(a + 1, r) {
                    return true;
                }
                // Absorb remote tokens whose concatenation surely ends with `/`: up to a
                // literal `/`, or up to a remote `**/` that starts a segment.
                (r..self.remote.len())
                    .filter(|&k| match self.remote[k] {
                        Remote::Lit('/') => true,
                        Remote::Dirs => k == r || self.remote[k - 1] == Remote::Lit('/'),
                        _ => false,
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .any(|k| self.at(a + 1, k + 1))
            }
            Allowed::Star => {
                self.at(a + 1, r)
                    || (matches!(next, Some(Remote::Segment)) || one_char(&|c| c != '/'))
                        && self.at(a, r + 1)
            }
            Allowed::One => one_char(&|c| c != '/') && self.at(a + 1, r + 1),
            Allowed::Class(class) => one_char(&|c| class.matches(c)) && self.at(a + 1, r + 1),
            Allowed::Lit(l) => one_char(&|c| c == *l) && self.at(a + 1, r + 1),
        }
    }
}

/// Expands `{a,b}` alternatives (nested too), keeping `\`-escaped characters as they are.
fn expand_braces(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    expand_into(&chars, &mut out)?;
    Ok(out)
}

fn expand_into(chars: &[char], out: &mut Vec<String>) -> Result<(), String> {
    let mut i = 0;
    let mut open = None;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' => {
                // A class is literal text for brace expansion.
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
            }
            '{' => {
                open = Some(i);
                break;
            }
            '}' => return Err("`}` without a matching `{`".into()),
            _ => {}
        }
        i += 1;
    }
    let Some(open) = open else {
        out.push(chars.iter().collect());
        return Ok(());
    };
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut start = open + 1;
    let mut close = None;
    let mut j = open;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 1,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(&chars[start..j]);
                    close = Some(j);
                    break;
                }
            }
            ',' if depth == 1 => {
                parts.push(&chars[start..j]);
                start = j + 1;
            }
            _ => {}
        }
        j += 1;
    }
    let close = close.ok_or("`{` without a matching `}`")?;
    for part in parts {
        let mut combined = chars[..open].to_vec();
        combined.extend_from_slice(part);
        combined.extend_from_slice(&chars[close + 1..]);
        expand_into(&combined, out)?;
        if out.len() > MAX_ALTERNATIVES {
            return Err(format!(
                "more than {MAX_ALTERNATIVES} `{{a,b}}` alternatives"
            ));
        }
    }
    Ok(())
}

/// Tokenizes a brace-free glob.
fn tokenize(text: &str) -> Result<Vec<Allowed>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let escaped = chars.get(i + 1).ok_or("a trailing `\\` escapes nothing")?;
                tokens.push(Allowed::Lit(*escaped));
                i += 2;
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                let segment_start = i == 0 || chars[i - 1] == '/';
                let after = chars.get(i + 2);
                match (segment_start, after) {
                    (true, None) => tokens.push(Allowed::Any),
                    (true, Some('/')) => {
                        tokens.push(Allowed::Dirs);
                        i += 1; // the `/` belongs to `**/`
                    }
                    // `**` inside a segment is an ordinary `*`.
                    _ => tokens.push(Allowed::Star),
                }
                i += 2;
            }
            '*' => {
                tokens.push(Allowed::Star);
                i += 1;
            }
            '?' => {
                tokens.push(Allowed::One);
                i += 1;
            }
            '[' => {
                let (class, end) = parse_class(&chars, i)?;
                tokens.push(Allowed::Class(class));
                i = end;
            }
            _ => {
                tokens.push(Allowed::Lit(c));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// Parses `[...]` starting at `start`; returns the class and the index after `]`.
fn parse_class(chars: &[char], start: usize) -> Result<(CharClass, usize), String> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or("`[` without a matching `]`")?;
        if c == ']' && !first {
            return Ok((CharClass { negated, ranges }, i + 1));
        }
        first = false;
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = chars[i + 2];
            if hi < c {
                return Err(format!("the range `{c}-{hi}` is backwards"));
            }
            ranges.push((c, hi));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(includes: &[&str]) -> AllowPolicy {
        AllowPolicy {
            include_globs: Some(
                includes
                    .iter()
                    .map(|g| PathGlob::parse(g).unwrap())
                    .collect(),
            ),
            ..AllowPolicy::default()
        }
    }

    fn include(policy: &AllowPolicy, pattern: &str) -> Result<(), String> {
        policy.check(&format!(
            "receivers:\n  filelog/x:\n    include: [{pattern:?}]\n"
        ))
    }

    #[test]
    fn contained_patterns_pass() {
        let p = policy(&["/var/log/**", "/srv/*/logs/*.log"]);
        for ok in [
            "/var/log/syslog",
            "/var/log/*.log",
            "/var/log/**/*.log",
            "/var/log/**",
            "/var/log/{nginx,apache}/*.log",
            "/var/log/app-[0-9].log",
            "/srv/web/logs/*.log",
            "/srv/*/logs/a?.log",
        ] {
            assert_eq!(include(&p, ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn patterns_reaching_outside_are_refused() {
        let p = policy(&["/var/log/*.log", "/srv/*/logs/*.log"]);
        for bad in [
            "/etc/passwd",
            "/var/log/**",
            "/var/log/*/x.log",
            "/var/log/../../etc/*.log",
            "/var/log/{a.log,../../etc/shadow}",
            "/**/*.log",
            "/var/log/*",
            "/var/log/[!a].log/../x",
            "/srv/**/logs/*.log",
            "/srv/a/logs/*",
            "var/log/a.log",
            "${env:HOME}/x.log",
            "/var/log/${env:X}.log",
        ] {
            assert!(include(&p, bad).is_err(), "{bad} should be refused");
        }
        let err = include(&p, "/etc/passwd").unwrap_err();
        assert!(err.contains("receivers.filelog/x.include"), "{err}");
        assert!(err.contains("remote_config.allow.include_globs"), "{err}");
    }

    #[test]
    fn a_text_match_is_not_enough() {
        // `*` matches the text `**` but not what `**` matches.
        let p = policy(&["/var/log/*"]);
        assert!(include(&p, "/var/log/**").is_err());
        let p = policy(&["/var/log/?"]);
        assert!(include(&p, "/var/log/*").is_err());
        // A class that may match `/` is treated as spanning directories.
        let p = policy(&["/var/log/*x"]);
        assert!(include(&p, "/var/log/[!a]x").is_err());
        assert!(include(&p, "/var/log/[ab]x").is_ok());
    }

    #[test]
    fn dirs_glob_matches_zero_or_more_directories() {
        let p = policy(&["/var/log/**/*.log"]);
        assert!(include(&p, "/var/log/a.log").is_ok());
        assert!(include(&p, "/var/log/x/y/a.log").is_ok());
        assert!(include(&p, "/var/log/**/*.log").is_ok());
        assert!(include(&p, "/var/log/**/*.txt").is_err());
    }

    #[test]
    fn other_receiver_types_are_refused_while_globs_are_set() {
        let p = policy(&["/var/log/**"]);
        let err = p
            .check("receivers:\n  journald:\n    directory: /\n")
            .unwrap_err();
        assert!(err.contains("`journald`"), "{err}");
        assert!(p.check("receivers:\n  otlp:\n    protocols: {}\n").is_ok());
    }

    #[test]
    fn endpoints() {
        let p = AllowPolicy {
            exporter_endpoints: Some(vec![
                EndpointPattern::parse("collector:4317").unwrap(),
                EndpointPattern::parse("https://*.example.com:4318").unwrap(),
            ]),
            ..AllowPolicy::default()
        };
        let check = |kind: &str, key: &str, value: &str| {
            p.check(&format!("exporters:\n  {kind}:\n    {key}: {value:?}\n"))
        };
        assert!(check("otlp", "endpoint", "collector:4317").is_ok());
        assert!(check("otlphttp/a", "logs_endpoint", "https://eu.example.com:4318").is_ok());
        assert!(check("otlp", "endpoint", "evil:4317").is_err());
        assert!(check("otlphttp", "endpoint", "https://evil.com/.example.com:4318").is_err());
        assert!(check("otlphttp", "endpoint", "https://a@evil.example.com:4318").is_err());
        assert!(check("otlp", "endpoint", "${env:X}").is_err());
        let err = check("kafka", "brokers", "x").unwrap_err();
        assert!(err.contains("`kafka`"), "{err}");
        assert!(p.check("exporters:\n  debug:\n").is_ok());
        let err = check("otlp", "endpoint", "evil:4317").unwrap_err();
        assert!(err.contains("exporters.otlp.endpoint"), "{err}");
    }

    #[test]
    fn file_exporter_paths() {
        let p = AllowPolicy {
            exporter_paths: Some(vec![
                PathGlob::parse("/var/spool/centimane/*.jsonl").unwrap(),
            ]),
            ..AllowPolicy::default()
        };
        assert!(
            p.check("exporters:\n  file:\n    path: /var/spool/centimane/out.jsonl\n")
                .is_ok()
        );
        assert!(
            p.check("exporters:\n  file:\n    path: /etc/cron.d/x\n")
                .is_err()
        );
    }

    #[test]
    fn unrestricted_policy_does_not_parse() {
        assert_eq!(AllowPolicy::default().check(": not yaml ["), Ok(()));
        assert!(policy(&["/x"]).check("a: [").is_err());
    }

    #[test]
    fn bad_globs_are_reported() {
        assert!(PathGlob::parse("/var/[log").is_err());
        assert!(PathGlob::parse("/var/{a,b").is_err());
        assert!(PathGlob::parse("/var/[z-a]").is_err());
        assert!(PathGlob::parse("").is_err());
        let many = "/{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}";
        assert!(PathGlob::parse(many).is_err());
    }
}
