//! OTLP/JSON text of a request (DESIGN §8), with non-finite doubles written correctly.
//!
//! opentelemetry-proto's serde impls give the OTLP/JSON mapping (camelCase keys, hex ids,
//! 64-bit integers as strings), but serde_json writes a NaN or infinite `doubleValue` as
//! `null`, which loses the value and which readers take as "no value". Proto3's JSON
//! mapping writes them as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`. Rather than
//! copying the generated mapping by hand, [`write_line`] runs the generated impls through
//! [`Finite`], a serializer adapter that forwards everything unchanged except non-finite
//! floats, which it turns into those strings. (The Collector reads them back; the
//! deserializer of opentelemetry-proto 0.33 does not, so such a line only round-trips
//! through Go's protojson.)

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use serde::ser::{self, Serialize, Serializer};

/// Appends `request` as one line of OTLP/JSON (ending in `\n`) to `out`.
pub(crate) fn write_line(
    request: &ExportLogsServiceRequest,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let mut json = serde_json::Serializer::new(&mut *out);
    request.serialize(Finite(&mut json))?;
    out.push(b'\n');
    Ok(())
}

/// proto3 JSON's spelling of a float that JSON numbers cannot carry; `None` if finite.
fn special_float(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Infinity")
    } else if v == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// Wraps a serializer (or one of its compound serializers); see the module docs.
struct Finite<S>(S);

/// A value to be serialized through [`Finite`], so the adapter reaches nested values too.
struct Nested<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Nested<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Finite(serializer))
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.0.$method($($arg),*)
        })*
    };
}

impl<S: Serializer> Serializer for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Finite<S::SerializeSeq>;
    type SerializeTuple = Finite<S::SerializeTuple>;
    type SerializeTupleStruct = Finite<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Finite<S::SerializeTupleVariant>;
    type SerializeMap = Finite<S::SerializeMap>;
    type SerializeStruct = Finite<S::SerializeStruct>;
    type SerializeStructVariant = Finite<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        match special_float(f64::from(v)) {
            Some(text) => self.0.serialize_str(text),
            None => self.0.serialize_f32(v),
        }
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        match special_float(v) {
            Some(text) => self.0.serialize_str(text),
            None => self.0.serialize_f64(v),
        }
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Nested(value))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Nested(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Nested(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Finite)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Finite)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Finite)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Finite)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Finite)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Finite)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Finite)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<S: ser::SerializeSeq> ser::SerializeSeq for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&Nested(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTuple> ser::SerializeTuple for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&Nested(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&Nested(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&Nested(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeMap> ser::SerializeMap for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&Nested(key))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Nested(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeStruct> ser::SerializeStruct for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Nested(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeStructVariant> ser::SerializeStructVariant for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Nested(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::to_otlp_request;
    use centimane_core::{Entry, Timestamp, Value};

    fn line(entries: &[Entry]) -> String {
        let mut out = Vec::new();
        write_line(&to_otlp_request(entries), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn full_entry() -> Entry {
        let mut e = Entry::new(Value::from("user logged in"));
        e.timestamp = Some(Timestamp::from_nanosecond(1_795_467_600_123_456_789).unwrap());
        e.observed_timestamp = Timestamp::from_nanosecond(1_795_467_600_200_000_000).unwrap();
        e.severity = 9;
        e.severity_text = "INFO".into();
        e.resource.insert("host.name".into(), Value::from("web-1"));
        e.attributes
            .insert("latency".into(), Value::Int(9_007_199_254_740_993));
        e.attributes.insert("ratio".into(), Value::Double(0.25));
        e.attributes.insert("ok".into(), Value::Bool(true));
        e.attributes
            .insert("raw".into(), Value::Bytes(vec![0xde, 0xad].into()));
        e.attributes.insert(
            "tags".into(),
            Value::Array(Box::new(vec![Value::from("a"), Value::Null])),
        );
        e.trace_id = (1..=16).collect();
        e.span_id = (0xa1..=0xa8).collect();
        e.trace_flags = vec![1];
        e.scope_name = "app".into();
        e
    }

    #[test]
    fn one_line_that_parses_back_equal() {
        let entries = [full_entry(), Entry::new(Value::Int(42))];
        let text = line(&entries);
        assert!(text.ends_with('\n'));
        assert_eq!(text.matches('\n').count(), 1);
        let back: ExportLogsServiceRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, to_otlp_request(&entries));
        assert!(
            text.starts_with(r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"host.name""#),
            "{text}"
        );
        assert!(
            text.contains(r#""traceId":"0102030405060708090a0b0c0d0e0f10""#),
            "{text}"
        );
        assert!(text.contains(r#""spanId":"a1a2a3a4a5a6a7a8""#), "{text}");
        assert!(
            text.contains(r#""timeUnixNano":"1795467600123456789""#),
            "{text}"
        );
        assert!(text.contains(r#""intValue":"9007199254740993""#), "{text}");
        assert!(text.contains(r#""doubleValue":0.25"#), "{text}");
        assert!(text.contains(r#""bytesValue":"3q0=""#), "{text}");
        assert!(text.contains(r#""scope":{"name":"app""#), "{text}");
    }

    #[test]
    fn non_finite_doubles_become_proto3_json_strings() {
        let mut e = Entry::new(Value::Double(f64::NAN));
        e.attributes
            .insert("up".into(), Value::Double(f64::INFINITY));
        e.attributes
            .insert("down".into(), Value::Double(f64::NEG_INFINITY));
        e.attributes.insert("fine".into(), Value::Double(-1.5));
        let text = line(&[e]);
        assert!(text.contains(r#""body":{"doubleValue":"NaN"}"#), "{text}");
        assert!(
            text.contains(r#"{"key":"up","value":{"doubleValue":"Infinity"}}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"key":"down","value":{"doubleValue":"-Infinity"}}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"key":"fine","value":{"doubleValue":-1.5}}"#),
            "{text}"
        );
        assert!(!text.contains("null"), "{text}");
    }

    #[test]
    fn the_adapter_changes_nothing_else() {
        let entries = [full_entry()];
        let req = to_otlp_request(&entries);
        let mut ours = Vec::new();
        write_line(&req, &mut ours).unwrap();
        let mut plain = serde_json::to_vec(&req).unwrap();
        plain.push(b'\n');
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(plain).unwrap()
        );
    }
}
