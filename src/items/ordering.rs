//! Compare sort keys: jq order, per-key direction, nulls always last.

use std::cmp::Ordering;

use jaq_json::Val;

/// Compare two rows' keys lexicographically. Each key compares in jq order
/// (null < false < true < numbers < strings < arrays < objects), reversed when its
/// `descending` flag is set, except that null (also used for missing keys) always sorts last.
pub fn compare_keys(a: &[Val], b: &[Val], descending: &[bool]) -> Ordering {
    for ((x, y), desc) in a.iter().zip(b).zip(descending) {
        let ord = match (matches!(x, Val::Null), matches!(y, Val::Null)) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) if *desc => y.cmp(x),
            (false, false) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::convert::to_jaq;
    use serde_json::json;

    fn v(j: serde_json::Value) -> Val {
        to_jaq(&j)
    }

    #[test]
    fn jq_type_order() {
        let ordered = [
            json!(false),
            json!(true),
            json!(-1),
            json!(2.5),
            json!(10),
            json!("A"),
            json!("a"),
            json!([]),
            json!([1]),
            json!({}),
            json!({"a": 1}),
        ];
        for w in ordered.windows(2) {
            assert_eq!(
                compare_keys(&[v(w[0].clone())], &[v(w[1].clone())], &[false]),
                Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn descending_reverses_but_nulls_stay_last() {
        assert_eq!(
            compare_keys(&[v(json!(1))], &[v(json!(2))], &[true]),
            Ordering::Greater
        );
        for desc in [false, true] {
            assert_eq!(
                compare_keys(&[Val::Null], &[v(json!(1))], &[desc]),
                Ordering::Greater
            );
            assert_eq!(
                compare_keys(&[v(json!(false))], &[Val::Null], &[desc]),
                Ordering::Less
            );
            assert_eq!(
                compare_keys(&[Val::Null], &[Val::Null], &[desc]),
                Ordering::Equal
            );
        }
    }

    #[test]
    fn later_keys_break_ties() {
        let a = [v(json!(1)), v(json!("b"))];
        let b = [v(json!(1)), v(json!("a"))];
        assert_eq!(compare_keys(&a, &b, &[false, false]), Ordering::Greater);
        assert_eq!(compare_keys(&a, &b, &[false, true]), Ordering::Less);
        assert_eq!(compare_keys(&a, &a, &[false, true]), Ordering::Equal);
    }
}
