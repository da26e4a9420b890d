//! Compare sort keys: jq order, per-key direction, nulls last (or first with `NULLS FIRST`)
//! whatever the direction.

use std::cmp::Ordering;

use jaq_json::Val;

/// How one key sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Order {
    pub descending: bool,
    pub nulls_first: bool,
}

/// Compare two rows' keys lexicographically. Each key compares in jq order
/// (null < false < true < numbers < strings < arrays < objects), reversed when it is
/// descending, except that null (also used for missing keys) sorts last (or first with
/// `nulls_first`) in both directions.
pub fn compare_keys(a: &[Val], b: &[Val], orders: &[Order]) -> Ordering {
    for ((x, y), o) in a.iter().zip(b).zip(orders) {
        let null_side = if o.nulls_first {
            Ordering::Less
        } else {
            Ordering::Greater
        };
        let ord = match (matches!(x, Val::Null), matches!(y, Val::Null)) {
            (true, true) => Ordering::Equal,
            (true, false) => null_side,
            (false, true) => null_side.reverse(),
            (false, false) if o.descending => y.cmp(x),
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

    fn o(descending: bool) -> Order {
        Order {
            descending,
            nulls_first: false,
        }
    }

    #[test]
    fn nulls_first_when_asked() {
        let first = [Order {
            descending: true,
            nulls_first: true,
        }];
        assert_eq!(
            compare_keys(&[Val::Null], &[v(json!(1))], &first),
            Ordering::Less
        );
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
                compare_keys(&[v(w[0].clone())], &[v(w[1].clone())], &[o(false)]),
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
            compare_keys(&[v(json!(1))], &[v(json!(2))], &[o(true)]),
            Ordering::Greater
        );
        for desc in [false, true] {
            assert_eq!(
                compare_keys(&[Val::Null], &[v(json!(1))], &[o(desc)]),
                Ordering::Greater
            );
            assert_eq!(
                compare_keys(&[v(json!(false))], &[Val::Null], &[o(desc)]),
                Ordering::Less
            );
            assert_eq!(
                compare_keys(&[Val::Null], &[Val::Null], &[o(desc)]),
                Ordering::Equal
            );
        }
    }

    #[test]
    fn later_keys_break_ties() {
        let a = [v(json!(1)), v(json!("b"))];
        let b = [v(json!(1)), v(json!("a"))];
        assert_eq!(
            compare_keys(&a, &b, &[o(false), o(false)]),
            Ordering::Greater
        );
        assert_eq!(compare_keys(&a, &b, &[o(false), o(true)]), Ordering::Less);
        assert_eq!(compare_keys(&a, &a, &[o(false), o(true)]), Ordering::Equal);
    }
}
