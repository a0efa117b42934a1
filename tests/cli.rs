//! The `firelane` binary as a user meets it: exit codes and messages.

mod common;

use std::process::Command;

use common::repo_root;

fn firelane(args: &[&str]) -> (i32, String, String) {
    firelane_in(&repo_root(), args)
}

fn firelane_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firelane"))
        .args(args)
        .current_dir(dir)
        .env_remove("FIRELANE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn shipped_config_checks_out() {
    let (code, out, err) = firelane(&["check-config", "config/firelane.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("config/firelane.toml: OK"), "{out}");
    assert!(out.contains("zone north-lane-b: 4 points"), "{out}");
}

/// From a folder with no `config/` or `models/` (as after `cargo install`):
/// the built-in model and config, and the data-folder commands with
/// `--data-dir` alone.
#[test]
fn works_from_any_folder() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    std::fs::write(here.join("x.jpg"), common::jpeg_frame(96, 64, 3)).unwrap();
    let (code, out, err) = firelane_in(here, &["classify", "--json", "x.jpg"]);
    assert_eq!(code, 0, "{err}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(line["score"].as_f64().is_some(), "{out}");

    std::fs::write(
        here.join("site.toml"),
        "[[cameras]]\nid = \"c1\"\n[[zones]]\nid = \"z1\"\ncamera = \"c1\"\npolygon = [[0.1,0.1],[0.9,0.1],[0.9,0.9]]\n",
    )
    .unwrap();
    let (code, out, err) = firelane_in(here, &["check-config", "site.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("model: builtin:obstruction-v2"), "{out}");

    let (code, out, err) = firelane_in(here, &["classify", "--model", "builtin:v9", "x.jpg"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("builtin:v9: no such model is built in (built in: builtin:obstruction-v2)"),
        "{err}"
    );

    let data = here.join("site-data");
    let d = data.to_str().unwrap();
    let (code, token, err) = firelane_in(
        here,
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "ops",
            "--data-dir",
            d,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(token.trim().starts_with("flt_"), "{token}");
    let (code, out, err) = firelane_in(here, &["token", "list", "--data-dir", d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" ops"), "{out}");
    let (code, out, err) = firelane_in(here, &["audit", "verify", "--data-dir", d]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("audit log OK"), "{out}");
    let (code, key, err) = firelane_in(here, &["evidence", "public-key", "--data-dir", d]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(key.trim().len(), 64, "{key}");
    assert!(data.join("site.key").exists());
    // Nothing was written beside it: the data went where it was told.
    assert!(!here.join("data").exists());
}

#[test]
fn bad_config_names_file_zone_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[[cameras]]
id = "north"
[[zones]]
id = "lane-1"
camera = "south"
polygon = [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]
threshold = 2
[[zones]]
id = "lane-1"
camera = "north"
polygon = [[0.1, 0.1], [0.5, 0.1]]
"#,
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let (code, _out, err) = firelane(&["check-config", p]);
    assert_eq!(code, 1, "{err}");
    for expected in [
        format!("{p}: zone \"lane-1\" (zones[0]): camera: unknown camera \"south\"; known: north"),
        format!("{p}: zone \"lane-1\" (zones[0]): polygon: is self-intersecting"),
        format!("{p}: zone \"lane-1\" (zones[0]): threshold: 2 is out of range"),
        format!("{p}: zone \"lane-1\" (zones[1]): id: duplicate zone id"),
        format!("{p}: zone \"lane-1\" (zones[1]): polygon: needs at least 3 points, got 2"),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn unreadable_model_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(&path, "[model]\npath = \"/nonexistent/model.onnx\"\n").unwrap();
    let (code, _out, err) = firelane(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("[model]: path: model card /nonexistent/model.json: cannot read"),
        "{err}"
    );
}

/// `FIRELANE_LOG_FORMAT=json`: one JSON object per log line, no colours.
#[test]
fn logs_as_json_lines_for_shippers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[model]\npath = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n[http]\nenabled = false\n",
            dir.path().display(),
            common::model_path().display()
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut child = common::Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_firelane"))
            .args(["run", "--config"])
            .arg(&config)
            .env("FIRELANE_LOG_FORMAT", "json")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("firelane started")
    {
        assert!(std::time::Instant::now() < deadline, "no start logged");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|v| v["level"].is_string() && v["timestamp"].is_string())
    );
    let started = lines
        .iter()
        .find(|v| v["message"] == "firelane started")
        .unwrap();
    assert!(started["zones"].is_number(), "fields flattened: {started}");
    assert!(!err.contains('\u{1b}'), "no ANSI colours: {err}");
}

/// Each cause is printed once (not `…(os error 2): No such file or
/// directory (os error 2)`).
#[test]
fn an_error_names_each_cause_once() {
    let (code, _out, err) = firelane(&["classify", "--model", "/nonexistent/m.onnx", "x.jpg"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("model card /nonexistent/m.json: cannot read"),
        "{err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn tampered_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let models = repo_root().join("models");
    std::fs::copy(
        models.join("obstruction-v1.json"),
        dir.path().join("obstruction-v1.json"),
    )
    .unwrap();
    let mut onnx = std::fs::read(models.join("obstruction-v1.onnx")).unwrap();
    let last = onnx.len() - 1;
    onnx[last] ^= 0x01;
    std::fs::write(dir.path().join("obstruction-v1.onnx"), onnx).unwrap();
    let img = dir.path().join("x.jpg");
    std::fs::write(&img, common::jpeg_frame(64, 64, 1)).unwrap();
    let model = dir.path().join("obstruction-v1.onnx");
    let (code, _out, err) = firelane(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("does not match its card"), "{err}");
}

#[test]
fn classify_prints_json_lines_and_names_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("a.jpg"), common::jpeg_frame(150, 150, 1)).unwrap();
    std::fs::write(
        dir.path().join("sub/b.jpg"),
        common::jpeg_frame(150, 150, 2),
    )
    .unwrap();
    std::fs::write(dir.path().join("sub/broken.jpg"), b"\xFF\xD8 not really").unwrap();
    let (code, out, err) = firelane(&["classify", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "one file is unreadable: {err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        let score = l["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert!(l["obstructed"].is_boolean());
    }
    assert!(lines[0]["path"].as_str().unwrap().ends_with("a.jpg"));
    assert!(err.contains("broken.jpg: truncated JPEG"), "{err}");
}
