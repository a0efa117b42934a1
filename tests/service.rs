//! firelane under a service manager: the systemd unit as shipped, and the
//! notify protocol (ready, watchdog, reload on SIGHUP, stopping) spoken by
//! the real binary to a socket standing in for systemd.

mod common;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, repo_root};

/// `systemd-analyze verify` on deploy/firelane.service (its ExecStart
/// pointed at the binary under test), and the hardening's exposure score.
#[test]
fn the_unit_verifies_and_is_hardened() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed here: the unit is not checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo_root().join("deploy/firelane.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/firelane run "), "{unit}");
    let unit = unit.replace("/usr/bin/firelane", env!("CARGO_BIN_EXE_firelane"));
    let path = dir.path().join("firelane.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Unknown keys and bad values are only warnings: none may be ours.
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("firelane")).collect();
    assert!(ours.is_empty(), "{ours:#?}");

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for firelane.service: ")
                .nth(1)
        })
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure line in:\n{text}"))
        .parse()
        .unwrap();
    // systemd rates 0-10; under 2 is "OK" on its scale.
    assert!(score < 2.0, "exposure {score}:\n{text}");
}

#[test]
fn tells_systemd_ready_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = dir.path().join("firelane.toml");
    let (v4, v5) = (free_port(), free_port());
    let toml = |grace: u32| {
        format!(
            "[storage]\ndata_dir = \"{data}\"\n[mqtt.embedded_broker]\nlisten = \"127.0.0.1:{v4}\"\nlisten_v5 = \"127.0.0.1:{v5}\"\n[http]\nenabled = false\n[[cameras]]\nid = \"c1\"\n[[zones]]\nid = \"z1\"\ncamera = \"c1\"\npolygon = [[0.1,0.1],[0.9,0.1],[0.9,0.9]]\ngrace_s = {grace}\n",
            data = dir.path().join("data").display(),
        )
    };
    std::fs::write(&config, toml(60)).unwrap();
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_firelane"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "1000000")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut heard: Vec<String> = Vec::new();
    let wait_for = |what: &str, within: Duration, heard: &mut Vec<String>| {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let hit = msg.lines().any(|l| l == what);
                heard.push(msg);
                if hit {
                    return;
                }
            }
        }
        panic!("no {what} within {within:?}; heard {heard:?}");
    };
    wait_for("READY=1", Duration::from_secs(60), &mut heard);
    // Pinged at half the watchdog interval.
    let pings_from = heard.len();
    wait_for("WATCHDOG=1", Duration::from_secs(3), &mut heard);
    wait_for("WATCHDOG=1", Duration::from_secs(3), &mut heard);
    assert!(heard.len() - pings_from >= 2);

    std::fs::write(&config, toml(90)).unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for("RELOADING=1", Duration::from_secs(5), &mut heard);
    wait_for("READY=1", Duration::from_secs(5), &mut heard);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for("STOPPING=1", Duration::from_secs(10), &mut heard);
    let status = child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    // SIGHUP applied the edit at once (the file poll would wait a second
    // for the file to settle).
    assert!(log.contains("configuration applied"), "{log}");
}
