//! Environment references in configuration values, as Prodigy writes them
//! (`max_parallel: ${MAX_PARALLEL}`, `input: "$ANALYSIS_DIR/x.json"`): `${NAME}`,
//! `${env.NAME}` and `$NAME`, with `${NAME:-default}` for a value that may be unset. The
//! text is known once the job's environment is.

use std::collections::BTreeMap;

/// One piece of a configuration value.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Var {
        name: String,
        default: Option<String>,
    },
}

/// A configuration value that may name environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvText {
    pieces: Vec<Piece>,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn name_len(b: &[u8]) -> usize {
    match b.first() {
        Some(c) if is_name_start(*c) => b
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count(),
        _ => 0,
    }
}

impl EnvText {
    /// Parse `src`; a `$` not followed by a name or `{` is literal.
    pub fn parse(src: &str) -> Result<EnvText, String> {
        let b = src.as_bytes();
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                let ch = src[i..].chars().next().unwrap_or_default();
                lit.push(ch);
                i += ch.len_utf8();
                continue;
            }
            let (var, end) = if b.get(i + 1) == Some(&b'{') {
                let close = src[i..]
                    .find('}')
                    .ok_or_else(|| format!("`{}` has no closing `}}`", &src[i..]))?;
                (Self::braced(&src[i + 2..i + close])?, i + close + 1)
            } else {
                match name_len(&b[i + 1..]) {
                    0 => {
                        lit.push('$');
                        i += 1;
                        continue;
                    }
                    n => (
                        Piece::Var {
                            name: src[i + 1..i + 1 + n].to_owned(),
                            default: None,
                        },
                        i + 1 + n,
                    ),
                }
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(var);
            i = end;
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(EnvText { pieces })
    }

    /// The inside of `${...}`: `NAME`, `env.NAME`, optionally followed by `:-default`.
    fn braced(inner: &str) -> Result<Piece, String> {
        let (head, default) = match inner.split_once(":-") {
            Some((h, d)) => (h, Some(d.to_owned())),
            None => (inner, None),
        };
        let name = head.strip_prefix("env.").unwrap_or(head);
        if name.is_empty() || name_len(name.as_bytes()) != name.len() {
            return Err(format!(
                "`${{{inner}}}` is not an environment variable: a configuration value may use `${{NAME}}`, `${{env.NAME}}`, `$NAME` or `${{NAME:-default}}`"
            ));
        }
        Ok(Piece::Var {
            name: name.to_owned(),
            default,
        })
    }

    /// Whether the value names any variable (otherwise it is plain text).
    pub fn has_vars(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var { .. }))
    }

    /// Every variable it names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// The variables that must be defined (those without a default).
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var {
                name,
                default: None,
            } => Some(name.as_str()),
            _ => None,
        })
    }

    /// The text with each variable replaced by its value in `env`.
    pub fn render(&self, env: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var { name, default } => match (env.get(name), default) {
                    (Some(v), _) => out.push_str(v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        return Err(format!("the environment variable `{name}` is not set"));
                    }
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("DIR", "/data"), ("N", "4")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn all_forms_render() {
        for (src, want) in [
            ("${DIR}/x.json", "/data/x.json"),
            ("$DIR/x.json", "/data/x.json"),
            ("${env.N}", "4"),
            ("${MISSING:-7}", "7"),
            ("$.items[*] costs $5", "$.items[*] costs $5"),
            ("plain", "plain"),
        ] {
            let t = EnvText::parse(src).expect(src);
            assert_eq!(t.render(&env()).expect(src), want, "{src}");
        }
        assert!(!EnvText::parse("plain $").unwrap().has_vars());
    }

    #[test]
    fn undefined_and_invalid_are_errors() {
        let t = EnvText::parse("${NOPE}/x").unwrap();
        assert_eq!(t.required().collect::<Vec<_>>(), ["NOPE"]);
        assert!(t.render(&env()).unwrap_err().contains("`NOPE`"));
        assert!(
            EnvText::parse("${item.x}")
                .unwrap_err()
                .contains("not an environment")
        );
        assert!(EnvText::parse("${N").unwrap_err().contains("closing"));
        assert_eq!(EnvText::parse("${A:-1}").unwrap().required().count(), 0);
    }
}
