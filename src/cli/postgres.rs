//! `runner postgres migrate`

use crate::cli::args::PostgresCommand;
use crate::cli::out;
use crate::engine::postgres::url::PgUrl;

pub fn postgres(c: &PostgresCommand) -> anyhow::Result<i32> {
    match c {
        PostgresCommand::Migrate => {
            let url = PgUrl::from_env()?;
            let m = crate::engine::postgres::workers::migrate(&url)?;
            if m.from == m.to {
                out::line(&format!(
                    "the runner schema is up to date (version {})",
                    m.to
                ));
            } else {
                out::line(&format!(
                    "migrated the runner schema from version {} to {}",
                    m.from, m.to
                ));
            }
            Ok(0)
        }
    }
}
