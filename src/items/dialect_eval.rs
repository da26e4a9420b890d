//! Evaluating Prodigy's dialect ([`super::dialect`]) on one item, as Prodigy does: a missing
//! field is null, comparisons between values of different types are false (numbers compare
//! as numbers, strings as strings), `== null` matches a missing field, and nothing fails at
//! run time (an invalid computed regular expression matches nothing).

use std::cmp::Ordering;

use regex::Regex;
use serde_json::Value;

use super::dialect::{Cmp, Func, Node, Seg, StrOp};

/// The value of `node` for `item`.
pub fn eval(node: &Node, item: &Value) -> Value {
    match node {
        Node::Lit(v) => v.clone(),
        Node::Path(path) => lookup(item, path).cloned().unwrap_or(Value::Null),
        Node::Not(n) => Value::Bool(!truthy(&eval(n, item))),
        Node::And(a, b) => Value::Bool(truthy(&eval(a, item)) && truthy(&eval(b, item))),
        Node::Or(a, b) => Value::Bool(truthy(&eval(a, item)) || truthy(&eval(b, item))),
        Node::Cmp(op, a, b) => Value::Bool(compare(*op, &eval(a, item), &eval(b, item))),
        Node::In(a, list) => {
            let v = eval(a, item);
            Value::Bool(list.iter().any(|x| equal(&v, x)))
        }
        Node::Str(op, a, b) => Value::Bool(str_test(*op, &eval(a, item), &eval(b, item))),
        Node::Matches(a, b, re) => {
            let Value::String(s) = eval(a, item) else {
                return Value::Bool(false);
            };
            Value::Bool(match re {
                Some(re) => re.is_match(&s),
                None => match eval(b, item) {
                    Value::String(p) => Regex::new(&p).is_ok_and(|re| re.is_match(&s)),
                    _ => false,
                },
            })
        }
        Node::Call(f, a) => call(*f, &eval(a, item)),
        Node::LengthIs(a, n) => Value::Bool(
            length(&eval(a, item)).is_some_and(|len| (len as f64 - n).abs() < f64::EPSILON),
        ),
    }
}

/// Whether a filter result keeps the item: false and null drop it.
pub fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

fn lookup<'v>(item: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    let mut v = item;
    for seg in path {
        v = match (seg, v) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(op: Cmp, a: &Value, b: &Value) -> bool {
    let ord = || match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        Cmp::Eq => equal(a, b),
        Cmp::Ne => !equal(a, b),
        Cmp::Lt => ord() == Some(Ordering::Less),
        Cmp::Le => matches!(ord(), Some(Ordering::Less | Ordering::Equal)),
        Cmp::Gt => ord() == Some(Ordering::Greater),
        Cmp::Ge => matches!(ord(), Some(Ordering::Greater | Ordering::Equal)),
    }
}

fn str_test(op: StrOp, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(s), Value::String(p)) => match op {
            StrOp::Contains => s.contains(p.as_str()),
            StrOp::StartsWith => s.starts_with(p.as_str()),
            StrOp::EndsWith => s.ends_with(p.as_str()),
        },
        (Value::Array(list), x) if op == StrOp::Contains => list.iter().any(|e| equal(e, x)),
        _ => false,
    }
}

fn length(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => Some(s.chars().count()),
        Value::Array(a) => Some(a.len()),
        Value::Object(o) => Some(o.len()),
        _ => None,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        other => length(other) == Some(0),
    }
}

fn call(f: Func, v: &Value) -> Value {
    let numbers = || -> Vec<f64> {
        match v {
            Value::Array(a) => a.iter().filter_map(Value::as_f64).collect(),
            _ => Vec::new(),
        }
    };
    let num = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    match f {
        Func::IsNull => Value::Bool(v.is_null()),
        Func::IsNotNull => Value::Bool(!v.is_null()),
        Func::IsEmpty => Value::Bool(is_empty(v)),
        Func::IsNotEmpty => Value::Bool(!is_empty(v)),
        Func::IsNumber => Value::Bool(v.is_number()),
        Func::IsString => Value::Bool(v.is_string()),
        Func::IsBool => Value::Bool(v.is_boolean()),
        Func::IsArray => Value::Bool(v.is_array()),
        Func::IsObject => Value::Bool(v.is_object()),
        Func::Length => Value::from(length(v).unwrap_or(0)),
        Func::Count => Value::from(v.as_array().map_or(0, Vec::len)),
        Func::Sum => num(numbers().iter().sum()),
        Func::Min => numbers()
            .into_iter()
            .min_by(f64::total_cmp)
            .map_or(Value::Null, num),
        Func::Max => numbers()
            .into_iter()
            .max_by(f64::total_cmp)
            .map_or(Value::Null, num),
        Func::Avg => {
            let n = numbers();
            if n.is_empty() {
                Value::Null
            } else {
                num(n.iter().sum::<f64>() / n.len() as f64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::dialect::parse_filter;
    use serde_json::json;

    fn keep(expr: &str, item: Value) -> bool {
        truthy(&eval(&parse_filter(expr).expect("parses"), &item))
    }

    #[test]
    fn prodigy_semantics() {
        let it = json!({"severity": "high", "priority": 5, "tags": ["a", "b"], "File": {"score": 7},
                        "path": "src/a.rs", "notes": "", "owner": null});
        assert!(keep(
            "severity == 'high' || severity == 'critical'",
            it.clone()
        ));
        assert!(keep("priority = 5 AND File.score > 6", it.clone()));
        assert!(keep("severity in ['high', 'critical']", it.clone()));
        assert!(!keep("severity in ['low']", it.clone()));
        assert!(keep(
            "path matches '\\.rs$' && NOT is_null(path)",
            it.clone()
        ));
        assert!(keep(
            "is_null(owner) and is_null(missing) and missing == null",
            it.clone()
        ));
        assert!(keep(
            "is_empty(notes) && length(tags) == 2 && length(tags, 2)",
            it.clone()
        ));
        assert!(keep(
            "path starts_with 'src/' && ends_with(path, '.rs')",
            it.clone()
        ));
        assert!(keep(
            "tags contains 'b' && contains(path, 'a.')",
            it.clone()
        ));
        assert!(keep(
            "tags[1] == 'b' && item.priority >= 5 && $item.priority < 6",
            it.clone()
        ));
        assert!(
            !keep("priority > 'x'", it.clone()),
            "no cross-type ordering"
        );
        assert!(!keep("missing > 1", it.clone()));
        assert!(keep("missing != 1", it.clone()));
        assert!(keep(
            "sum(.x) == 6 and avg(.x) == 2 and max(.x) == 3",
            json!({"x": [1, 2, 3]})
        ));
    }
}
