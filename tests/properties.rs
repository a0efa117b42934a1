//! Property tests over every parser that takes outside input: MQTT payloads
//! (frame envelope, sensor JSON, user properties), config TOML, zone edits
//! as the API makes them, JPEG headers and the bundle verifier on mutated
//! ZIPs. Thousands of cases each; none may panic, each refusal is a
//! message, and a bundle that still verifies holds exactly what was signed.

mod common;

use std::sync::{Arc, OnceLock};

use firelane::ingest::clocks::{ClockRule, ClockSkewPolicy};
use firelane::ingest::payload::{Limits, parse_frame, parse_sensor};
use proptest::prelude::*;

const NOW: i64 = 1_764_633_600_000;

fn limits() -> Limits {
    Limits {
        max_bytes: 64 * 1024,
        clock: ClockRule {
            max_ahead_ms: 300_000,
            max_behind_ms: Some(900_000),
            policy: ClockSkewPolicy::Refuse,
        },
    }
}

fn good_jpeg() -> &'static [u8] {
    static J: OnceLock<Vec<u8>> = OnceLock::new();
    J.get_or_init(|| common::jpeg_frame(64, 48, 5))
}

/// `base` with up to 8 bytes overwritten, a cut, or bytes inserted.
fn mutated(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    prop_oneof![
        prop::collection::vec((0..len, any::<u8>()), 1..8).prop_map(move |edits| {
            let mut b = base.to_vec();
            for (at, v) in edits {
                b[at] = v;
            }
            b
        }),
        (0..len).prop_map(move |cut| base[..cut].to_vec()),
        (0..len, prop::collection::vec(any::<u8>(), 1..64)).prop_map(move |(at, ins)| {
            let mut b = base.to_vec();
            b.splice(at..at, ins);
            b
        }),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("2025-12-02T00:00:00Z")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("captured_at".to_string()),
                    Just("jpeg_base64".to_string()),
                    Just("occupied".to_string()),
                    Just("measured_at".to_string()),
                    Just("sensor".to_string()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn frame_payloads_never_panic(
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            mutated(good_jpeg()),
        ],
        props in prop::collection::vec((".{0,16}", ".{0,40}"), 0..3),
    ) {
        if let Err(e) = parse_frame("cam", &payload, &props, NOW, &limits()) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn sensor_payloads_never_panic(
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| v.to_string().into_bytes()),
        ],
    ) {
        match parse_sensor("loop-1", &payload, NOW, &limits()) {
            Ok(r) => prop_assert_eq!(r.sensor, "loop-1"),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// A JPEG header (dimensions) and a decode, on mutated real JPEGs and
    /// noise: an answer or an error, never a panic.
    #[test]
    fn jpeg_headers_and_decoding_never_panic(bytes in prop_oneof![
        mutated(good_jpeg()),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(|mut b| {
            b.splice(0..0, [0xFF, 0xD8, 0xFF]);
            b
        }),
    ]) {
        // What the scorer's decoder decodes, the header check has seen:
        // the pixel limit cannot be slipped past.
        let dims = firelane::vision::decode::jpeg_dimensions(&bytes);
        let mut buf = Vec::new();
        if let Ok((w, h)) = firelane::vision::decode::decode_jpeg_into(&bytes, &mut buf) {
            prop_assert_eq!(dims, Some((w, h)));
        }
        if let Ok(img) = firelane::vision::decode::decode_jpeg(&bytes) {
            prop_assert!(img.width() > 0 && img.height() > 0);
        }
    }

    /// Config text from a valid file with lines dropped, duplicated or
    /// mangled: a config or errors that name the file.
    #[test]
    fn config_toml_never_panics(
        edits in prop::collection::vec((0..40usize, 0..4u8, ".{0,12}"), 0..4),
    ) {
        let base = include_str!("../config/firelane.toml");
        let mut lines: Vec<String> = base.lines().map(String::from).collect();
        for (at, what, text) in edits {
            let at = at % lines.len().max(1);
            match what {
                0 => { lines.remove(at); }
                1 => { let l = lines[at].clone(); lines.insert(at, l); }
                2 => lines[at].push_str(&text),
                _ => lines[at] = text,
            }
        }
        if let Err(e) = firelane::config::Config::from_toml(&lines.join("\n"), "site.toml") {
            prop_assert!(e.to_string().contains("site.toml"), "{}", e);
        }
    }

    /// A zone as the editor's API writes it (any numbers, NaN and infinity
    /// included): the edited file validates, or the error names the zone.
    #[test]
    fn zone_edits_never_panic(
        polygon in prop::collection::vec(
            [prop_oneof![any::<f64>(), 0.0..1.0f64], prop_oneof![any::<f64>(), 0.0..1.0f64]],
            0..8,
        ),
        threshold in prop::option::of(any::<f64>()),
        grace_s in prop::option::of(any::<f64>()),
        camera in prop_oneof![Just("cam-1".to_string()), "[a-z0-9-]{0,8}"],
    ) {
        let base = include_str!("../config/firelane.toml");
        let zone = firelane::config::ZoneConfig {
            id: "prop-zone".into(),
            name: None,
            camera,
            polygon,
            threshold,
            grace_s,
            clear_s: None,
            site: None,
            sensors: Vec::new(),
            schedule: None,
        };
        let text = firelane::config::edit::upsert_zone(base, "site.toml", &zone);
        prop_assume!(text.is_ok());
        if let Err(e) = firelane::config::Config::from_toml(&text.unwrap(), "site.toml") {
            let e = e.to_string();
            prop_assert!(e.contains("prop-zone") || e.contains("site.toml"), "{}", e);
        }
    }
}

/// A real bundle of a violation recorded by the pipeline, and its key.
fn bundle() -> &'static (Vec<u8>, String) {
    static B: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    B.get_or_init(|| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let dir = tempfile::tempdir().unwrap().keep();
            let text = format!(
                "[storage]\ndata_dir = \"{}\"\n[tracking]\nsensor_weight = 10\ngrace_s = 0\n[[cameras]]\nid = \"cam\"\n[[zones]]\nid = \"lane\"\ncamera = \"cam\"\npolygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]\n[[sensors]]\nid = \"loop\"\nzone = \"lane\"\n",
                dir.display()
            );
            let config = firelane::config::Config::from_toml(&text, "b.toml").unwrap();
            let parts = firelane::runtime::assemble::assemble(&config, Default::default())
                .await
                .unwrap();
            let mut p = parts.pipeline;
            let t0 = 1_700_000_000_000;
            p.on_sensor(&firelane::base::input::SensorReading {
                sensor: "loop".into(),
                measured_at: t0,
                occupied: true,
            })
            .await
            .unwrap();
            for k in 0..2 {
                p.on_frame(firelane::base::input::Frame {
                    arrived: None,
                    camera: "cam".into(),
                    captured_at: t0 + k * 1000,
                    jpeg: Arc::new(common::jpeg_frame(320, 240, k as u32)),
                })
                .await
                .unwrap();
            }
            let v = parts.store.violations().await.unwrap();
            let key = firelane::evidence::signing::SiteKey::load_or_create(&config.storage.site_key).unwrap();
            let zip = firelane::evidence::bundle::export(&parts.store, &parts.evidence, &key, &v[0].id, t0)
                .await
                .unwrap();
            (zip, key.public_key_hex())
        })
    })
}

/// Every file in a ZIP as (name, bytes), or `None` when it cannot be read.
fn contents(zip: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).ok()?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).ok()?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).ok()?;
        let name = f.name().ok()?.to_string();
        out.push((name, bytes));
    }
    out.sort();
    Some(out)
}

fn bundle_bytes() -> &'static [u8] {
    &bundle().0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A mutated bundle either fails with problems named, or (a byte the
    /// ZIP does not use, like a timestamp) verifies and holds exactly the
    /// signed files.
    #[test]
    fn a_mutated_bundle_fails_or_holds_what_was_signed(zip in mutated(bundle_bytes())) {
        let (original, key) = bundle();
        let report = firelane::evidence::bundle::verify(&zip, Some(key));
        if report.problems.is_empty() {
            prop_assert_eq!(contents(&zip), contents(original));
        } else {
            prop_assert!(report.problems.iter().all(|p| !p.is_empty()));
        }
    }
}
