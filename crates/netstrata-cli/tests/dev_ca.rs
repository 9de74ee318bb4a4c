//! The development CA of a TLS echo server started without --cert: in a
//! directory of its user only (0700), the file 0600, never a shared path.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Starts a TLS echo server with `env`, returns where it says it wrote the
/// CA (read up to its listening line), then stops it with SIGTERM.
fn ca_written_with(env: &[(&str, &Path)], remove: &[&str], extra: &[&str]) -> PathBuf {
    let mut command = Command::new(env!("CARGO_BIN_EXE_netstrata"));
    command
        .args([
            "echo-server",
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--tls",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in remove {
        command.env_remove(var);
    }
    for (var, value) in env {
        command.env(var, value);
    }
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut path = None;
    let mut line = String::new();
    while !line.contains(" listening on ") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no listening line"
        );
        if let Some(rest) = line.strip_prefix("development CA written to ") {
            path = rest.split(" (").next().map(PathBuf::from);
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.expect("no line naming the CA")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A directory of its own for each case, under the test target's.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dev-ca-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_dev_ca_goes_to_a_private_runtime_dir() {
    let runtime = scratch("runtime");
    let path = ca_written_with(&[("XDG_RUNTIME_DIR", &runtime)], &[], &[]);
    assert_eq!(path, runtime.join("netstrata/dev-ca.pem"));
    assert_eq!(mode(&runtime.join("netstrata")), 0o700);
    assert_eq!(mode(&path), 0o600);
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    // A directory left open to others is closed again.
    std::fs::set_permissions(
        runtime.join("netstrata"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    ca_written_with(&[("XDG_RUNTIME_DIR", &runtime)], &[], &[]);
    assert_eq!(mode(&runtime.join("netstrata")), 0o700);
}

#[test]
fn without_a_runtime_dir_the_dev_ca_goes_to_the_users_cache() {
    let home = scratch("home");
    let path = ca_written_with(
        &[("HOME", &home)],
        &["XDG_RUNTIME_DIR", "XDG_CACHE_HOME"],
        &[],
    );
    assert_eq!(path, home.join(".cache/netstrata/dev-ca.pem"));
    assert_eq!(mode(&home.join(".cache/netstrata")), 0o700);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn ca_out_names_the_file() {
    let dir = scratch("ca-out");
    let named = dir.join("my-ca.pem");
    let path = ca_written_with(&[], &[], &["--ca-out", named.to_str().unwrap()]);
    assert_eq!(path, named);
    assert_eq!(mode(&path), 0o600);
}
