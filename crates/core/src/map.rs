//! [`Map`]: the insertion-ordered, string-keyed map of attributes, resources and map bodies.
//!
//! Log records hold a dozen keys or fewer per map. For those, looking a key up by comparing
//! it with each key in turn is cheaper than hashing it, and a map that is only a vector
//! costs one allocation instead of two (entries and hash table), clones as one copy and
//! frees as one free. A json-ingest profile spent a sixth of its instructions building,
//! cloning, probing and freeing the hash tables of `IndexMap`s.
//!
//! Big maps (a JSON body with hundreds of keys) must not turn every insert into a scan of
//! all of them, so past [`LINEAR_MAX`] keys a map also keeps a hash index (foldhash, seeded
//! at random per process, so whoever writes the logs cannot predict collisions).
//!
//! Invariants: keys are unique; `index` is `Some` exactly when there are more than
//! `LINEAR_MAX` entries, and then maps the hash of every key to that key's position.
//! Methods that move entries (removal, a merge that puts keys in front) rebuild the index,
//! which costs what moving the entries costs: O(n).

use crate::value::{Text, Value};
use std::fmt;
use std::hash::BuildHasher;

/// Up to this many keys a map is searched linearly and has no hash index.
pub const LINEAR_MAX: usize = 16;

/// An insertion-ordered map from [`Text`] keys to [`Value`]s (see the module docs).
///
/// Inserting a key that is already present replaces its value in place; removal keeps the
/// order of the others (`shift_remove`). Equality ignores order, as Stanza's Go maps do.
#[derive(Clone, Default)]
pub struct Map {
    entries: Vec<(Text, Value)>,
    index: Option<Box<Index>>,
}

#[derive(Clone)]
struct Index {
    hasher: foldhash::fast::RandomState,
    positions: hashbrown::HashTable<usize>,
}

impl Index {
    fn build(entries: &[(Text, Value)]) -> Box<Index> {
        let hasher = foldhash::fast::RandomState::default();
        let mut positions = hashbrown::HashTable::with_capacity(entries.len());
        for (i, (k, _)) in entries.iter().enumerate() {
            positions.insert_unique(hasher.hash_one(k.as_str()), i, |&j| {
                hasher.hash_one(entries[j].0.as_str())
            });
        }
        Box::new(Index { hasher, positions })
    }

    fn find(&self, entries: &[(Text, Value)], key: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.positions.find(hash, |&i| entries[i].0 == key).copied()
    }

    /// Adds the last of `entries`, a key not present before.
    fn push(&mut self, entries: &[(Text, Value)]) {
        let last = entries.len() - 1;
        let hasher = &self.hasher;
        self.positions
            .insert_unique(hasher.hash_one(entries[last].0.as_str()), last, |&j| {
                hasher.hash_one(entries[j].0.as_str())
            });
    }
}

/// True when `(key, value)` owns no memory: strings stored inline (or static) and
/// scalars. Such an entry's bytes are a clone of it.
fn owns_nothing((key, value): &(Text, Value)) -> bool {
    !key.is_heap_allocated()
        && match value {
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Double(_) => true,
            Value::Str(s) => !s.is_heap_allocated(),
            Value::Bytes(_) | Value::Array(_) | Value::Map(_) => false,
        }
}

impl Map {
    pub const fn new() -> Map {
        Map {
            entries: Vec::new(),
            index: None,
        }
    }

    /// An empty map with room for `n` keys.
    pub fn with_capacity(n: usize) -> Map {
        Map {
            entries: Vec::with_capacity(n),
            index: None,
        }
    }

    /// A map of `entries` whose keys the caller knows to be unique (a JSON object with the
    /// same keys as one read before): no key is compared with another.
    pub(crate) fn from_unique(entries: Vec<(Text, Value)>) -> Map {
        debug_assert!(
            entries
                .iter()
                .enumerate()
                .all(|(i, (k, _))| entries[..i].iter().all(|(o, _)| o != k)),
            "from_unique given a repeated key"
        );
        let index = (entries.len() > LINEAR_MAX).then(|| Index::build(&entries));
        Map { entries, index }
    }

    /// A copy with room for `capacity` keys in all, for keys about to be added (see
    /// [`Map::clone_into_with_capacity`]).
    pub fn clone_with_capacity(&self, capacity: usize) -> Map {
        let mut copy = Map::new();
        self.clone_into_with_capacity(&mut copy, capacity);
        copy
    }

    /// Makes `out` a copy of this map with room for `capacity` keys in all, for keys about
    /// to be added.
    ///
    /// A filelog receiver starts every record with a copy of its file's attributes, short
    /// strings all. Cloned one by one, each key and value was assembled on the stack in
    /// pieces and read back whole, a store-forwarding stall (two thirds of the clone's
    /// time in `perf annotate`); entries that own nothing are copied as bytes instead.
    /// Their vector is allocated here and stored straight into `out`: a vector made by
    /// `Vec::with_capacity` and returned came back through the stack in word stores, read
    /// back as wider loads (another stall, at every record).
    #[inline]
    pub fn clone_into_with_capacity(&self, out: &mut Map, capacity: usize) {
        let capacity = capacity.max(self.len());
        if capacity == 0 || self.index.is_some() || !self.entries.iter().all(owns_nothing) {
            let mut entries = Vec::with_capacity(capacity);
            entries.extend(self.entries.iter().cloned());
            *out = Map {
                entries,
                index: self.index.clone(),
            };
            return;
        }
        let layout = std::alloc::Layout::array::<(Text, Value)>(capacity)
            .expect("a map's capacity fits in memory");
        // SAFETY: the layout's size is not zero (`capacity` is not, nor is an entry).
        let buffer = unsafe { std::alloc::alloc(layout) }.cast::<(Text, Value)>();
        if buffer.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `buffer` is a new allocation with room for `capacity >= self.len()`
        // entries, so the copy does not overlap `self.entries`. Each entry owns no memory
        // (`owns_nothing`: inline or static strings and scalars, whose drop frees nothing),
        // so its bytes are a clone of it and both copies may be dropped. The vector is
        // given the buffer with the layout it was allocated with, and its length counts
        // only the entries copied.
        let entries = unsafe {
            std::ptr::copy_nonoverlapping(self.entries.as_ptr(), buffer, self.len());
            Vec::from_raw_parts(buffer, self.len(), capacity)
        };
        // No hash index: there is none for this few keys (`self.index` is `None`).
        drop(std::mem::replace(
            out,
            Map {
                entries,
                index: None,
            },
        ));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// The position of `key`.
    pub fn get_index_of<Q: AsRef<str> + ?Sized>(&self, key: &Q) -> Option<usize> {
        let key = key.as_ref();
        match &self.index {
            Some(index) => index.find(&self.entries, key),
            None => self.entries.iter().position(|(k, _)| k == key),
        }
    }

    /// The position of `key`, looked for at `hint` first: records of one source keep
    /// their keys in one order, so where a key was last found is where it usually is.
    #[inline]
    pub fn get_index_near(&self, key: &str, hint: usize) -> Option<usize> {
        match self.entries.get(hint) {
            Some((k, _)) if k == key => Some(hint),
            _ => self.get_index_of(key),
        }
    }

    /// The entry at `index`.
    pub fn get_index(&self, index: usize) -> Option<(&Text, &Value)> {
        self.entries.get(index).map(|(k, v)| (k, v))
    }

    /// Removes the entry at `index` (from [`Map::get_index_of`] or
    /// [`Map::get_index_near`]), keeping the order of the others.
    #[inline]
    pub fn shift_remove_index(&mut self, index: usize) -> Option<(Text, Value)> {
        if index >= self.entries.len() {
            return None;
        }
        let removed = self.entries.remove(index);
        self.reindex();
        Some(removed)
    }

    pub fn get<Q: AsRef<str> + ?Sized>(&self, key: &Q) -> Option<&Value> {
        self.get_index_of(key).map(|i| &self.entries[i].1)
    }

    pub fn get_mut<Q: AsRef<str> + ?Sized>(&mut self, key: &Q) -> Option<&mut Value> {
        self.get_index_of(key).map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key<Q: AsRef<str> + ?Sized>(&self, key: &Q) -> bool {
        self.get_index_of(key).is_some()
    }

    /// Sets `key` to `value`. A key already present keeps its place and its old value is
    /// returned; a new key goes last.
    pub fn insert(&mut self, key: Text, value: Value) -> Option<Value> {
        self.insert_full(key, value).1
    }

    /// As [`Map::insert`], also giving the key's position.
    pub fn insert_full(&mut self, key: Text, value: Value) -> (usize, Option<Value>) {
        match self.get_index_of(&key) {
            Some(i) => (i, Some(std::mem::replace(&mut self.entries[i].1, value))),
            None => {
                self.push_new(key, value);
                (self.entries.len() - 1, None)
            }
        }
    }

    /// The value of `key`, inserted last as `default()` when absent.
    pub fn get_or_insert_with(
        &mut self,
        key: &Text,
        default: impl FnOnce() -> Value,
    ) -> &mut Value {
        let i = match self.get_index_of(key) {
            Some(i) => i,
            None => {
                self.push_new(key.clone(), default());
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    /// Appends a key known not to be present.
    fn push_new(&mut self, key: Text, value: Value) {
        self.entries.push((key, value));
        match &mut self.index {
            Some(index) => index.push(&self.entries),
            None if self.entries.len() > LINEAR_MAX => {
                self.index = Some(Index::build(&self.entries))
            }
            None => {}
        }
    }

    /// Inserts every entry of `other`, as [`Map::insert`] would one by one: keys present
    /// here take `other`'s value in place, the others follow in `other`'s order.
    ///
    /// This is how a parser's result lands in an entry's attributes, once per line, into a
    /// map that is empty or holds a key or two (the file name), so those cases are cheap:
    /// an empty map becomes `other`; a few keys move to the front of `other`'s vector
    /// instead of this one growing; otherwise `other`'s keys, unique among themselves, are
    /// compared only with the keys that were here before.
    pub fn merge(&mut self, mut other: Map) {
        const FEW: usize = 4;
        if self.entries.is_empty() {
            *self = other;
            return;
        }
        if self.entries.len() <= FEW && self.entries.len() < other.entries.len() {
            // Exactly: a vector doubling here would double the memory of every record.
            other.entries.reserve_exact(self.entries.len());
            for (i, (key, value)) in std::mem::take(&mut self.entries).into_iter().enumerate() {
                // `other`'s positions shift here, so its index is not used until rebuilt.
                let present = other.entries[i..].iter().position(|(k, _)| *k == key);
                let entry = match present {
                    Some(j) => (key, other.entries.remove(i + j).1),
                    None => (key, value),
                };
                other.entries.insert(i, entry);
            }
            other.reindex();
            *self = other;
            return;
        }
        self.merge_unique(other.entries.into_iter());
    }

    /// The entries' vector, lent to a reader that appends entries after those present
    /// (see `json::merge_object`), which then gives it back through
    /// [`Map::settle_appended`]. `None` for a map with a hash index, which a reader cannot
    /// keep up to date.
    pub(crate) fn lend_entries(&mut self) -> Option<Vec<(Text, Value)>> {
        self.index
            .is_none()
            .then(|| std::mem::take(&mut self.entries))
    }

    /// Takes back the vector [`Map::lend_entries`] lent, holding the map's `before` entries
    /// and then entries whose keys are distinct among themselves, and makes the map what
    /// inserting those one by one would have made it. When none of their keys was here
    /// before (a parser's result next to the file name), they stay where they are.
    pub(crate) fn settle_appended(&mut self, entries: Vec<(Text, Value)>, before: usize) {
        let (old, new) = entries.split_at(before);
        debug_assert!(
            new.iter()
                .enumerate()
                .all(|(i, (k, _))| new[..i].iter().all(|(o, _)| o != k)),
            "settle_appended given a repeated key"
        );
        if new.iter().all(|(key, _)| old.iter().all(|(k, _)| k != key)) {
            self.settle_fresh(entries);
        } else {
            self.settle_merged(entries, before);
        }
    }

    /// [`Map::settle_appended`] for appended keys the caller knows to repeat some of the
    /// `before` entries' (see `json::Shape::beside`): they are merged in one by one.
    pub(crate) fn settle_merged(&mut self, mut entries: Vec<(Text, Value)>, before: usize) {
        debug_assert!(self.entries.is_empty() && self.index.is_none());
        let new = entries.split_off(before);
        self.entries = entries;
        self.merge_unique(new.into_iter());
    }

    /// [`Map::settle_appended`] for entries whose appended keys the caller knows to be
    /// new to the map (see `json::Shape::beside`): they stay where they are.
    pub(crate) fn settle_fresh(&mut self, entries: Vec<(Text, Value)>) {
        debug_assert!(self.entries.is_empty() && self.index.is_none());
        debug_assert!(
            entries
                .iter()
                .enumerate()
                .all(|(i, (k, _))| entries[..i].iter().all(|(o, _)| o != k)),
            "settle_fresh given a repeated key"
        );
        self.entries = entries;
        self.reindex();
    }

    /// As [`Map::merge_unique`], for all the entries of a vector, which is left empty:
    /// when none of their keys is here already (a parser's result landing next to the file
    /// name), they are moved in as one block.
    pub(crate) fn merge_unique_append(&mut self, entries: &mut Vec<(Text, Value)>) {
        let fresh = self.entries.is_empty()
            || entries
                .iter()
                .all(|(key, _)| self.get_index_of(key).is_none());
        if !fresh {
            return self.merge_unique(entries.drain(..));
        }
        let before = self.entries.len();
        self.entries.reserve_exact(entries.len());
        self.entries.append(entries);
        match &mut self.index {
            Some(index) => {
                for end in before + 1..=self.entries.len() {
                    index.push(&self.entries[..end]);
                }
            }
            None => self.reindex(),
        }
    }

    /// Inserts `entries`, whose keys are distinct, as [`Map::insert`] would one by one;
    /// each key is compared only with the keys that were here before. The caller vouches
    /// for the keys being distinct (a parser's fixed key list, a map's keys).
    pub fn merge_unique(&mut self, entries: impl ExactSizeIterator<Item = (Text, Value)>) {
        let before = self.entries.len();
        // Exactly: this is a record's attributes, and the room for them is learned from
        // this capacity (see the filelog receiver).
        self.entries.reserve_exact(entries.len());
        for (key, value) in entries {
            debug_assert!(
                self.entries[before..].iter().all(|(k, _)| *k != key),
                "merge_unique given a repeated key"
            );
            let present = match &self.index {
                Some(index) => index.find(&self.entries, &key),
                None => self.entries[..before].iter().position(|(k, _)| *k == key),
            };
            match present {
                Some(i) => self.entries[i].1 = value,
                None => self.push_new(key, value),
            }
        }
    }

    /// Removes `key`, keeping the order of the others.
    pub fn shift_remove<Q: AsRef<str> + ?Sized>(&mut self, key: &Q) -> Option<Value> {
        self.shift_remove_entry(key).map(|(_, v)| v)
    }

    pub fn shift_remove_entry<Q: AsRef<str> + ?Sized>(&mut self, key: &Q) -> Option<(Text, Value)> {
        let i = self.get_index_of(key)?;
        self.shift_remove_index(i)
    }

    /// Restores the index invariant after entries moved.
    fn reindex(&mut self) {
        self.index = (self.entries.len() > LINEAR_MAX).then(|| Index::build(&self.entries));
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    pub fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(self.entries.iter_mut())
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Text> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

/// The entries of a [`Map`] in order, as `(&key, &value)`.
#[derive(Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (Text, Value)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Text, &'a Value);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k, v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The entries of a [`Map`] in order, as `(&key, &mut value)`.
pub struct IterMut<'a>(std::slice::IterMut<'a, (Text, Value)>);

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a Text, &'a mut Value);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (&*k, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IterMut<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (&*k, v))
    }
}

impl ExactSizeIterator for IterMut<'_> {}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a Text, &'a Value);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Map {
    type Item = (&'a Text, &'a mut Value);
    type IntoIter = IterMut<'a>;
    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

impl IntoIterator for Map {
    type Item = (Text, Value);
    type IntoIter = std::vec::IntoIter<(Text, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl Extend<(Text, Value)> for Map {
    fn extend<I: IntoIterator<Item = (Text, Value)>>(&mut self, items: I) {
        let items = items.into_iter();
        self.entries.reserve(items.size_hint().0);
        for (k, v) in items {
            self.insert(k, v);
        }
    }
}

impl FromIterator<(Text, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (Text, Value)>>(items: I) -> Map {
        let mut map = Map::new();
        map.extend(items);
        map
    }
}

impl<const N: usize> From<[(Text, Value); N]> for Map {
    fn from(items: [(Text, Value); N]) -> Map {
        items.into_iter().collect()
    }
}

/// Order-insensitive, as Go maps compare.
impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Map {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Read as a [`Value`] (ints kept as ints) that must be a map.
impl<'de> serde::Deserialize<'de> for Map {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        match Value::deserialize(d)? {
            Value::Map(m) => Ok(*m),
            other => Err(serde::de::Error::custom(format_args!(
                "expected a map, found {}",
                other.type_name()
            ))),
        }
    }
}

/// `map["key"]`, for tests and for keys known to be present: panics when it is absent.
impl<Q: AsRef<str> + ?Sized> std::ops::Index<&Q> for Map {
    type Output = Value;
    fn index(&self, key: &Q) -> &Value {
        self.get(key)
            .unwrap_or_else(|| panic!("no key {:?} in the map", key.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(s: impl AsRef<str>) -> Text {
        Text::from(s.as_ref())
    }

    #[test]
    fn insert_replaces_in_place_and_removal_keeps_order() {
        let mut m = Map::new();
        assert_eq!(m.insert(text("a"), Value::Int(1)), None);
        assert_eq!(m.insert(text("b"), Value::Int(2)), None);
        assert_eq!(m.insert(text("a"), Value::Int(3)), Some(Value::Int(1)));
        assert_eq!(m.keys().map(Text::as_str).collect::<Vec<_>>(), ["a", "b"]);
        m.insert(text("c"), Value::Int(4));
        assert_eq!(m.shift_remove("b"), Some(Value::Int(2)));
        assert_eq!(m.keys().map(Text::as_str).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(m["a"], Value::Int(3));
    }

    #[test]
    fn clones_with_room_whatever_the_entries_own() {
        let inline: Map = [
            (text("log.file.name"), Value::from("app.log")),
            (text("n"), Value::Int(7)),
            (
                text("exactly twenty-four byte"),
                Value::from("x".repeat(24)),
            ),
            (
                Text::const_new("static"),
                Value::Str(Text::const_new("a static value")),
            ),
        ]
        .into();
        assert!(inline.entries.iter().all(owns_nothing));
        let long = "a string too long to be stored inline";
        let mut owning = inline.clone();
        owning.insert(text(long), Value::Bool(true));
        owning.insert(text("body"), Value::from(long));
        owning.insert(text("map"), Value::Map(Box::new(inline.clone())));
        for original in [inline, owning] {
            let copy = original.clone_with_capacity(original.len() + 3);
            assert!(copy.capacity() >= original.len() + 3);
            assert_eq!(
                copy.iter().collect::<Vec<_>>(),
                original.iter().collect::<Vec<_>>()
            );
            // Both are dropped: a copy that shared owned memory would be freed twice.
            drop(original);
            let mut copy = copy;
            copy.insert(text("added"), Value::Int(1));
            assert_eq!(copy["added"], Value::Int(1));
        }
    }

    #[test]
    fn merge_overwrites_in_place_and_appends_the_rest() {
        let mut target: Map = [
            (text("log.file.name"), Value::from("f")),
            (text("x"), Value::Int(1)),
        ]
        .into();
        let parsed: Map = [(text("a"), Value::Int(2)), (text("x"), Value::Int(3))].into();
        target.merge(parsed);
        let got: Vec<_> = target
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("log.file.name", Value::from("f")),
                ("x", Value::Int(3)),
                ("a", Value::Int(2))
            ]
        );
        let mut empty = Map::new();
        empty.merge(target.clone());
        assert_eq!(empty, target);
        // Many keys here: `other`'s are appended.
        let mut many: Map = (0..6)
            .map(|i| (text(format!("k{i}")), Value::Int(i)))
            .collect();
        many.merge([(text("k2"), Value::Null), (text("z"), Value::Null)].into());
        let keys: Vec<_> = many.keys().map(Text::as_str).collect();
        assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4", "k5", "z"]);
        assert_eq!(many["k2"], Value::Null);
    }

    #[test]
    fn equality_ignores_order() {
        let a: Map = [(text("a"), Value::Int(1)), (text("b"), Value::Int(2))].into();
        let b: Map = [(text("b"), Value::Int(2)), (text("a"), Value::Int(1))].into();
        assert_eq!(a, b);
        let c: Map = [(text("b"), Value::Int(2)), (text("a"), Value::Int(9))].into();
        assert_ne!(a, c);
    }

    /// What a map may be asked to do, replayed against a model: a vector of pairs searched
    /// linearly, which is obviously right.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, i64),
        Remove(u8),
        GetOrInsert(u8, i64),
        /// Continue with a copy made with room for this many keys.
        Clone(usize),
        Merge(Vec<(u8, i64)>),
        /// Entries with distinct keys, moved from a vector.
        MergeAppend(Vec<(u8, i64)>),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys from a range wider than LINEAR_MAX so maps cross it both ways.
        let key = 0u8..40;
        prop_oneof![
            6 => (key.clone(), any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            4 => key.clone().prop_map(Op::Remove),
            1 => (key.clone(), any::<i64>()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
            1 => (0usize..45).prop_map(Op::Clone),
            1 => proptest::collection::vec((key.clone(), any::<i64>()), 0..25).prop_map(Op::Merge),
            1 => proptest::collection::vec((key, any::<i64>()), 0..25).prop_map(Op::MergeAppend),
        ]
    }

    fn model_insert(model: &mut Vec<(String, i64)>, k: String, v: i64) {
        match model.iter_mut().find(|(mk, _)| *mk == k) {
            Some(slot) => slot.1 = v,
            None => model.push((k, v)),
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_vector_of_pairs(ops in proptest::collection::vec(op(), 0..120)) {
            let mut map = Map::new();
            let mut model: Vec<(String, i64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let k = format!("key{k}");
                        let old = model.iter().find(|(mk, _)| *mk == k).map(|(_, v)| Value::Int(*v));
                        prop_assert_eq!(map.insert(text(&k), Value::Int(v)), old);
                        model_insert(&mut model, k, v);
                    }
                    Op::Remove(k) => {
                        let k = format!("key{k}");
                        let at = model.iter().position(|(mk, _)| *mk == k);
                        let old = at.map(|i| Value::Int(model.remove(i).1));
                        prop_assert_eq!(map.shift_remove(&k), old);
                    }
                    Op::GetOrInsert(k, v) => {
                        let k = format!("key{k}");
                        let want = match model.iter().find(|(mk, _)| *mk == k) {
                            Some((_, old)) => *old,
                            None => {
                                model.push((k.clone(), v));
                                v
                            }
                        };
                        let got = map.get_or_insert_with(&text(&k), || Value::Int(v));
                        prop_assert_eq!(&*got, &Value::Int(want));
                    }
                    Op::Clone(room) => {
                        map = map.clone_with_capacity(room);
                        prop_assert!(map.capacity() >= room.max(model.len()));
                    }
                    Op::Merge(items) => {
                        let mut other = Map::new();
                        let mut other_model = Vec::new();
                        for (k, v) in items {
                            other.insert(text(format!("key{k}")), Value::Int(v));
                            model_insert(&mut other_model, format!("key{k}"), v);
                        }
                        for (k, v) in other_model {
                            model_insert(&mut model, k, v);
                        }
                        map.merge(other);
                    }
                    Op::MergeAppend(items) => {
                        let mut distinct: Vec<(Text, Value)> = Vec::new();
                        for (k, v) in items {
                            let k = format!("key{k}");
                            if distinct.iter().all(|(d, _)| d != k.as_str()) {
                                model_insert(&mut model, k.clone(), v);
                                distinct.push((text(k), Value::Int(v)));
                            }
                        }
                        map.merge_unique_append(&mut distinct);
                    }
                }
                let got: Vec<(String, i64)> = map
                    .iter()
                    .map(|(k, v)| match v {
                        Value::Int(i) => (k.to_string(), *i),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                prop_assert_eq!(&got, &model);
                prop_assert_eq!(map.index.is_some(), map.len() > LINEAR_MAX);
                for (i, (k, v)) in model.iter().enumerate() {
                    prop_assert_eq!(map.get_index_of(k.as_str()), Some(i));
                    prop_assert_eq!(map.get(k.as_str()), Some(&Value::Int(*v)));
                }
                prop_assert_eq!(map.get("absent"), None);
            }
        }
    }
}
