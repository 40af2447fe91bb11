//! A port of the record reading of Go's `encoding/csv` (`Reader.Read` with `LazyQuotes`,
//! no comments, no leading-space trimming), which Stanza's csv parser builds on. Differences
//! in what is accepted or how fields come out would change parse results, so the rules are
//! kept exactly: `\r\n` reads as `\n`, a trailing `\r` at the end of input is dropped,
//! empty lines are skipped, a quoted field may span lines and keeps its newlines, `""`
//! inside quotes is a quote, and without `lazy_quotes` a quote inside an unquoted field or
//! a stray quote after a quoted field is an error.

use std::borrow::Cow;

/// What one call to [`Reader::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// The input is used up.
    End,
    /// A record. `complete` is false when a quoting error cut it short: it then holds the
    /// fields before the error (Go returns those along with the error).
    Fields { fields: Vec<String>, complete: bool },
}

/// Reads records from one string.
pub(crate) struct Reader<'a> {
    rest: &'a str,
    comma: char,
    lazy_quotes: bool,
}

/// Whether Go's reader accepts `c` as a field delimiter.
pub(crate) fn valid_delimiter(c: char) -> bool {
    !matches!(c, '\0' | '"' | '\r' | '\n' | char::REPLACEMENT_CHARACTER)
}

/// 1 when `line` ends with a newline.
fn newline_len(line: &str) -> usize {
    usize::from(line.ends_with('\n'))
}

impl<'a> Reader<'a> {
    /// `comma` must pass [`valid_delimiter`].
    pub(crate) fn new(text: &'a str, comma: char, lazy_quotes: bool) -> Reader<'a> {
        Reader {
            rest: text,
            comma,
            lazy_quotes,
        }
    }

    /// The next line with its `\n` (if any), `\r\n` read as `\n`; `None` at the end.
    fn read_line(&mut self) -> Option<Cow<'a, str>> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match self.rest.find('\n') {
            Some(i) => self.rest.split_at(i + 1),
            None => {
                let line = self.rest;
                // Go drops a `\r` ending the input.
                (line.strip_suffix('\r').unwrap_or(line), "")
            }
        };
        self.rest = rest;
        Some(match line.strip_suffix("\r\n") {
            Some(body) => Cow::Owned(format!("{body}\n")),
            None => Cow::Borrowed(line),
        })
    }

    /// Reads one record.
    pub(crate) fn read(&mut self) -> Record {
        let mut line = loop {
            match self.read_line() {
                None => return Record::End,
                // An empty line is skipped.
                Some(l) if l.len() == newline_len(&l) => continue,
                Some(l) => break l,
            }
        };
        let mut fields = Vec::new();
        let mut pos = 0usize;
        let comma_len = self.comma.len_utf8();
        loop {
            let rest = &line[pos..];
            if !rest.starts_with('"') {
                // An unquoted field runs to the next delimiter or the end of the line.
                let (field, next) = match rest.find(self.comma) {
                    Some(i) => (&rest[..i], Some(pos + i + comma_len)),
                    None => (&rest[..rest.len() - newline_len(rest)], None),
                };
                if !self.lazy_quotes && field.contains('"') {
                    return Record::Fields {
                        fields,
                        complete: false,
                    };
                }
                fields.push(field.to_owned());
                match next {
                    Some(n) => {
                        pos = n;
                        continue;
                    }
                    None => break,
                }
            }
            // A quoted field, possibly continuing on the following lines.
            let mut field = String::new();
            pos += 1;
            loop {
                let rest = &line[pos..];
                if let Some(i) = rest.find('"') {
                    field.push_str(&rest[..i]);
                    pos += i + 1;
                    let after = &line[pos..];
                    match after.chars().next() {
                        Some('"') => {
                            field.push('"');
                            pos += 1;
                        }
                        Some(c) if c == self.comma => {
                            pos += comma_len;
                            fields.push(field);
                            break;
                        }
                        _ if after.len() == newline_len(after) => {
                            fields.push(field);
                            return Record::Fields {
                                fields,
                                complete: true,
                            };
                        }
                        _ if self.lazy_quotes => field.push('"'),
                        _ => {
                            return Record::Fields {
                                fields,
                                complete: false,
                            };
                        }
                    }
                } else if !rest.is_empty() {
                    // The line ends inside the quotes: the field goes on on the next line.
                    field.push_str(rest);
                    match self.read_line() {
                        Some(next) => {
                            line = next;
                            pos = 0;
                        }
                        None => {
                            line = Cow::Borrowed("");
                            pos = 0;
                        }
                    }
                } else {
                    // The input ended inside the quotes.
                    if !self.lazy_quotes {
                        return Record::Fields {
                            fields,
                            complete: false,
                        };
                    }
                    fields.push(field);
                    return Record::Fields {
                        fields,
                        complete: true,
                    };
                }
            }
        }
        Record::Fields {
            fields,
            complete: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str, lazy: bool) -> Vec<(Vec<String>, bool)> {
        let mut r = Reader::new(text, ',', lazy);
        let mut out = Vec::new();
        while let Record::Fields { fields, complete } = r.read() {
            out.push((fields, complete));
        }
        out
    }

    fn ok(fields: &[&str]) -> (Vec<String>, bool) {
        (fields.iter().map(|f| (*f).to_owned()).collect(), true)
    }

    #[test]
    fn plain_and_quoted_fields() {
        assert_eq!(records("a,b,c", false), [ok(&["a", "b", "c"])]);
        assert_eq!(
            records("a,\"b,c\",\"d\"\"e\"", false),
            [ok(&["a", "b,c", "d\"e"])]
        );
        assert_eq!(records("a,", false), [ok(&["a", ""])]);
        assert_eq!(records("a\r\nb\r", false), [ok(&["a"]), ok(&["b"])]);
        assert_eq!(records("\n\na\n\n", false), [ok(&["a"])]);
        assert_eq!(records("\"a\nb\",c", false), [ok(&["a\nb", "c"])]);
    }

    #[test]
    fn quote_errors_and_lazy_quotes() {
        assert_eq!(records("a,b\"c,d", false), [(vec!["a".to_owned()], false)]);
        assert_eq!(records("a,b\"c,d", true), [ok(&["a", "b\"c", "d"])]);
        assert_eq!(records("\"a\"b,c", false), [(vec![], false)]);
        assert_eq!(records("\"a\"b,c", true), [ok(&["a\"b,c"])]);
        assert_eq!(records("x,\"open", false), [(vec!["x".to_owned()], false)]);
        assert_eq!(records("x,\"open", true), [ok(&["x", "open"])]);
    }

    #[test]
    fn multibyte_delimiters() {
        let mut r = Reader::new("a→\"b\"→c", '→', false);
        assert_eq!(
            r.read(),
            Record::Fields {
                fields: vec!["a".into(), "b".into(), "c".into()],
                complete: true
            }
        );
        assert_eq!(r.read(), Record::End);
        assert!(!valid_delimiter('"') && valid_delimiter('\t'));
    }
}
