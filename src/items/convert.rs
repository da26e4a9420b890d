//! Conversion between `serde_json::Value` and jaq's value type.

use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value};

/// Convert a JSON value into a jaq value (done once per item, shared by all expressions).
pub fn to_jaq(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => number_to_jaq(n),
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => items.iter().map(to_jaq).collect(),
        Value::Object(map) => {
            let mut out = jaq_json::Map::default();
            out.reserve(map.len());
            for (k, item) in map {
                out.insert(Val::from(k.clone()), to_jaq(item));
            }
            Val::obj(out)
        }
    }
}

fn number_to_jaq(n: &Number) -> Val {
    if let Some(i) = n.as_i64().and_then(|i| isize::try_from(i).ok()) {
        Val::from(i)
    } else if let Some(u) = n.as_u64() {
        Val::Num(Num::from_integral(u))
    } else {
        Val::from(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Convert a jaq value back into JSON. Byte strings become (lossy) UTF-8 strings, non-string
/// object keys their JSON text, and non-finite numbers `null`, as jq prints them.
pub fn from_jaq(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_from_jaq(n),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(from_jaq).collect()),
        Val::Obj(map) => {
            let mut out = Map::new();
            for (k, item) in map.iter() {
                let key = match k {
                    Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => other.to_string(),
                };
                out.insert(key, from_jaq(item));
            }
            Value::Object(out)
        }
    }
}

fn num_from_jaq(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::from(*i as i64),
        Num::Float(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
        other => {
            let text = other.to_string();
            serde_json::from_str::<Number>(&text).map_or(Value::String(text), Value::Number)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_json() {
        let v = json!({"a": [1, -2, 2.5, "s", null, true], "b": {"c": false}, "big": 18446744073709551615u64});
        assert_eq!(from_jaq(&to_jaq(&v)), v);
    }

    #[test]
    fn non_finite_floats_become_null() {
        assert_eq!(from_jaq(&Val::from(f64::NAN)), Value::Null);
    }
}
