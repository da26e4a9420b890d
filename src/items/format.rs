//! How the items input is read (`map.input_format`), and the default a file's extension
//! gives when the key is absent.

use std::fmt;
use std::str::FromStr;

use super::input::Input;

/// The format of the items input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// Sniffed: one JSON document, else JSON lines, else plain lines; text whose first
    /// non-blank character is `[` or `{` is JSON (or JSON lines) or an error, never plain lines.
    #[default]
    Auto,
    /// One JSON document.
    Json,
    /// JSON lines: every non-blank line is one JSON value.
    Jsonl,
    /// Plain text lines: every non-blank line is one string item, never parsed.
    Lines,
}

impl InputFormat {
    /// The format used for `input`: `explicit` (`map.input_format`) when given; otherwise
    /// `.json` files are [`InputFormat::Json`], `.jsonl`/`.ndjson` files [`InputFormat::Jsonl`]
    /// (case-insensitive), and everything else (commands, other extensions) is `Auto`.
    pub fn resolve(explicit: Option<InputFormat>, input: &Input) -> InputFormat {
        if let Some(f) = explicit {
            return f;
        }
        let Input::File(path) = input else {
            return InputFormat::Auto;
        };
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("json") => InputFormat::Json,
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            _ => InputFormat::Auto,
        }
    }

    /// What the format reads, for messages (`runner validate`).
    pub fn describe(self) -> &'static str {
        match self {
            InputFormat::Auto => "JSON, JSON lines or plain lines (sniffed)",
            InputFormat::Json => "one JSON document",
            InputFormat::Jsonl => "JSON lines",
            InputFormat::Lines => "plain lines",
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::Auto => "auto",
            InputFormat::Json => "json",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Lines => "lines",
        })
    }
}

impl FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(InputFormat::Auto),
            "json" => Ok(InputFormat::Json),
            "jsonl" => Ok(InputFormat::Jsonl),
            "lines" => Ok(InputFormat::Lines),
            _ => Err(format!(
                "unknown map.input_format {s:?}: use json (one JSON document), jsonl (one JSON \
                 value per line), lines (one string per line) or auto"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(name: &str) -> Input {
        Input::File(PathBuf::from("/w").join(name))
    }

    #[test]
    fn extension_decides_when_not_given() {
        use InputFormat::*;
        for (name, want) in [
            ("a.json", Json),
            ("a.JSON", Json),
            ("a.jsonl", Jsonl),
            ("a.ndjson", Jsonl),
            ("a.txt", Auto),
            ("a", Auto),
        ] {
            assert_eq!(InputFormat::resolve(None, &file(name)), want, "{name}");
        }
        let cmd = Input::Command("cat a.json".into());
        assert_eq!(InputFormat::resolve(None, &cmd), Auto);
    }

    #[test]
    fn explicit_format_overrides_the_extension() {
        use InputFormat::*;
        let cmd = Input::Command("ls".into());
        for (given, input, want) in [
            (Lines, file("a.json"), Lines),
            (Auto, file("a.jsonl"), Auto),
            (Json, cmd, Json),
        ] {
            assert_eq!(InputFormat::resolve(Some(given), &input), want);
        }
    }

    #[test]
    fn names_round_trip_and_bad_names_are_explained() {
        for f in [
            InputFormat::Auto,
            InputFormat::Json,
            InputFormat::Jsonl,
            InputFormat::Lines,
        ] {
            assert_eq!(f.to_string().parse::<InputFormat>(), Ok(f));
        }
        assert!("JSON".parse::<InputFormat>().is_err());
        let err = "yaml".parse::<InputFormat>().unwrap_err();
        assert!(err.contains("\"yaml\"") && err.contains("jsonl"), "{err}");
    }
}
