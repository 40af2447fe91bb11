//! `uri_parser` (stanza.md §5.6): a request URI becomes a map with `scheme`, `user` (never
//! the password), `host`, `port`, `path` (escaped) and `query` (parameter → list of
//! values), each present only when non-empty. A value starting with `?` is read as a query
//! string alone, and then a malformed query is an error; in a full URI bad parameters are
//! skipped, as Go's `URL.Query` does.

mod url;

use super::{Parse, ParserOp, parser_config};
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Map, Value};
use serde_json::{Map as JsonMap, Value as Json};
use url::{Url, parse_query};

parser_config!(UriConfig {});

struct UriParser;

pub(crate) fn build(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    let mut cfg: UriConfig = crate::config::from_block(block)?;
    Ok(Box::new(ParserOp::new(cfg.base()?, UriParser)))
}

/// Adds `query` to `map` unless it has no parameters.
fn add_query(map: &mut Map, params: Vec<(String, Vec<String>)>) {
    if params.is_empty() {
        return;
    }
    let query: Map = params
        .into_iter()
        .map(|(k, values)| {
            (
                k.into(),
                Value::Array(Box::new(values.into_iter().map(Value::from).collect())),
            )
        })
        .collect();
    map.insert("query".into(), Value::Map(Box::new(query)));
}

/// The map of `text`.
pub(crate) fn parse_uri(text: &str) -> Result<Map, String> {
    let mut map = Map::default();
    if let Some(query) = text.strip_prefix('?') {
        let (params, error) = parse_query(query);
        if let Some(e) = error {
            return Err(e);
        }
        add_query(&mut map, params);
        return Ok(map);
    }
    let url = Url::parse_request_uri(text).map_err(|e| format!("parse {text:?}: {e}"))?;
    let mut put = |key: &str, value: &str| {
        if !value.is_empty() {
            map.insert(key.into(), Value::Str(value.into()));
        }
    };
    put("scheme", &url.scheme);
    put("user", url.username.as_deref().unwrap_or_default());
    put("host", url.hostname());
    put("port", url.port());
    put("path", &url.escaped_path());
    add_query(&mut map, parse_query(&url.raw_query).0);
    Ok(map)
}

impl Parse for UriParser {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
        let Value::Str(text) = value else {
            return Err(ProcessError::WrongType {
                what: "a URI",
                got: value.type_name(),
            });
        };
        parse_uri(text)
            .map(Value::from)
            .map_err(ProcessError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_present_parts_only() {
        let m = parse_uri("https://app.com?token=0000&env=prod&env=stage").unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["scheme", "host", "query"]);
        let q = m["query"].as_map().unwrap();
        assert_eq!(
            q["env"],
            Value::Array(Box::new(vec!["prod".into(), "stage".into()]))
        );
        assert!(parse_uri("?").unwrap().is_empty());
        assert_eq!(
            parse_uri("?user=").unwrap()["query"].as_map().unwrap()["user"],
            Value::Array(Box::new(vec!["".into()]))
        );
        let m = parse_uri("http://myuser:mypass@").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["user"], Value::from("myuser"));
    }

    #[test]
    fn errors() {
        for bad in ["?q;go", ":8080", "user=dev", "?%"] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
        assert!(
            parse_uri("/p?q;go").unwrap().get("query").is_none(),
            "skipped in a full URI"
        );
    }
}
