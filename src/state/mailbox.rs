//! The mailbox of a live job (its control channel): `runner pause|resume|stop` drop request files into the
//! job's `control/` directory; the running process picks them up (a few times a second),
//! acts, and records what it did in the journal.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::state::atomic::{create_dir_private, write_atomic};
use crate::state::error::StateError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ControlRequest {
    Pause {
        #[serde(default)]
        reason: Option<String>,
    },
    Resume,
    Stop {
        grace_ms: u64,
    },
}

/// Queue a request for the live process.
pub fn send(control_dir: &Path, req: &ControlRequest) -> Result<(), StateError> {
    create_dir_private(control_dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = control_dir.join(format!("{nanos:024}-{}.json", std::process::id()));
    let body = serde_json::to_vec(req).map_err(|e| StateError::Encode {
        path: path.clone(),
        source: e,
    })?;
    write_atomic(&path, &body)
}

/// Take every queued request, oldest first (each file is removed once read). Unreadable
/// files are removed and skipped.
pub fn take_all(control_dir: &Path) -> Vec<ControlRequest> {
    let Ok(rd) = std::fs::read_dir(control_dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        if let Ok(bytes) = std::fs::read(&p)
            && let Ok(req) = serde_json::from_slice::<ControlRequest>(&bytes)
        {
            out.push(req);
        }
        let _ = std::fs::remove_file(&p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_in_order() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("control");
        send(
            &c,
            &ControlRequest::Pause {
                reason: Some("maintenance".into()),
            },
        )
        .unwrap();
        send(&c, &ControlRequest::Resume).unwrap();
        send(&c, &ControlRequest::Stop { grace_ms: 5 }).unwrap();
        std::fs::write(c.join("garbage.json"), b"{").unwrap();
        let got = take_all(&c);
        assert_eq!(
            got,
            vec![
                ControlRequest::Pause {
                    reason: Some("maintenance".into())
                },
                ControlRequest::Resume,
                ControlRequest::Stop { grace_ms: 5 }
            ]
        );
        assert!(take_all(&c).is_empty());
    }
}
