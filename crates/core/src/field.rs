//! Field paths with Stanza's syntax: `body`, `body.a.b`, `attributes["http.method"]`,
//! `resource.host`, `body.one["two.2"].three` (stanza.md §2).

use crate::entry::Entry;
use crate::value::{Map, Text, Value};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which part of the entry a field starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldRoot {
    Body,
    Attributes,
    Resource,
}

impl FieldRoot {
    fn name(self) -> &'static str {
        match self {
            FieldRoot::Body => "body",
            FieldRoot::Attributes => "attributes",
            FieldRoot::Resource => "resource",
        }
    }
}

/// A parsed field path. Parse once at config load, then get/set/delete per entry without
/// re-parsing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    root: FieldRoot,
    keys: Vec<Text>,
    /// Where the first key was last found in its map (see [`Map::get_index_near`]).
    near: PositionHint,
}

/// A position to look at first. It only saves time: it is not part of a field's
/// identity (equal and hashed alike whatever it holds), and a wrong one costs one
/// comparison. Atomic so that a `Field` stays `Sync`; each access is a relaxed load, and
/// a store only when the position moved.
#[derive(Debug, Default)]
struct PositionHint(AtomicUsize);

impl PositionHint {
    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn found(&self, at: usize) -> usize {
        if self.get() != at {
            self.0.store(at, Ordering::Relaxed);
        }
        at
    }
}

impl Clone for PositionHint {
    fn clone(&self) -> Self {
        PositionHint(AtomicUsize::new(self.get()))
    }
}

impl PartialEq for PositionHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PositionHint {}

impl std::hash::Hash for PositionHint {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("field `{0}`: unrecognized prefix (a field starts with body, attributes or resource)")]
    UnrecognizedPrefix(String),
    #[error("field `{0}`: found unclosed left bracket")]
    UnclosedBracket(String),
    #[error("field `{0}`: found unclosed quotes")]
    UnclosedQuote(String),
    #[error("field `{0}`: bracketed keys must be quoted, like attributes[\"a.b\"]")]
    UnquotedBracket(String),
    #[error("field `{0}`: a closing bracket must be followed by `.`, `[` or the end")]
    AfterBracket(String),
    #[error("field `{0}`: empty key segment")]
    EmptyKey(String),
    #[error("cannot set {0} root to a non-map value")]
    SetRoot(&'static str),
}

impl Field {
    pub fn body() -> Self {
        Field {
            root: FieldRoot::Body,
            keys: Vec::new(),
            near: PositionHint::default(),
        }
    }

    pub fn attributes() -> Self {
        Field {
            root: FieldRoot::Attributes,
            keys: Vec::new(),
            near: PositionHint::default(),
        }
    }

    /// A field under `root` with the given keys.
    pub fn new<K: Into<Text>>(root: FieldRoot, keys: impl IntoIterator<Item = K>) -> Self {
        Field {
            root,
            keys: keys.into_iter().map(Into::into).collect(),
            near: PositionHint::default(),
        }
    }

    pub fn root(&self) -> FieldRoot {
        self.root
    }

    pub fn keys(&self) -> &[Text] {
        &self.keys
    }

    /// `true` for the bare `body`, `attributes` or `resource`.
    pub fn is_root(&self) -> bool {
        self.keys.is_empty()
    }

    /// The field's value. `body` alone is always present (possibly `Null`); the bare
    /// `attributes`/`resource` roots are not values and read as absent. A missing key or a
    /// step through a non-map is absent, not an error.
    #[inline]
    pub fn get<'e>(&self, entry: &'e Entry) -> Option<&'e Value> {
        let (map, first, rest) = match self.root {
            FieldRoot::Body => {
                let Some((first, rest)) = self.keys.split_first() else {
                    return Some(&entry.body);
                };
                (entry.body.as_map()?, first, rest)
            }
            FieldRoot::Attributes | FieldRoot::Resource => {
                let (first, rest) = self.keys.split_first()?;
                (self.root_map(entry), first, rest)
            }
        };
        let at = self.near.found(map.get_index_near(first, self.near.get())?);
        let first = map.get_index(at).map(|(_, v)| v)?;
        rest.iter()
            .try_fold(first, |v, key| v.as_map().and_then(|m| m.get(key)))
    }

    /// Sets the field (Stanza's merge rules): a map set onto a map merges into it, missing or
    /// non-map intermediate steps become maps, `body` set to a non-map replaces the body, and
    /// the bare `attributes`/`resource` accept only maps (merged).
    #[inline]
    pub fn set(&self, entry: &mut Entry, value: Value) -> Result<(), FieldError> {
        let Some((last, parents)) = self.keys.split_last() else {
            return match (self.root, value) {
                (FieldRoot::Body, value) => {
                    merge_or_replace(&mut entry.body, value);
                    Ok(())
                }
                (_, Value::Map(m)) => {
                    self.root_map_mut(entry).merge(*m);
                    Ok(())
                }
                (root, _) => Err(FieldError::SetRoot(root.name())),
            };
        };
        let mut map = match self.root {
            FieldRoot::Body => {
                if !matches!(entry.body, Value::Map(_)) {
                    entry.body = Value::Map(Box::default());
                }
                entry.body.as_map_mut().expect("body was just made a map")
            }
            _ => self.root_map_mut(entry),
        };
        for key in parents {
            let slot = map.get_or_insert_with(key, || Value::Null);
            if !matches!(slot, Value::Map(_)) {
                *slot = Value::Map(Box::default());
            }
            map = slot.as_map_mut().expect("slot was just made a map");
        }
        match map.get_mut(last) {
            Some(existing) => merge_or_replace(existing, value),
            None => {
                map.insert(last.clone(), value);
            }
        }
        Ok(())
    }

    /// Removes the field and returns what it held. `body` becomes `Null`; the bare
    /// `attributes`/`resource` are cleared (returned as a map). Parents left empty stay.
    #[inline]
    pub fn delete(&self, entry: &mut Entry) -> Option<Value> {
        let Some((last, parents)) = self.keys.split_last() else {
            return Some(match self.root {
                FieldRoot::Body => std::mem::take(&mut entry.body),
                _ => Value::Map(Box::new(std::mem::take(self.root_map_mut(entry)))),
            });
        };
        let mut map = match self.root {
            FieldRoot::Body => entry.body.as_map_mut()?,
            _ => self.root_map_mut(entry),
        };
        // shift_remove keeps the order of the remaining keys, as users expect in output.
        if parents.is_empty() {
            let at = self.near.found(map.get_index_near(last, self.near.get())?);
            return map.shift_remove_index(at).map(|(_, v)| v);
        }
        for key in parents {
            map = map.get_mut(key)?.as_map_mut()?;
        }
        map.shift_remove(last)
    }

    fn root_map<'e>(&self, entry: &'e Entry) -> &'e Map {
        match self.root {
            FieldRoot::Resource => &entry.resource,
            _ => &entry.attributes,
        }
    }

    fn root_map_mut<'e>(&self, entry: &'e mut Entry) -> &'e mut Map {
        match self.root {
            FieldRoot::Resource => &mut entry.resource,
            _ => &mut entry.attributes,
        }
    }
}

/// A map merges into a map (new keys overwrite); anything else replaces the target.
fn merge_or_replace(target: &mut Value, value: Value) {
    match (target, value) {
        (Value::Map(existing), Value::Map(new)) => existing.merge(*new),
        (target, value) => *target = value,
    }
}

impl FromStr for Field {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<Self, FieldError> {
        let err = |f: fn(String) -> FieldError| f(text.to_owned());
        let (root, mut rest) = [
            ("body", FieldRoot::Body),
            ("attributes", FieldRoot::Attributes),
            ("resource", FieldRoot::Resource),
        ]
        .into_iter()
        .find_map(|(prefix, root)| {
            let rest = text.strip_prefix(prefix)?;
            (rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
                .then_some((root, rest))
        })
        .ok_or_else(|| err(FieldError::UnrecognizedPrefix))?;
        let mut keys = Vec::new();
        while !rest.is_empty() {
            if let Some(after_dot) = rest.strip_prefix('.') {
                let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
                if end == 0 {
                    return Err(err(FieldError::EmptyKey));
                }
                keys.push(Text::from(&after_dot[..end]));
                rest = &after_dot[end..];
            } else if let Some(in_bracket) = rest.strip_prefix('[') {
                if !in_bracket.contains(']') {
                    return Err(err(FieldError::UnclosedBracket));
                }
                let quote = in_bracket
                    .chars()
                    .next()
                    .filter(|c| *c == '"' || *c == '\'')
                    .ok_or_else(|| err(FieldError::UnquotedBracket))?;
                let body = &in_bracket[1..];
                let close = body
                    .find(quote)
                    .ok_or_else(|| err(FieldError::UnclosedQuote))?;
                let key = &body[..close];
                let after_quote = &body[close + 1..];
                let after = after_quote
                    .strip_prefix(']')
                    .ok_or_else(|| err(FieldError::UnclosedBracket))?;
                if key.is_empty() {
                    return Err(err(FieldError::EmptyKey));
                }
                if !(after.is_empty() || after.starts_with('.') || after.starts_with('[')) {
                    return Err(err(FieldError::AfterBracket));
                }
                keys.push(Text::from(key));
                rest = after;
            } else {
                return Err(err(FieldError::AfterBracket));
            }
        }
        Ok(Field {
            root,
            keys,
            near: PositionHint::default(),
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root.name())?;
        for key in &self.keys {
            if key.contains(['.', '[', ']', '\'', '"']) {
                if key.contains('"') {
                    write!(f, "['{key}']")?;
                } else {
                    write!(f, "[\"{key}\"]")?;
                }
            } else {
                write!(f, ".{key}")?;
            }
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> Field {
        s.parse().unwrap()
    }

    #[test]
    fn lookups_follow_keys_that_move_and_the_hint_is_not_identity() {
        use std::hash::{BuildHasher, RandomState};
        let field = f("attributes.msg");
        let entry = |keys: &[&str]| {
            let mut e = Entry::default();
            for k in keys {
                e.attributes
                    .insert((*k).into(), Value::from(format!("v-{k}")));
            }
            e
        };
        for keys in [
            &["a", "msg", "b"][..],
            &["msg"],
            &["x", "y", "z", "msg"],
            &["x", "y"],
            &["msg", "x"],
        ] {
            let mut e = entry(keys);
            let want = keys.contains(&"msg").then(|| Value::from("v-msg"));
            assert_eq!(field.get(&e).cloned(), want, "{keys:?}");
            assert_eq!(field.delete(&mut e), want, "{keys:?}");
            assert!(!e.attributes.contains_key("msg"));
            let rest: Vec<_> = keys.iter().filter(|k| **k != "msg").collect();
            assert_eq!(e.attributes.keys().collect::<Vec<_>>(), rest, "order kept");
        }
        let fresh = f("attributes.msg");
        assert_eq!(field, fresh);
        let hasher = RandomState::new();
        assert_eq!(hasher.hash_one(&field), hasher.hash_one(&fresh));
    }

    #[test]
    fn parses_dotted_bracketed_and_mixed() {
        assert_eq!(f("body"), Field::body());
        assert_eq!(f("body.a.b").keys(), ["a", "b"]);
        assert_eq!(f("attributes[\"k8s.pod.name\"]").keys(), ["k8s.pod.name"]);
        assert_eq!(f("resource['x']['y.z']").keys(), ["x", "y.z"]);
        assert_eq!(
            f("body.one[\"two.2\"].three").keys(),
            ["one", "two.2", "three"]
        );
        assert_eq!(f("resource.host").root(), FieldRoot::Resource);
    }

    #[test]
    fn rejects_malformed_fields() {
        let cases = [
            (
                "foo",
                FieldError::UnrecognizedPrefix as fn(String) -> FieldError,
            ),
            ("bodyx", FieldError::UnrecognizedPrefix),
            ("body[\"a\"", FieldError::UnclosedBracket),
            ("body[\"a]", FieldError::UnclosedQuote),
            ("body[a]", FieldError::UnquotedBracket),
            ("body[\"a\"]x", FieldError::AfterBracket),
            ("body..a", FieldError::EmptyKey),
            ("body.", FieldError::EmptyKey),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Field>(), Err(want(text.to_owned())), "{text}");
        }
    }

    #[test]
    fn set_merges_maps_and_creates_parents() {
        let mut e = Entry::default();
        f("attributes.one.two.three")
            .set(&mut e, "x".into())
            .unwrap();
        assert_eq!(
            f("attributes.one.two.three").get(&e),
            Some(&Value::from("x"))
        );
        let mut m = Map::default();
        m.insert("k".into(), Value::Int(1));
        f("attributes.one.two")
            .set(&mut e, Value::Map(Box::new(m)))
            .unwrap();
        let two = f("attributes.one.two").get(&e).unwrap().as_map().unwrap();
        assert_eq!(two.len(), 2, "map merged into map");
        assert_eq!(
            f("attributes").set(&mut e, "x".into()),
            Err(FieldError::SetRoot("attributes"))
        );
    }

    #[test]
    fn delete_leaves_empty_parents_and_clears_roots() {
        let mut e = Entry::default();
        f("attributes.one.two").set(&mut e, Value::Int(1)).unwrap();
        assert_eq!(f("attributes.one.two").delete(&mut e), Some(Value::Int(1)));
        assert_eq!(
            f("attributes.one").get(&e),
            Some(&Value::Map(Box::default()))
        );
        assert_eq!(f("attributes.nope").delete(&mut e), None);
        f("attributes").delete(&mut e);
        assert!(e.attributes.is_empty());
        e.body = "text".into();
        assert_eq!(f("body").delete(&mut e), Some("text".into()));
        assert!(e.body.is_null());
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-z.\\[\\]]{1,6}".prop_filter("bracket keys can't hold both quotes", |k| {
            !(k.contains('"') && k.contains('\''))
        })
    }

    fn field() -> impl Strategy<Value = Field> {
        (
            prop_oneof![
                Just(FieldRoot::Body),
                Just(FieldRoot::Attributes),
                Just(FieldRoot::Resource)
            ],
            proptest::collection::vec(key(), 1..4),
        )
            .prop_map(|(root, keys)| Field::new(root, keys))
    }

    proptest! {
        #[test]
        fn display_parses_back(field in field()) {
            prop_assert_eq!(field.to_string().parse::<Field>(), Ok(field));
        }

        #[test]
        fn set_then_get_then_delete(field in field(), n in any::<i64>()) {
            let mut e = Entry::default();
            field.set(&mut e, Value::Int(n)).unwrap();
            prop_assert_eq!(field.get(&e), Some(&Value::Int(n)));
            prop_assert_eq!(field.delete(&mut e), Some(Value::Int(n)));
            prop_assert_eq!(field.get(&e), None);
        }

        /// The merge gives what inserting `new`'s entries one by one gives: same keys in
        /// the same order, same values.
        #[test]
        fn merge_is_insert_in_order(
            old in proptest::collection::vec(("[a-f]", any::<i8>()), 0..8),
            new in proptest::collection::vec(("[a-f]", any::<i8>()), 0..8),
        ) {
            let map = |pairs: &[(String, i8)]| -> Map {
                pairs.iter().map(|(k, v)| (Text::from(k.as_str()), Value::Int(i64::from(*v)))).collect()
            };
            let (old, new) = (map(&old), map(&new));
            let mut want = old.clone();
            for (k, v) in new.clone() {
                want.insert(k, v);
            }
            let mut got = old;
            got.merge(new);
            prop_assert_eq!(
                got.iter().collect::<Vec<_>>(),
                want.iter().collect::<Vec<_>>()
            );
        }

        #[test]
        fn parsing_never_panics(text in ".{0,24}") {
            let _ = text.parse::<Field>();
        }
    }
}
