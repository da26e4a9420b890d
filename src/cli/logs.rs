//! `runner logs JOB [ITEM] [--follow]`

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::args::{Global, LogsArgs};
use crate::cli::exit::usage;
use crate::session::open::open_job;
use crate::state::items_file::ItemStore;
use crate::state::layout::StateDir;
use crate::state::lock::is_held;
use crate::state::logs::log_files;

/// A log file and what it is, in display order.
struct Source {
    title: String,
    path: PathBuf,
    offset: u64,
}

pub fn logs(g: &Global, a: &LogsArgs) -> anyhow::Result<i32> {
    let dir = open_job(&StateDir::new(&g.state_dir), &a.job)?;
    if let Some(item) = &a.item {
        let known = ItemStore::open(&dir.items(), None, None)
            .and_then(|s| s.find_ids(&[item.as_str()].into()))
            .is_ok_and(|found| !found.is_empty());
        if !known {
            return Err(usage(format!("job {} has no item {item:?}", a.job)));
        }
    }
    let mut sources: Vec<Source> = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut printed_any = false;
    loop {
        // Whether the job still runs is looked at before reading, so output written just
        // before it ended is printed by this pass, not lost.
        let live = a.follow && is_held(&dir.lock());
        for f in log_files(&dir, a.item.as_deref()) {
            if !sources.iter().any(|k| k.path == f.path) {
                sources.push(Source {
                    title: f.title,
                    path: f.path,
                    offset: 0,
                });
            }
        }
        for s in &mut sources {
            match print_new(s, &mut out) {
                Ok(true) => printed_any = true,
                Ok(false) => {}
                Err(_) => return Ok(0), // closed pipe: stop quietly
            }
        }
        if !live {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if !printed_any {
        crate::cli::out::errln!(
            "runner: no output recorded{}",
            a.item
                .as_ref()
                .map(|i| format!(" for item {i}"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

/// Print what was appended to `s` since last time; Ok(true) if anything was printed.
fn print_new(s: &mut Source, out: &mut impl Write) -> std::io::Result<bool> {
    let Ok(mut f) = std::fs::File::open(&s.path) else {
        return Ok(false);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len <= s.offset {
        return Ok(false);
    }
    if s.offset == 0 {
        writeln!(out, "==> {} ({}) <==", s.title, display(&s.path))?;
    }
    f.seek(SeekFrom::Start(s.offset))?;
    let mut buf = Vec::new();
    f.take(len - s.offset).read_to_end(&mut buf)?;
    s.offset = len;
    out.write_all(&buf)?;
    out.flush()?;
    Ok(true)
}

fn display(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
