//! Email alerts over SMTP (lettre, rustls), with the annotated evidence
//! frame attached.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{ViolationEventKind, ViolationMessage};
use crate::base::time::format_rfc3339;

pub type Mailer = AsyncSmtpTransport<Tokio1Executor>;

pub fn mailer(url: &str) -> Result<Mailer, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| format!("smtp_url {}: {e}", crate::base::redact::url(url)))?
        .timeout(Some(Duration::from_secs(20)))
        .build())
}

pub fn subject(msg: &ViolationMessage) -> String {
    let v = &msg.violation;
    match msg.event {
        ViolationEventKind::New => format!("Fire lane blocked: {} ({})", v.zone, msg.site.name),
        ViolationEventKind::Update => format!(
            "Fire lane still blocked: {} ({}), {} min",
            v.zone,
            msg.site.name,
            (v.duration_s / 60.0).round()
        ),
        ViolationEventKind::End => format!("Fire lane clear: {} ({})", v.zone, msg.site.name),
    }
}

pub fn body(msg: &ViolationMessage) -> String {
    let v = &msg.violation;
    let mut text = format!(
        "{}\n\nSite: {}\nZone: {} (camera {})\nBlocked since: {}\nConfirmed: {}\n",
        subject(msg),
        msg.site.name,
        v.zone,
        v.camera,
        format_rfc3339(v.start),
        format_rfc3339(v.confirmed_at),
    );
    if let Some(c) = v.cleared {
        text.push_str(&format!("Clear since: {}\n", format_rfc3339(c)));
    }
    text.push_str(&format!(
        "Duration: {:.0} min\nPeak score: {:.2}\nViolation: {}\n",
        v.duration_s / 60.0,
        v.peak_score,
        v.id
    ));
    text
}

/// Sends one alert to `to`, attaching `frame` (annotated JPEG) if any.
/// Its Message-ID derives from the alert's stable key (`delivery`), so a
/// repeat after a crash is the same message to mail clients.
pub async fn deliver(
    mailer: &Mailer,
    from: &str,
    to: &str,
    msg: &ViolationMessage,
    delivery: &str,
    frame: Option<Vec<u8>>,
) -> Result<(), String> {
    let from: Mailbox = from.parse().map_err(|e| format!("email_from: {e}"))?;
    let to: Mailbox = to.parse().map_err(|e| format!("{to}: {e}"))?;
    let text = SinglePart::plain(body(msg));
    let content = match frame {
        Some(jpeg) => MultiPart::mixed().singlepart(text).singlepart(
            Attachment::new(format!("{}.jpg", msg.violation.id))
                .body(jpeg, ContentType::parse("image/jpeg").expect("valid type")),
        ),
        None => MultiPart::mixed().singlepart(text),
    };
    let email = Message::builder()
        .from(from)
        .to(to.clone())
        .subject(subject(msg))
        .message_id(Some(format!(
            "<{}@firelane>",
            delivery.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', ".")
        )))
        .multipart(content)
        .map_err(|e| format!("building the email: {e}"))?;
    mailer
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP to {to}: {e}"))
}
