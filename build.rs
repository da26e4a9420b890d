//! Test gating for services that CI starts: with `RUNNER_REQUIRE_SLURM=1` (set by
//! `.ci/run` after starting single-node Slurm) the Slurm tests run and fail when Slurm is
//! unusable, and likewise `RUNNER_REQUIRE_POSTGRES=1` (set after starting a throwaway
//! PostgreSQL) for the PostgreSQL tests; without them they are compiled as `#[ignore]`d
//! (shown as `ignored`, never as a silent `ok`).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (var, cfg) in [
        ("RUNNER_REQUIRE_SLURM", "runner_require_slurm"),
        ("RUNNER_REQUIRE_POSTGRES", "runner_require_postgres"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var(var).is_ok_and(|v| v == "1") {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
