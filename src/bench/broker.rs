//! A mosquitto of one's own on loopback: the benchmark's broker, and the
//! tests' (which start theirs through this same function).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's mosquitto, wherever it is installed.
pub fn mosquitto_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Writes `conf` into `dir`, starts mosquitto on it and waits (up to 20 s)
/// until each of `ports` listens on 127.0.0.1.
pub fn spawn_mosquitto(dir: &Path, conf: &str, ports: &[u16]) -> Result<Child, String> {
    let bin =
        mosquitto_binary().ok_or("mosquitto is not installed: apt-get install -y mosquitto")?;
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, conf).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting mosquitto: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    for &port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("mosquitto exited early with {status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!(
                    "mosquitto did not listen on port {port} within 20 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(child)
}
