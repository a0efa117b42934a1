//! `firelane demo` as a newcomer meets it: started from an empty folder,
//! it prints a link; the page behind it shows the sample's violations.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_violations_on_the_page_within_a_minute() {
    let here = tempfile::tempdir().unwrap();
    let data = here.path().join("demo-data");
    let port = free_port();
    // Its log, kept for the failure message: an exit code alone says little.
    let log = here.path().join("demo.log");
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_firelane"))
            .args(["demo", "--seconds", "20", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data)
            .current_dir(here.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut link = None;
    let mut token = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(l) = line.trim().strip_prefix("page:") {
            link = Some(l.trim().to_string());
        }
        if let Some(t) = line.trim().strip_prefix("token:") {
            token = Some(t.split_whitespace().next().unwrap().to_string());
            break;
        }
    }
    let (link, token) = (link.expect("a page: line"), token.expect("a token: line"));
    assert_eq!(link, format!("http://127.0.0.1:{port}/#token={token}"));

    let result = common::browser_walk(
        "newcomer.mjs",
        vec![("PAGE_URL", link.clone()), ("MIN_VIOLATIONS", "3".into())],
    )
    .await;
    assert_eq!(result["violations"], 3, "{result}");
    assert_eq!(result["zones"], 3, "{result}");
    assert_eq!(result["token_left_in_url"], false, "{result}");

    // The same three, by zone, through the API the page uses.
    let client = firelane::alerts::webhook::client();
    let v: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/api/violations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut zones: Vec<&str> = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|x| x["zone"].as_str().unwrap())
        .collect();
    zones.sort();
    assert_eq!(zones, ["hydrant-bay", "lane-east", "lane-west"], "{v}");
    // It ran on the built-in config, in the folder it was given.
    assert!(data.join("firelane.db").exists());
    assert!(!here.path().join("data").exists());

    // The feed's summary, then a clean stop on SIGTERM. The pipe stays
    // open until the demo has exited: it prints another line after the
    // summary, and a closed pipe would fail that write.
    let summary = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("fed "))
        .expect("a summary line");
    assert!(summary.ends_with("3 violations recorded"), "{summary}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    drop(lines);
    let tail = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(15).collect();
    assert!(
        status.success(),
        "{status:?}; its log ends:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
