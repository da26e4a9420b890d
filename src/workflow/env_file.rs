//! Prodigy's `env_files`: `KEY=value` lines (blank lines and `#` comments skipped, the key
//! and value trimmed, one pair of matching quotes around the value removed), as Prodigy
//! reads them. A missing file holds nothing.

use std::path::Path;

/// The pairs of the file at `path`, in order; empty when it does not exist.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read env file {}: {e}", path.display())),
    };
    Ok(parse(&text))
}

fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = [('"', '"'), ('\'', '\'')].iter().find_map(|(a, b)| {
                v.strip_prefix(*a)
                    .and_then(|r| r.strip_suffix(*b))
                    .filter(|_| v.len() >= 2)
            });
            (k.trim().to_owned(), unquoted.unwrap_or(v).to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prodigy_env_format() {
        let text = "# comment\n\nA=1\n B = two words \nC=\"quoted\"\nD='single'\nnoequals\nE=\n";
        assert_eq!(
            parse(text),
            [
                ("A", "1"),
                ("B", "two words"),
                ("C", "quoted"),
                ("D", "single"),
                ("E", "")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn a_missing_file_is_empty() {
        assert!(read(Path::new("/nonexistent/.env")).unwrap().is_empty());
    }
}
