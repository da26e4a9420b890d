//! Errors of the state layer. Every message names the file involved and says what to do.

use std::io;
use std::path::{Path, PathBuf};

/// An error reading or writing the job directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A system call on `path` failed.
    #[error(
        "cannot {op} {}: {source}; check that the path exists, is writable by you and that the disk is not full",
        path.display()
    )]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// A checksummed snapshot (e.g. `checkpoint.json`) failed its integrity check.
    #[error(
        "{} is damaged ({detail}); restore it from a backup, or delete it to force a replay from the journal",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    /// A damaged record in the middle of the journal (valid records follow it), so it is not
    /// the torn tail of an interrupted write.
    #[error(
        "journal {} is corrupt at byte {offset} (line {line}: {detail}) and valid records follow it, \
         so this is not an interrupted write; inspect the line (e.g. `sed -n {line}p {}`), then restore \
         the job directory from a backup or remove the damaged line by hand",
        path.display(),
        path.display()
    )]
    JournalCorrupt {
        path: PathBuf,
        offset: u64,
        line: u64,
        detail: String,
    },

    /// The journal ends with an incomplete record and must be repaired before appending.
    #[error(
        "journal {} ends with an incomplete record; replay it and cut the torn tail \
         (journal::truncate_torn_tail) before appending, so new records never follow garbage",
        path.display()
    )]
    JournalTornTail { path: PathBuf },

    /// A replay was asked to start somewhere that is not a record boundary of the journal.
    #[error(
        "cannot replay journal {} from byte {offset}: {detail}; the checkpoint does not match this \
         journal (restored or cut?); delete checkpoint.bin to replay the journal from its first segment",
        path.display()
    )]
    BadOffset {
        path: PathBuf,
        offset: u64,
        detail: String,
    },

    /// The background journal writer stopped after an error, or was closed.
    #[error(
        "journal {} can no longer be written ({detail}); fix the cause (e.g. free disk space) and resume the job",
        path.display()
    )]
    JournalWrite { path: PathBuf, detail: String },

    /// A value could not be turned into JSON (a bug, not a user error).
    #[error("cannot encode data for {} as JSON: {source}; this is a bug, please report it", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A line of the DLQ file is not a valid entry.
    #[error(
        "DLQ file {} line {line} is not a valid entry ({detail}); fix or delete that line (it is JSON, one entry per line)",
        path.display()
    )]
    DlqLine {
        path: PathBuf,
        line: u64,
        detail: String,
    },

    /// A job id does not have the allowed form.
    #[error(
        "invalid job id {id:?}: use 1 to 128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
    )]
    InvalidJobId { id: String },

    /// `create_job` found the job directory already there.
    #[error("job directory {} already exists; choose another job id or delete the old job", path.display())]
    JobExists { path: PathBuf },
}

impl StateError {
    /// Shorthand for [`StateError::Io`].
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        StateError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_say_what_to_do() {
        let e = StateError::Corrupt {
            path: PathBuf::from("/j/checkpoint.json"),
            detail: "checksum mismatch".into(),
        };
        let m = e.to_string();
        assert!(m.contains("/j/checkpoint.json"), "{m}");
        assert!(m.contains("delete it"), "{m}");

        let e = StateError::JournalCorrupt {
            path: PathBuf::from("/j/journal.log"),
            offset: 42,
            line: 3,
            detail: "checksum mismatch".into(),
        };
        let m = e.to_string();
        assert!(
            m.contains("/j/journal.log") && m.contains("byte 42") && m.contains("line 3"),
            "{m}"
        );

        let e = StateError::io("open", Path::new("/x/y"), io::Error::other("boom"));
        assert!(e.to_string().contains("cannot open /x/y: boom"));
    }
}
