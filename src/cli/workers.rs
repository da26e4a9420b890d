//! `runner workers [--json]`

use crate::cli::args::WorkersArgs;
use crate::cli::out;
use crate::engine::postgres::url::PgUrl;

pub fn workers(a: &WorkersArgs) -> anyhow::Result<i32> {
    let url = PgUrl::from_env()?;
    let rows = crate::engine::postgres::workers::workers(&url)?;
    if a.json {
        out::line(&serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        out::line("no workers registered (start some with `runner worker`)");
        return Ok(0);
    }
    let host_w = rows.iter().map(|r| r.host.len()).max().unwrap_or(4).max(4);
    out::line(&format!(
        "{:<6} {:<host_w$} {:>8} {:>5} {:>4} {:>10}  STATE",
        "ID", "HOST", "PID", "SLOTS", "BUSY", "HEARTBEAT"
    ));
    for r in &rows {
        if !out::line(&format!(
            "{:<6} {:<host_w$} {:>8} {:>5} {:>4} {:>9.1}s  {}",
            r.id, r.host, r.pid, r.slots, r.busy, r.heartbeat_age_s, r.state
        )) {
            break;
        }
    }
    Ok(0)
}
