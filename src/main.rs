fn main() {
    // Writing to a closed pipe must not kill us with SIGPIPE mid-job; errors are handled
    // where we write (a broken pipe ends that output quietly).
    std::process::exit(runner::cli::app::main_entry());
}
