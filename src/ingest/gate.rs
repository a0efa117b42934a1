//! The embedded broker's front door. rumqttd has neither per-user topic
//! rights nor a hook for them, so it listens on loopback ports nobody else
//! is told about, and every outside connection comes through this gate,
//! plain or TLS (rustls):
//!
//! - CONNECT: the login is checked against `[[mqtt.embedded_broker.users]]`
//!   (Argon2id); without users configured (loopback only) anyone may
//!   connect. A refused login gets CONNACK "not authorized".
//! - Each client packet is parsed: a PUBLISH (and a CONNECT's will) must be
//!   to a topic the user may publish — its cameras' frame topics and its
//!   sensors' topics, nothing under firelane's outputs — and a SUBSCRIBE
//!   only to filters within its `subscribe` rights. Anything else closes
//!   the connection, logged with the user and the topic. MQTT 5 topic
//!   aliases are refused (a publish must name its topic).
//! - The broker's packets go back to the client untouched.
//!
//! firelane's own clients connect to rumqttd directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::mqtt::IngestMetrics;
use crate::config::Config;

/// What one login may do.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub user: String,
    /// Exact topics (frame and sensor topics).
    pub publish: Vec<String>,
    /// Filters a subscription must stay within.
    pub subscribe: Vec<String>,
}

impl Access {
    fn everything() -> Access {
        Access {
            user: "(anonymous)".into(),
            publish: vec!["#".into()],
            subscribe: vec!["#".into()],
        }
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        rumqttc::valid_topic(topic) && self.publish.iter().any(|f| rumqttc::matches(topic, f))
    }

    pub fn may_subscribe(&self, filter: &str) -> bool {
        rumqttc::valid_filter(filter) && self.subscribe.iter().any(|f| covers(f, filter))
    }
}

/// Whether every topic `inner` matches is matched by `outer`.
pub fn covers(outer: &str, inner: &str) -> bool {
    let (mut o, mut i) = (outer.split('/'), inner.split('/'));
    loop {
        match (o.next(), i.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b && b != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Who may log in, from the configuration.
pub struct Rights {
    users: Vec<(String, String, Access)>,
}

impl Rights {
    pub fn of(config: &Config) -> Rights {
        let Some(b) = &config.mqtt.embedded_broker else {
            return Rights { users: Vec::new() };
        };
        let topic_of_camera = |id: &str| {
            config
                .cameras
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.topic.clone())
        };
        let topic_of_sensor = |id: &str| {
            config
                .sensors
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.topic.clone())
        };
        let users = b
            .users
            .iter()
            .map(|u| {
                let publish = u
                    .cameras
                    .iter()
                    .filter_map(|c| topic_of_camera(c))
                    .chain(u.sensors.iter().filter_map(|s| topic_of_sensor(s)))
                    .collect();
                let access = Access {
                    user: u.name.clone(),
                    publish,
                    subscribe: u.subscribe.clone(),
                };
                (u.name.clone(), u.password_hash.clone(), access)
            })
            .collect();
        Rights { users }
    }

    /// The access of a login; `None` when refused.
    pub fn login(&self, username: Option<&str>, password: Option<&[u8]>) -> Option<Access> {
        if self.users.is_empty() {
            return Some(Access::everything());
        }
        let (name, password) = (username?, password?);
        let (_, hash, access) = self.users.iter().find(|(n, _, _)| n == name)?;
        let hash = PasswordHash::new(hash).ok()?;
        argon2::Argon2::default()
            .verify_password(password, &hash)
            .ok()
            .map(|_| access.clone())
    }
}

#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("no CONNECT within 10 s")]
    Slow,
    #[error("login refused")]
    Login,
    #[error("{0}")]
    Denied(String),
}

/// The gate in front of rumqttd's hidden ports.
pub struct Gate {
    pub rights: Rights,
    pub upstream_v4: SocketAddr,
    pub upstream_v5: SocketAddr,
    pub max_packet: usize,
    pub metrics: Arc<IngestMetrics>,
}

impl Gate {
    /// Accepts connections on `listener` (through `tls` when given) for
    /// as long as the process runs.
    pub async fn serve(
        self: Arc<Gate>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        loop {
            let Ok((sock, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let gate = self.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let result = match tls {
                    Some(acceptor) => match acceptor.accept(sock).await {
                        Ok(s) => gate.session(s).await,
                        Err(e) => Err(Closed::Io(e)),
                    },
                    None => gate.session(sock).await,
                };
                match result {
                    Ok(()) | Err(Closed::Io(_)) => {}
                    Err(e) => {
                        gate.metrics.broker_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, reason = %e, "embedded broker: connection refused");
                    }
                }
            });
        }
    }

    async fn session<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        client: S,
    ) -> Result<(), Closed> {
        let (mut cr, mut cw) = tokio::io::split(client);
        let mut buf = BytesMut::with_capacity(4096);
        let connect = tokio::time::timeout(
            Duration::from_secs(10),
            frame(&mut cr, &mut buf, self.max_packet),
        )
        .await
        .map_err(|_| Closed::Slow)??
        .ok_or(Closed::Slow)?;
        let hello = parse_connect(&connect, self.max_packet)?;
        let access = self
            .rights
            .login(hello.username.as_deref(), hello.password.as_deref());
        let access = match access {
            Some(a) if hello.will.as_deref().is_none_or(|t| a.may_publish(t)) => a,
            refused => {
                cw.write_all(&connack_not_authorized(hello.v5)).await?;
                let _ = cw.shutdown().await;
                return Err(match refused {
                    None => Closed::Login,
                    Some(a) => Closed::Denied(format!(
                        "user {} may not set a will on {}",
                        a.user,
                        hello.will.unwrap_or_default()
                    )),
                });
            }
        };
        let upstream = TcpStream::connect(if hello.v5 {
            self.upstream_v5
        } else {
            self.upstream_v4
        })
        .await?;
        let (mut ur, mut uw) = upstream.into_split();
        uw.write_all(&connect).await?;
        let down = tokio::io::copy(&mut ur, &mut cw);
        let up = async {
            loop {
                let Some(packet) = frame(&mut cr, &mut buf, self.max_packet).await? else {
                    return Ok(());
                };
                check(&packet, hello.v5, &access, self.max_packet).map_err(|e| {
                    Closed::Denied(format!(
                        "user {} (client {}): {e}",
                        access.user, hello.client_id
                    ))
                })?;
                uw.write_all(&packet).await?;
            }
        };
        tokio::select! {
            r = down => { r?; Ok(()) }
            r = up => r,
        }
    }
}

/// Reads one whole MQTT packet; `None` at a clean end of stream.
async fn frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Bytes>, Closed> {
    loop {
        match rumqttc::mqttbytes::check(buf.iter(), max) {
            Ok(h) => return Ok(Some(buf.split_to(h.frame_length()).freeze())),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            // AUTH (type 15) included: firelane offers no extended auth.
            Err(e) => return Err(Closed::Malformed(e.to_string())),
        }
        if r.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(Closed::Malformed("connection ended inside a packet".into()))
            };
        }
    }
}

struct Hello {
    v5: bool,
    client_id: String,
    username: Option<String>,
    password: Option<Vec<u8>>,
    will: Option<String>,
}

fn malformed(e: impl std::fmt::Display) -> Closed {
    Closed::Malformed(e.to_string())
}

fn parse_connect(raw: &[u8], max: usize) -> Result<Hello, Closed> {
    // Fixed header, then the protocol name (length-prefixed) and level.
    let mut at = 1;
    while raw.get(at).is_some_and(|b| b & 0x80 != 0) {
        at += 1;
    }
    at += 1;
    let name_len = raw
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or_else(|| malformed("short CONNECT"))?;
    let level = *raw
        .get(at + 2 + name_len)
        .ok_or_else(|| malformed("short CONNECT"))?;
    let mut bytes = BytesMut::from(raw);
    match level {
        4 => match v4::Packet::read(&mut bytes, max).map_err(malformed)? {
            v4::Packet::Connect(c) => Ok(Hello {
                v5: false,
                client_id: c.client_id,
                username: c.login.as_ref().map(|l| l.username.clone()),
                password: c.login.map(|l| l.password.into_bytes()),
                will: c.last_will.map(|w| w.topic),
            }),
            _ => Err(malformed("the first packet must be CONNECT")),
        },
        5 => match v5::Packet::read(&mut bytes, Some(max as u32)).map_err(malformed)? {
            v5::Packet::Connect(c, will, login) => Ok(Hello {
                v5: true,
                client_id: c.client_id,
                username: login.as_ref().map(|l| l.username.clone()),
                password: login.map(|l| l.password.into_bytes()),
                will: will.map(|w| String::from_utf8_lossy(&w.topic).into_owned()),
            }),
            _ => Err(malformed("the first packet must be CONNECT")),
        },
        other => Err(malformed(format!(
            "MQTT protocol level {other} (3.1.1 and 5 are served)"
        ))),
    }
}

/// Whether a client packet after CONNECT may pass.
fn check(raw: &Bytes, is_v5: bool, access: &Access, max: usize) -> Result<(), String> {
    let mut bytes = BytesMut::from(&raw[..]);
    let (publish, subscribe): (Option<String>, Vec<String>) = if is_v5 {
        match v5::Packet::read(&mut bytes, Some(max as u32)).map_err(|e| e.to_string())? {
            v5::Packet::Publish(p) => {
                if p.properties
                    .as_ref()
                    .is_some_and(|pp| pp.topic_alias.is_some())
                {
                    return Err("topic aliases are not accepted".into());
                }
                (
                    Some(String::from_utf8_lossy(&p.topic).into_owned()),
                    Vec::new(),
                )
            }
            v5::Packet::Subscribe(s) => (None, s.filters.into_iter().map(|f| f.path).collect()),
            v5::Packet::Connect(..) => return Err("a second CONNECT".into()),
            _ => (None, Vec::new()),
        }
    } else {
        match v4::Packet::read(&mut bytes, max).map_err(|e| e.to_string())? {
            v4::Packet::Publish(p) => (Some(p.topic), Vec::new()),
            v4::Packet::Subscribe(s) => (None, s.filters.into_iter().map(|f| f.path).collect()),
            v4::Packet::Connect(..) => return Err("a second CONNECT".into()),
            _ => (None, Vec::new()),
        }
    };
    if let Some(topic) = publish
        && !access.may_publish(&topic)
    {
        return Err(format!("may not publish to {topic}"));
    }
    if let Some(f) = subscribe.iter().find(|f| !access.may_subscribe(f)) {
        return Err(format!("may not subscribe to {f}"));
    }
    Ok(())
}

/// CONNACK "not authorized" (3.1.1 return code 5, MQTT 5 reason 0x87).
fn connack_not_authorized(is_v5: bool) -> Vec<u8> {
    if is_v5 {
        vec![0x20, 0x03, 0x00, 0x87, 0x00]
    } else {
        vec![0x20, 0x02, 0x00, 0x05]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_covers_what_it_would_match() {
        let table = [
            ("#", "site/violations", true),
            ("site/#", "site/zones/+/state", true),
            ("site/#", "site/#", true),
            ("site/+/state", "site/z1/state", true),
            ("site/+/state", "site/+/state", true),
            ("site/+/state", "site/#", false),
            ("site/zones/+/state", "site/zones/#", false),
            ("site/zones/z1/state", "site/zones/+/state", false),
            ("site/violations", "site/violations", true),
            ("site/violations", "site/violations/x", false),
            ("homeassistant/#", "site/violations", false),
        ];
        for (outer, inner, want) in table {
            assert_eq!(covers(outer, inner), want, "{outer} ⊇ {inner}");
        }
    }

    #[test]
    fn users_publish_only_their_own_topics() {
        let cam = Access {
            user: "cam1".into(),
            publish: vec!["site/cameras/cam1/frame".into()],
            subscribe: vec![],
        };
        assert!(cam.may_publish("site/cameras/cam1/frame"));
        assert!(!cam.may_publish("site/cameras/cam2/frame"));
        assert!(!cam.may_publish("site/violations"));
        assert!(!cam.may_publish("site/cameras/+/frame"), "not a topic");
        assert!(!cam.may_subscribe("site/#"));
        let ha = Access {
            user: "ha".into(),
            publish: vec![],
            subscribe: vec!["site/#".into(), "homeassistant/#".into()],
        };
        assert!(ha.may_subscribe("site/zones/+/state"));
        assert!(!ha.may_subscribe("#"));
        assert!(!ha.may_publish("site/available"));
    }
}
