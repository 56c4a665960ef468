//! Strict reading of signed JSON: no duplicate keys, and the in-toto rule for extension fields.
//!
//! Duplicate keys are rejected because JSON parsers disagree on which one wins: a payload with
//! two `builder.id` values could mean one thing to airlock and another to a third-party
//! verifier of the same signature.
//!
//! Extension fields: SLSA provenance v1 lets producers add `<vendor>_<field>` keys to any object
//! and says consumers SHOULD ignore them, while no standard name contains `_` (besides the
//! Statement's `_type`). So before the strict (`deny_unknown_fields`) decode, such keys are
//! dropped from the objects whose schema the spec defines; any other unknown key is still an
//! error, since it signals a different spec version or a typo.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses JSON into a [`Value`], failing on a duplicate key in any object.
pub(crate) fn parse_unique_keys(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<UniqueKeys>(bytes).map(|v| v.0)
}

/// Removes extension fields (`<vendor>_<field>`) from `value` if it is an object.
pub(crate) fn drop_extension_fields(value: Option<&mut Value>) {
    if let Some(Value::Object(map)) = value {
        map.retain(|key, _| key == "_type" || !key.contains('_'));
    }
}

/// Removes extension fields named by URIs (keys containing `:`) from `value` if it is an
/// object: the extension convention of the SLSA verification summary predicate, whose
/// standard field names are plain camelCase words.
pub(crate) fn drop_uri_named_fields(value: Option<&mut Value>) {
    if let Some(Value::Object(map)) = value {
        map.retain(|key, _| !key.contains(':'));
    }
}

/// [`drop_extension_fields`] on every element of `value` if it is an array.
pub(crate) fn drop_extension_fields_each(value: Option<&mut Value>) {
    if let Some(Value::Array(items)) = value {
        items
            .iter_mut()
            .for_each(|item| drop_extension_fields(Some(item)));
    }
}

struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let UniqueKeys(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(parse_unique_keys(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_unique_keys(br#"{"a":[{"b":1,"b":1}]}"#).is_err());
        let v = parse_unique_keys(br#"{"a":[1,-2,3.5,null,true,"s",{}]}"#).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": [1, -2, 3.5, null, true, "s", {}]})
        );
    }

    #[test]
    fn drops_only_extension_fields() {
        let mut v = serde_json::json!({"_type": 1, "acme_x": 2, "name": 3});
        drop_extension_fields(Some(&mut v));
        assert_eq!(v, serde_json::json!({"_type": 1, "name": 3}));
    }
}
