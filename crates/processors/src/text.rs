//! Values as text, the way the Collector's pdata prints them (`pcommon.Value.AsString`):
//! what `convert` to string, legacy `bodies` matching and the sampler's attribute source
//! see.

use centimane_core::Value;

/// `pcommon.Value.AsString`: strings as they are, ints in decimal, doubles as JSON/ES6
/// numbers, bools as `true`/`false`, bytes as standard base64, maps and arrays as JSON,
/// the empty value as `""`.
pub(crate) fn as_string(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Str(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => double_as_string(*d),
        Value::Bytes(b) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b)
        }
        Value::Array(_) | Value::Map(_) => json(value),
    }
}

/// A double as ES6 `Number.prototype.toString` (what Go's encoding/json and pdata write):
/// plain digits between 1e-6 and 1e21, otherwise an exponent like `1e+21` or `1.5e-7`.
pub(crate) fn double_as_string(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = d.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21` / `1.5e-7`; Go writes an explicit `+` for positive exponents.
        let text = format!("{d:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        }
    } else {
        // Rust's Display is the shortest round-trip form without an exponent.
        d.to_string()
    }
}

/// Maps and arrays as compact JSON, as pdata renders them (doubles as ES6 numbers, bytes as
/// base64, the empty value as `null`).
fn json(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(_) | Value::Int(_) => out.push_str(&as_string(value)),
        Value::Double(d) if d.is_finite() => out.push_str(&double_as_string(*d)),
        Value::Double(_) | Value::Str(_) | Value::Bytes(_) => {
            out.push_str(&serde_json::Value::String(as_string(value)).to_string())
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(v, out);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone().into()).to_string());
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Map;

    #[test]
    fn scalars_print_as_pdata_does() {
        assert_eq!(as_string(&Value::Int(-4)), "-4");
        assert_eq!(as_string(&Value::Bool(true)), "true");
        assert_eq!(as_string(&Value::Null), "");
        assert_eq!(as_string(&Value::Bytes(vec![1, 2, 3].into())), "AQID");
        assert_eq!(double_as_string(1.5), "1.5");
        assert_eq!(double_as_string(3.0), "3");
        assert_eq!(double_as_string(1e21), "1e+21");
        assert_eq!(double_as_string(1.5e-7), "1.5e-7");
        assert_eq!(double_as_string(0.0), "0");
    }

    #[test]
    fn maps_and_arrays_are_json() {
        let mut m = Map::default();
        m.insert("b".into(), Value::Double(2.0));
        m.insert(
            "a".into(),
            Value::Array(Box::new(vec![Value::from("x"), Value::Null])),
        );
        assert_eq!(
            as_string(&Value::Map(Box::new(m))),
            r#"{"b":2,"a":["x",null]}"#
        );
    }
}
