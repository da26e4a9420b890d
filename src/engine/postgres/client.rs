//! One connection to PostgreSQL per process: queries are pipelined over it, and the
//! notifications it receives (`LISTEN`) arrive on a channel. When it breaks, callers get a
//! transient [`PgError::Down`] and reconnect with [`crate::engine::postgres::lease::Backoff`].

use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls, Row};

use crate::engine::postgres::error::{PgError, classify};
use crate::engine::postgres::url::PgUrl;

/// A notification: its channel and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub channel: String,
    pub payload: String,
}

/// An open connection.
pub struct Conn {
    client: Client,
    url: PgUrl,
    /// Notifications, until the connection ends (then `recv` returns `None`).
    pub notes: mpsc::UnboundedReceiver<Note>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connect, listening on `channels`.
pub async fn connect(url: &PgUrl, channels: &[&str]) -> Result<Conn, PgError> {
    let (client, mut connection) = url.config.connect(NoTls).await.map_err(|e| {
        let mut err = classify(
            &e,
            &format!("cannot connect to PostgreSQL at {}", url.redacted),
            &|t| url.scrub(t),
        );
        // A refused login is as fatal as a refused connection, and says so.
        if let PgError::Query(m) = err {
            err = PgError::Down(m);
        }
        err
    })?;
    let (tx, notes) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let _ = tx.send(Note {
                        channel: n.channel().to_owned(),
                        payload: n.payload().to_owned(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!("PostgreSQL connection ended: {e}");
                    return;
                }
                None => return,
            }
        }
    });
    let conn = Conn {
        client,
        url: url.clone(),
        notes,
        driver,
    };
    for ch in channels {
        conn.execute(&format!("LISTEN {ch}"), &[], "listen").await?;
    }
    Ok(conn)
}

impl Conn {
    fn err(&self, e: tokio_postgres::Error, what: &str) -> PgError {
        classify(&e, what, &|t| self.url.scrub(t))
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        what: &str,
    ) -> Result<Vec<Row>, PgError> {
        self.client
            .query(sql, params)
            .await
            .map_err(|e| self.err(e, what))
    }

    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        what: &str,
    ) -> Result<Option<Row>, PgError> {
        self.client
            .query_opt(sql, params)
            .await
            .map_err(|e| self.err(e, what))
    }

    pub async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        what: &str,
    ) -> Result<u64, PgError> {
        self.client
            .execute(sql, params)
            .await
            .map_err(|e| self.err(e, what))
    }

    /// Run several statements (no parameters) in one round trip, in one transaction.
    pub async fn batch(&self, sql: &str, what: &str) -> Result<(), PgError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.err(e, what))
    }
}

/// Run `f` on a single-threaded runtime (for the commands that only talk to PostgreSQL).
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, PgError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PgError::Query(format!("cannot start the async runtime: {e}")))?;
    let out = rt.block_on(f);
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(out)
}

/// This machine's host name (`?` when it cannot be read), for the registry and messages.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into())
}
