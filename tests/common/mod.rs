//! Test support: real services started per test (mosquitto, PostgreSQL),
//! the shared data folder, and real JPEG frames.
#![allow(dead_code)]

pub mod fault_site;
pub mod faults;
pub mod mqtt;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model_path() -> PathBuf {
    // The file the built-in model is compiled from.
    repo_root().join("models/obstruction-v2.onnx")
}

/// `../shared` (or `$FIRELANE_SHARED`); panics with what to do when absent.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("FIRELANE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    assert!(
        dir.join("scenarios").is_dir(),
        "this test needs the shared data folder (scenarios/, data/cnrpark-a/) at {}; set FIRELANE_SHARED to its path",
        dir.display()
    );
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto broker of this test's own, on a free loopback port.
pub struct Mosquitto {
    pub port: u16,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_on(free_port())
    }

    /// On a given port (e.g. to restart a broker where clients expect it).
    pub fn start_on(port: u16) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmessage_size_limit 0\n"
        );
        Self::spawn(dir, &conf, &[port])
    }

    /// Runs mosquitto on `conf` (written into `dir`) and waits for `ports`.
    fn spawn(dir: tempfile::TempDir, conf: &str, ports: &[u16]) -> Mosquitto {
        let child = firelane::bench::broker::spawn_mosquitto(dir.path(), conf, ports)
            .unwrap_or_else(|e| panic!("{e}"));
        Mosquitto {
            port: ports[0],
            child: Some(child),
            _dir: Some(dir),
        }
    }

    /// A broker with a plain listener (`port`) and a TLS one (returned),
    /// its certificate signed by a CA made here; returns the CA's PEM path.
    pub fn start_tls() -> (Mosquitto, u16, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        test_ca(d);
        // mosquitto started as root drops to its own user before reading keys.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["ca.pem", "server.pem", "server.key"] {
            std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let (port, tls_port) = (free_port(), free_port());
        let conf = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nlistener {port} 127.0.0.1\nlistener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
            ca = d.join("ca.pem").display(),
            cert = d.join("server.pem").display(),
            key = d.join("server.key").display(),
        );
        let ca = d.join("ca.pem");
        (Self::spawn(dir, &conf, &[port, tls_port]), tls_port, ca)
    }

    /// A broker someone else runs (e.g. firelane's embedded one) on `port`.
    pub fn external(port: u16) -> Mosquitto {
        Mosquitto {
            port,
            child: None,
            _dir: None,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is
    /// answered — no CONNACK, no PUBACK — until [`Mosquitto::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("a broker this test started");
        run(Command::new("kill").arg(sig).arg(child.id().to_string()));
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Makes `ca.pem`, and `server.pem`/`server.key` for localhost and
/// 127.0.0.1 signed by it, in `d` (with openssl).
pub fn test_ca(d: &std::path::Path) {
    let ossl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d));
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=firelane-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    ossl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// A child process killed (and reaped) when the test ends, by success or
/// by a failed assertion: a panicking test must not leave a daemon running.
pub struct Reaped(pub Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A PostgreSQL server of this test's own (binaries in /usr/local/bin or
/// $PG_BIN), run as the `postgres` user since initdb refuses root.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = std::env::var_os("PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/local/bin"));
        assert!(
            bin.join("initdb").exists(),
            "PostgreSQL's initdb not found in {} (set PG_BIN)",
            bin.display()
        );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("firelane-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let as_root = unsafe_is_root();
        if as_root {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir));
        }
        let pg = |tool: &str| {
            let mut c = if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
                c
            } else {
                Command::new(bin.join(tool))
            };
            c.current_dir("/");
            c
        };
        let data = dir.join("data");
        run(pg("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ]));
        run(pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"]));
        Postgres { port, dir, bin }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self) -> Command {
        let mut c = if unsafe_is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        c.current_dir("/").arg("-D").arg(self.dir.join("data"));
        c
    }

    /// An outage: the server stops at once, dropping every connection.
    pub fn stop(&self) {
        run(self.pg_ctl().args(["-m", "immediate", "-w", "stop"]));
    }

    /// A stall: the server and its backends stop (SIGSTOP) with their
    /// connections open, answering nothing until [`Postgres::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pidfile = self.dir.join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&pidfile).unwrap();
        let pid = text
            .lines()
            .next()
            .expect("postmaster.pid has a pid")
            .trim();
        // The backends first: a stopped postmaster still lets them answer.
        let _ = Command::new("pkill").args([sig, "-P", pid]).status();
        run(Command::new("kill").arg(sig).arg(pid));
    }

    /// The server back on the same port with the same data.
    pub fn restart(&self) {
        run(self
            .pg_ctl()
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.display()
            ))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "start"]));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl().args(["-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real JPEG of `w` x `h`: a textured scene (noise, gradients), the way
/// a camera's frame looks to a decoder.
pub fn jpeg_frame(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = (x.wrapping_mul(73856093) ^ y.wrapping_mul(19349663) ^ seed.wrapping_mul(83492791))
            % 37;
        image::Rgb([
            (60 + x * 120 / w + n) as u8,
            (70 + y * 100 / h + n) as u8,
            (80 + n * 2) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out
}

/// Installs the page test's npm packages (playwright-core, no browser
/// download) when the folder has none yet.
pub fn browser_tools() -> PathBuf {
    let dir = repo_root().join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js) is needed for the page test");
        assert!(status.success(), "npm ci in tests/browser failed");
    }
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the page test needs Debian's chromium (apt-get install chromium)"
    );
    dir
}

/// Runs the walk-through `script` of tests/browser in headless Chromium
/// with `env`; returns the JSON line it prints on success.
pub async fn browser_walk(script: &str, env: Vec<(&'static str, String)>) -> serde_json::Value {
    let dir = browser_tools();
    let script = dir.join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser walk-through failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// The demo sample's frames (samples/demo), in capture order, `range` of
/// them: 3..=24 have a car in the west strip, 12..=30 in the hydrant bay.
pub fn sample_frames(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    let dir = repo_root().join("samples/demo/frames/street");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files[range]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect()
}
