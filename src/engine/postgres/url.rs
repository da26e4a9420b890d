//! `RUNNER_POSTGRES_URL`: parsing it into a connection config, and redacting its password
//! for every message that names it.

use std::time::Duration;

use tokio_postgres::Config;

use crate::engine::postgres::error::PgError;

/// The environment variable holding the connection URL.
pub const URL_VAR: &str = "RUNNER_POSTGRES_URL";

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed URL, with what is needed to keep its password out of messages.
#[derive(Clone)]
pub struct PgUrl {
    pub config: Config,
    /// The URL with its password replaced by `***`.
    pub redacted: String,
    password: Option<String>,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl PgUrl {
    /// The URL from `RUNNER_POSTGRES_URL`.
    pub fn from_env() -> Result<PgUrl, PgError> {
        match std::env::var(URL_VAR) {
            Ok(u) if !u.trim().is_empty() => PgUrl::parse(u.trim()),
            _ => Err(PgError::Url(format!(
                "{URL_VAR} is not set: the PostgreSQL executor needs it \
                 (e.g. export {URL_VAR}=postgres://runner@db.example/runner)"
            ))),
        }
    }

    pub fn parse(url: &str) -> Result<PgUrl, PgError> {
        let redacted = redact(url);
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            PgError::Url(format!(
                "{URL_VAR} is not a valid PostgreSQL URL ({redacted}): {}; \
                 expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                scrub_text(&e.to_string(), None)
            ))
        })?;
        if config.get_hosts().is_empty() {
            return Err(PgError::Url(format!(
                "{URL_VAR} ({redacted}) names no host; expected postgres://USER@HOST[:PORT]/DATABASE"
            )));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("runner");
        }
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| !p.is_empty());
        Ok(PgUrl {
            config,
            redacted,
            password,
        })
    }

    /// `text` with this URL's password (if any) replaced by `***`.
    pub fn scrub(&self, text: String) -> String {
        scrub_text(&text, self.password.as_deref())
    }
}

fn scrub_text(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if p.len() >= 2 => text.replace(p, "***"),
        _ => text.to_owned(),
    }
}

/// A URL (`postgres://user:secret@host/db?password=...`) or key=value connection string
/// (`host=db password=secret`) with every password replaced by `***`.
pub fn redact(url: &str) -> String {
    let url = url.trim();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            // The authority's user info ends at the last '@' before the query.
            let query_at = rest.find('?').unwrap_or(rest.len());
            let (head, query) = rest.split_at(query_at);
            let head = match head.rfind('@') {
                Some(at) => {
                    let (userinfo, host) = head.split_at(at);
                    match userinfo.split_once(':') {
                        Some((user, _)) => format!("{user}:***{host}"),
                        None => head.to_owned(),
                    }
                }
                None => head.to_owned(),
            };
            format!("{scheme}://{head}{}", redact_query(query))
        }
        None => redact_key_values(url),
    }
}

/// `?a=1&password=x` with the password's value replaced.
fn redact_query(query: &str) -> String {
    let Some(q) = query.strip_prefix('?') else {
        return query.to_owned();
    };
    let parts: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("?{}", parts.join("&"))
}

/// `host=db password='a b' user=x` with the password's value replaced.
fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = find_key(rest, "password") {
        out.push_str(&rest[..pos]);
        let after_key = &rest[pos + "password".len()..];
        let after_eq = after_key
            .trim_start()
            .strip_prefix('=')
            .unwrap_or(after_key);
        let value = after_eq.trim_start();
        let consumed = if let Some(quoted) = value.strip_prefix('\'') {
            // A quoted value ends at the first unescaped quote.
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            1 + end.min(quoted.len())
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push_str("password=***");
        let skipped = rest.len() - value.len() + consumed;
        rest = &rest[skipped.min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// The byte position of `key` as a whole word followed by `=` (spaces allowed).
fn find_key(s: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(key) {
        let at = from + i;
        let before_ok = at == 0 || s[..at].ends_with(char::is_whitespace);
        let after = s[at + key.len()..].trim_start();
        if before_ok && after.starts_with('=') {
            return Some(at);
        }
        from = at + key.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact("postgres://runner:s3cret@db:5432/runner"),
            "postgres://runner:***@db:5432/runner"
        );
        assert_eq!(
            redact("postgresql://u:p@ss@w0rd@db/x?sslmode=disable"),
            "postgresql://u:***@db/x?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://runner@db/runner"),
            "postgres://runner@db/runner"
        );
        assert_eq!(
            redact("postgres://db/x?user=u&password=hunter2&sslmode=disable"),
            "postgres://db/x?user=u&password=***&sslmode=disable"
        );
    }

    #[test]
    fn key_value_passwords_are_redacted() {
        assert_eq!(
            redact("host=db password=hunter2 user=u"),
            "host=db password=*** user=u"
        );
        assert_eq!(
            redact("host=db password = 'a b\\' c' user=u"),
            "host=db password=*** user=u"
        );
        assert_eq!(redact("host=db user=u"), "host=db user=u");
        assert_eq!(redact("host=db mypassword=x"), "host=db mypassword=x");
    }

    #[test]
    fn a_bad_url_is_a_usage_error_without_the_password() {
        let e = PgUrl::parse("postgres://u:hunter2@db:notaport/x").unwrap_err();
        assert!(matches!(e, PgError::Url(_)), "{e:?}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("u:***@db"), "{e}");
    }

    #[test]
    fn defaults_are_filled_in_and_the_password_scrubbed() {
        let u = PgUrl::parse("postgres://u:hunter2@127.0.0.1:5999/x").unwrap();
        assert_eq!(u.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(u.config.get_application_name(), Some("runner"));
        assert_eq!(
            u.scrub("auth for hunter2 failed".into()),
            "auth for *** failed"
        );
        assert_eq!(format!("{u:?}"), "postgres://u:***@127.0.0.1:5999/x");
    }
}
