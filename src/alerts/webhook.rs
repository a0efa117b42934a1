//! Webhook delivery: a JSON POST signed with HMAC-SHA256.
//!
//! Headers: `X-Firelane-Event` (`new`/`update`/`end`),
//! `X-Firelane-Delivery` (the alert's stable key: a receiver can drop a
//! repeat), `X-Firelane-Timestamp` (unix seconds) and
//! `X-Firelane-Signature: sha256=<hex>` over `<timestamp>.<body>` with the
//! webhook's secret, so a receiver can check origin and freshness.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::base::redact;

pub const SIGNATURE_HEADER: &str = "x-firelane-signature";
pub const TIMESTAMP_HEADER: &str = "x-firelane-timestamp";

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("firelane/", env!("CARGO_PKG_VERSION")))
        // A receiver must not bounce the signed alert elsewhere (a loopback
        // or metadata address): a redirect is a failed delivery.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client builds")
}

/// POSTs one alert; Ok on any 2xx.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    event: &str,
    delivery: &str,
    body: &str,
    now_unix_s: i64,
) -> Result<(), String> {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-firelane-event", event)
        .header("x-firelane-delivery", delivery)
        .header(TIMESTAMP_HEADER, now_unix_s.to_string());
    if let Some(secret) = secret {
        req = req.header(
            SIGNATURE_HEADER,
            signature(secret, now_unix_s, body.as_bytes()),
        );
    }
    let res = req
        .body(body.to_string())
        .send()
        .await
        // The error is stored (`last_error`) and logged: the URL, which
        // may carry the receiver's key, only redacted, and only once.
        .map_err(|e| format!("POST {}: {}", redact::url(url), e.without_url()))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {}: HTTP {}", redact::url(url), res.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_reference_hmac() {
        // RFC 4231 test case 2 (key "Jefe") over "what do ya want for nothing?"
        // is for the raw message; here the message is "<ts>.<body>".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let s = signature("Jefe", 1, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1.{}");
        assert_eq!(
            s,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
    }

    /// A receiver answering 307 towards another address: the signed POST
    /// is not followed there, the delivery fails, and its error (stored as
    /// `last_error`, logged) shows the URL without its key.
    #[tokio::test]
    async fn redirects_are_not_followed_and_errors_hide_the_key() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let followed = Arc::new(AtomicUsize::new(0));
        let f = followed.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(|| async {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [(axum::http::header::LOCATION, "/elsewhere")],
                    )
                }),
            )
            .route(
                "/elsewhere",
                axum::routing::post(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    async { "ok" }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let url = format!("http://127.0.0.1:{port}/hook?token=k3y-s3cret");
        let err = deliver(&client(), &url, Some("s"), "new", "d-1", "{}", 1)
            .await
            .unwrap_err();
        assert!(err.contains("307"), "{err}");
        assert_eq!(
            followed.load(Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
        assert!(
            !err.contains("k3y-s3cret") && err.contains("token=(redacted)"),
            "{err}"
        );
        // A connection error too: the URL shown once, redacted.
        let closed = "http://127.0.0.1:1/hook?token=k3y-s3cret";
        let err = deliver(&client(), closed, None, "new", "d-2", "{}", 1)
            .await
            .unwrap_err();
        assert!(!err.contains("k3y-s3cret"), "{err}");
        assert_eq!(err.matches("127.0.0.1:1").count(), 1, "{err}");
    }
}
