//! Test gating for what the machine offers or CI starts:
//! - `RUNNER_REQUIRE_SLURM=1` (set by `.ci/run` after starting single-node Slurm): the Slurm
//!   tests run and fail when Slurm is unusable; without it they are `#[ignore]`d. Likewise
//!   `RUNNER_REQUIRE_POSTGRES=1` (set after starting a throwaway PostgreSQL) for the
//!   PostgreSQL tests.
//! - `RUNNER_REQUIRE_CHROMIUM=1` (set by `.ci/run` after installing Chromium): the report's
//!   browser tests run and fail when Chromium is missing or broken; without it, `ignored`.
//! - `runner_cgroups`: this machine lets the build (as the tests will) create cgroup v2
//!   groups; `runner_cgroup_controllers`: with the memory and pids controllers too. Tests
//!   of the cgroup path are `ignored` (never a silent `ok`) where they are missing.
//!
//! Ignored tests show as `ignored`, never as a silent `ok`.
use std::path::Path;

#[path = "src/engine/limits/cgroup_path.rs"]
mod cgroup_path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (var, cfg) in [
        ("RUNNER_REQUIRE_SLURM", "runner_require_slurm"),
        ("RUNNER_REQUIRE_POSTGRES", "runner_require_postgres"),
        ("RUNNER_REQUIRE_CHROMIUM", "runner_require_chromium"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var(var).is_ok_and(|v| v == "1") {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rustc-check-cfg=cfg(runner_cgroups)");
    println!("cargo::rustc-check-cfg=cfg(runner_cgroup_controllers)");
    if let Ok(dir) = cgroup_path::own_cgroup_dir()
        && writable(&dir)
    {
        println!("cargo::rustc-cfg=runner_cgroups");
        let controllers =
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if has("memory") && has("pids") {
            println!("cargo::rustc-cfg=runner_cgroup_controllers");
        }
    }
}

/// Can a cgroup be created in `dir`? (Tried, then removed.)
fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!("runner-build-probe-{}", std::process::id()));
    let ok = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    ok
}
