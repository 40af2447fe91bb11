//! The parts of Go's `net/url` that Stanza's uri parser relies on: `ParseRequestURI`,
//! `ParseQuery`, `Hostname`/`Port` and `EscapedPath`, with Go's acceptance rules, because
//! which strings parse and how the path is re-escaped show up in the parser's output.
//! Percent-decoding can spell bytes that are not UTF-8; such bytes become U+FFFD.

use crate::transformers::sanitize::to_valid_utf8;

/// The pieces of a request URI the parser reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Url {
    pub scheme: String,
    pub username: Option<String>,
    /// `host[:port]` as written (unescaped).
    pub host: String,
    /// The decoded path.
    pub path: String,
    /// The path as written, when it differs from the default escaping of `path`.
    raw_path: Option<String>,
    pub raw_query: String,
}

/// Which part of a URL a string is escaped or unescaped for (Go's `encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    UserPassword,
    QueryComponent,
    Host,
    Zone,
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn unhex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Go's `shouldEscape`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(mode, Mode::Host | Mode::Zone)
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => c == b'?',
            Mode::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
            Mode::QueryComponent => true,
            Mode::Host | Mode::Zone => true,
        },
        _ => true,
    }
}

/// Go's `unescape`: decodes `%XX` (and `+` as a space in query components), refusing
/// malformed escapes and characters the mode does not allow.
fn unescape(s: &str, mode: Mode) -> Result<String, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut needs_work = false;
    while i < b.len() {
        match b[i] {
            b'%' => {
                needs_work = true;
                if i + 2 >= b.len() || !is_hex(b[i + 1]) || !is_hex(b[i + 2]) {
                    let end = (i + 3).min(b.len());
                    return Err(format!(
                        "invalid URL escape {:?}",
                        String::from_utf8_lossy(&b[i..end])
                    ));
                }
                if mode == Mode::Host && unhex(b[i + 1]) < 8 && &s[i..i + 3] != "%25" {
                    return Err(format!("invalid URL escape {:?}", &s[i..i + 3]));
                }
                if mode == Mode::Zone {
                    let v = unhex(b[i + 1]) << 4 | unhex(b[i + 2]);
                    if &s[i..i + 3] != "%25" && v != b' ' && should_escape(v, Mode::Host) {
                        return Err(format!("invalid URL escape {:?}", &s[i..i + 3]));
                    }
                }
                i += 3;
            }
            b'+' => {
                needs_work |= mode == Mode::QueryComponent;
                i += 1;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                    return Err(format!(
                        "invalid character {:?} in host name",
                        char::from(c)
                    ));
                }
                i += 1;
            }
        }
    }
    if !needs_work {
        return Ok(s.to_owned());
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(unhex(b[i + 1]) << 4 | unhex(b[i + 2]));
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => to_valid_utf8(e.as_bytes()),
    })
}

/// Go's `escape` for the path mode.
fn escape_path(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if should_escape(c, Mode::Path) {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
        } else {
            out.push(char::from(c));
        }
    }
    out
}

/// Go's `validEncoded` for the path mode.
fn valid_encoded_path(s: &str) -> bool {
    s.bytes().all(|c| {
        matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'['
                | b']'
                | b'%'
        ) || !should_escape(c, Mode::Path)
    })
}

/// Go's `getScheme`: the scheme (if the text starts with one) and the rest.
fn split_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".to_owned()),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn valid_userinfo(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | ':'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | '%'
                    | '@'
            )
    })
}

/// Go's `parseHost`: `host[:port]`, with IP literals in brackets.
fn parse_host(host: &str) -> Result<String, String> {
    if host.starts_with('[') {
        let i = host.rfind(']').ok_or("missing ']' in host")?;
        let port = &host[i + 1..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
        if let Some(zone) = host[..i].find("%25") {
            return Ok(format!(
                "{}{}{}",
                unescape(&host[..zone], Mode::Host)?,
                unescape(&host[zone..i], Mode::Zone)?,
                unescape(&host[i..], Mode::Host)?
            ));
        }
    } else if let Some(i) = host.rfind(':') {
        let port = &host[i..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
    }
    unescape(host, Mode::Host)
}

/// Go's `parseAuthority`: the user name (if any) and the host.
fn parse_authority(authority: &str) -> Result<(Option<String>, String), String> {
    let at = authority.rfind('@');
    let host = parse_host(at.map_or(authority, |i| &authority[i + 1..]))?;
    let Some(at) = at else {
        return Ok((None, host));
    };
    let userinfo = &authority[..at];
    if !valid_userinfo(userinfo) {
        return Err("net/url: invalid userinfo".to_owned());
    }
    let name = userinfo.split_once(':').map_or(userinfo, |(name, _)| name);
    Ok((Some(unescape(name, Mode::UserPassword)?), host))
}

impl Url {
    /// Go's `url.ParseRequestURI`.
    pub(crate) fn parse_request_uri(raw: &str) -> Result<Url, String> {
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err("net/url: invalid control character in URL".to_owned());
        }
        if raw.is_empty() {
            return Err("empty url".to_owned());
        }
        let mut url = Url::default();
        if raw == "*" {
            url.path = "*".to_owned();
            return Ok(url);
        }
        let (scheme, rest) = split_scheme(raw)?;
        url.scheme = scheme.to_ascii_lowercase();
        let mut rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
            &rest[..rest.len() - 1]
        } else {
            match rest.split_once('?') {
                Some((before, query)) => {
                    url.raw_query = query.to_owned();
                    before
                }
                None => rest,
            }
        };
        if !rest.starts_with('/') {
            if !url.scheme.is_empty() {
                // A rootless path after a scheme is opaque; it has no host or path.
                return Ok(url);
            }
            return Err("invalid URI for request".to_owned());
        }
        if !url.scheme.is_empty() && rest.starts_with("//") {
            let authority = &rest[2..];
            let (authority, path) = match authority.find('/') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            let (username, host) = parse_authority(authority)?;
            url.username = username;
            url.host = host;
            rest = path;
        }
        url.path = unescape(rest, Mode::Path)?;
        if escape_path(&url.path) != rest {
            url.raw_path = Some(rest.to_owned());
        }
        Ok(url)
    }

    /// Go's `splitHostPort` on the host.
    fn host_port(&self) -> (&str, &str) {
        let mut host = self.host.as_str();
        let mut port = "";
        if let Some(colon) = host.rfind(':')
            && valid_optional_port(&host[colon..])
        {
            port = &host[colon + 1..];
            host = &host[..colon];
        }
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            host = inner;
        }
        (host, port)
    }

    pub(crate) fn hostname(&self) -> &str {
        self.host_port().0
    }

    pub(crate) fn port(&self) -> &str {
        self.host_port().1
    }

    /// Go's `EscapedPath`: the path as written when that is a valid encoding of it,
    /// otherwise the default escaping.
    pub(crate) fn escaped_path(&self) -> String {
        if let Some(raw) = &self.raw_path
            && valid_encoded_path(raw)
            && unescape(raw, Mode::Path).is_ok_and(|p| p == self.path)
        {
            return raw.clone();
        }
        if self.path == "*" {
            return "*".to_owned();
        }
        escape_path(&self.path)
    }
}

/// Go's `url.ParseQuery`: parameters in order of first appearance, each with its values in
/// order. Bad parameters are skipped; the first problem is returned alongside.
pub(crate) fn parse_query(query: &str) -> (Vec<(String, Vec<String>)>, Option<String>) {
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    let mut error = None;
    for part in query.split('&') {
        if part.contains(';') {
            error.get_or_insert_with(|| "invalid semicolon separator in query".to_owned());
            continue;
        }
        if part.is_empty() {
            continue;
        }
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let decoded = unescape(key, Mode::QueryComponent)
            .and_then(|k| unescape(value, Mode::QueryComponent).map(|v| (k, v)));
        match decoded {
            Ok((key, value)) => match params.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value),
                None => params.push((key, vec![value])),
            },
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (params, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scheme, user, host, port, escaped path and query, joined by `|` (`-` for no user).
    fn parts(raw: &str) -> Result<String, String> {
        let u = Url::parse_request_uri(raw)?;
        Ok([
            u.scheme.as_str(),
            u.username.as_deref().unwrap_or("-"),
            u.hostname(),
            u.port(),
            &u.escaped_path(),
            &u.raw_query,
        ]
        .join("|"))
    }

    #[test]
    fn request_uris() {
        let p = parts("HTTPS://go:pw@golang.org:8443/v2/a%2Fb?x=1").unwrap();
        assert_eq!(p, "https|go|golang.org|8443|/v2/a%2Fb|x=1");
        assert_eq!(parts("http://:8080").unwrap(), "http|-||8080||");
        assert_eq!(parts("http:///v1/app").unwrap(), "http|-|||/v1/app|");
        assert_eq!(parts("/a b#c").unwrap(), "|-|||/a%20b%23c|");
        assert_eq!(parts("http://[::1]:80/").unwrap(), "http|-|::1|80|/|");
        assert_eq!(parts("mailto:x@y").unwrap(), "mailto|-||||");
        for bad in [
            ":8080",
            "user=dev",
            "golang.org/app",
            "",
            "/a%zz",
            "http://a b/",
            "http://x:y:z/",
            "/\n",
        ] {
            assert!(Url::parse_request_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries() {
        let (params, err) = parse_query("env=prod&env=stage&token=0000&a+b=%41&&x");
        assert!(err.is_none());
        assert_eq!(
            params,
            [
                (
                    "env".to_owned(),
                    vec!["prod".to_owned(), "stage".to_owned()]
                ),
                ("token".to_owned(), vec!["0000".to_owned()]),
                ("a b".to_owned(), vec!["A".to_owned()]),
                ("x".to_owned(), vec![String::new()]),
            ]
        );
        assert!(parse_query("q;go").1.is_some());
        assert!(parse_query("q=%zz").1.is_some());
        assert_eq!(parse_query("q=%ff").0[0].1, ["\u{fffd}"]);
    }
}
