//! Helpers for interop tests that run a program nobody here wrote.

/// Whether the external program `tool` runs (`tool --version` or the given
/// probe arguments), for tests that talk to a peer we did not write (the
/// `zstd` and `openssl` command-line tools, `curl`).
///
/// Under CI (the `CI` environment variable set) a missing tool is a test
/// failure: this panics, so an interop test can never pass by not running.
/// Elsewhere it prints why the test is skipped and returns `false`.
///
/// ```
/// if !netstrata_core::testing::external_tool("sh", &["-c", "exit 0"]) {
///     return; // not in CI: the SKIP line says why
/// }
/// ```
pub fn external_tool(tool: &str, probe: &[&str]) -> bool {
    let probe = if probe.is_empty() {
        &["--version"][..]
    } else {
        probe
    };
    let outcome = std::process::Command::new(tool)
        .args(probe)
        .stdin(std::process::Stdio::null())
        .output();
    let why = match outcome {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!("`{tool} {}` exited with {}", probe.join(" "), out.status),
        Err(e) => format!("`{tool}` could not be run: {e}"),
    };
    cannot_run(&why, "it is required under CI (install it in .ci/run)");
    false
}

/// A test cannot run here, for `why` (a tool or a kernel feature it needs
/// is missing). Under CI (the `CI` environment variable set) that fails the
/// test: this panics with `why` and `under_ci`, what CI must provide.
/// Elsewhere it prints why the test is skipped, and the test returns.
pub fn cannot_run(why: &str, under_ci: &str) {
    assert!(std::env::var_os("CI").is_none(), "{why}; {under_ci}");
    println!("SKIP: {why}; not tested here");
}

/// Runs `program args` with `input` on its stdin (written from a thread, so
/// a large input cannot deadlock against a full stdout pipe) and returns
/// its stdout. Panics, with its stderr, if it fails. Check it is there
/// first with [`external_tool`].
pub fn run_piped(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{program}` could not be run: {e}"));
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("the child's output");
    let written = writer.join().expect("the writer thread");
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    written.unwrap_or_else(|e| panic!("writing to `{program}`: {e}"));
    out.stdout
}
