//! The benchmark through a real mosquitto: frames published over MQTT into
//! the daemon's ingest and engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::base::input::Frame;
use crate::runtime::engine::Engine;

use super::*;

/// Through a mosquitto it starts on a free loopback port.
pub async fn run_mqtt(
    opts: &BenchOptions,
    jpegs: &[Arc<Vec<u8>>],
    zones: &[Vec<[f64; 2]>],
) -> anyhow::Result<BenchRow> {
    let (mut broker, port) = broker(&opts.work_dir)?;
    let result = async {
        let config = Arc::new(bench_config(
            opts,
            zones,
            Some(format!("mqtt://127.0.0.1:{port}")),
        )?);
        let pipeline = pipeline_for(&config).await?;
        let shutdown = CancellationToken::new();
        let engine = Engine::start(pipeline, opts.workers, 64, None, shutdown.clone());
        let metrics = engine.metrics.clone();
        let slots = engine.frames.clone();
        let (client, eventloop) = crate::ingest::mqtt::connect(&config)?;
        let ingest = Arc::new(crate::ingest::mqtt::IngestMetrics::default());
        let stop = CancellationToken::new();
        let loop_task = tokio::spawn(crate::ingest::mqtt::run_event_loop(
            config.clone(),
            client.clone(),
            eventloop,
            crate::ingest::mqtt::Sinks {
                frames: engine.frames.clone(),
                readings: engine.readings.clone(),
                recorder: None,
            },
            None,
            ingest.clone(),
            stop.clone(),
        ));
        while !ingest.connected.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // subscriptions
        let publisher = cameras(port).await;
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let s2 = slots.clone();
        drive(
            opts,
            jpegs,
            in_flight(opts),
            Duration::from_micros(200),
            async || Ok(finished_in(&metrics, s2.dropped())),
            async |f: Frame| {
                // A lost publish shows as a frame never scored.
                let _ = publish(&publisher, f).await;
                Ok(())
            },
        )
        .await?;
        wait_done(&metrics, || slots.dropped(), opts.frames as u64).await;
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        stop.cancel();
        let _ = loop_task.await;
        shutdown.cancel();
        engine.finished().await;
        Ok(row(
            &format!("firelane via mosquitto, {} workers", opts.workers),
            &metrics,
            slots.dropped(),
            seconds,
            cpu,
        ))
    }
    .await;
    let _ = broker.kill();
    let _ = broker.wait();
    result
}

/// A loopback port no one listens on now.
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A mosquitto on a free loopback port, its config in `dir`; the port.
pub(super) fn broker(dir: &std::path::Path) -> anyhow::Result<(std::process::Child, u16)> {
    let port = free_port()?;
    let conf =
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 33554432\n");
    let child = super::broker::spawn_mosquitto(dir, &conf, &[port]).map_err(anyhow::Error::msg)?;
    Ok((child, port))
}

/// Publishes `frame` as a camera does: its JPEG on the camera's topic,
/// the capture time in a user property.
pub(super) async fn publish(
    publisher: &rumqttc::v5::AsyncClient,
    frame: Frame,
) -> Result<(), rumqttc::v5::ClientError> {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    let props = PublishProperties {
        user_properties: vec![(
            "captured_at".into(),
            crate::base::time::format_rfc3339(frame.captured_at),
        )],
        ..Default::default()
    };
    publisher
        .publish_with_properties(
            format!("bench/cameras/{}/frame", frame.camera),
            QoS::AtMostOnce,
            false,
            frame.jpeg.to_vec(),
            props,
        )
        .await
}

/// The cameras' MQTT client on the broker at `port`, connected.
pub(super) async fn cameras(port: u16) -> rumqttc::v5::AsyncClient {
    let mut popts = rumqttc::v5::MqttOptions::new(
        format!("bench-camera-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    popts.set_max_packet_size(Some(32 * 1024 * 1024));
    let (publisher, mut pl) = rumqttc::v5::AsyncClient::new(popts, 64);
    tokio::spawn(async move {
        loop {
            if pl.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    publisher
}
