//! Transformers (stanza.md §6): operators that change, drop, route or combine entries
//! without parsing a value.

pub(crate) mod assign_keys;
pub(crate) mod basic;
pub(crate) mod filter;
pub(crate) mod flatten;
pub(crate) mod recombine;
pub(crate) mod replace;
pub(crate) mod retain;
pub(crate) mod router;
pub(crate) mod sanitize;
pub(crate) mod unquote;

use crate::operator::Operator;
use centimane_core::{Field, FieldRoot};

type Built = Result<Box<dyn Operator>, String>;

/// A plain field (§2): `body` or anything below a root, but not the bare `attributes` or
/// `resource`, which only accept maps.
fn plain(key: &str, field: Field) -> Result<Field, String> {
    if field.is_root() && field.root() != FieldRoot::Body {
        return Err(format!(
            "`{key}`: `{field}` needs a key below it, like `{field}.name`"
        ));
    }
    Ok(field)
}
