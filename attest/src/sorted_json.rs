//! JSON with every object's keys in sorted order: the same value always serializes to the
//! same bytes, whatever map type built it (serde_json's `preserve_order`, a `HashMap`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// `value` rebuilt with the keys of every object, at every depth, in sorted order.
pub fn sorted_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect();
            Value::Object(entries.into_iter().collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_come_out_sorted() {
        let v = serde_json::json!({"b": [{"z": 1, "a": 2}], "a": {"y": 1, "x": 2}});
        assert_eq!(
            serde_json::to_string(&sorted_keys(v)).unwrap(),
            r#"{"a":{"x":2,"y":1},"b":[{"a":2,"z":1}]}"#
        );
    }
}
