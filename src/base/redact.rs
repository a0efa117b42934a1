//! The one redactor: what of a URL or an error text may be shown, stored
//! or logged. A webhook URL often carries its key in the path (Slack,
//! Teams: `/services/T000/B000/XXXX`) or the query (`?token=`), a database
//! URL its password in the userinfo or in `?password=`, an SMTP URL its
//! login. Redacted: the userinfo password, every query value, and path
//! segments that look like keys (long, or mixing letters and digits). The
//! scheme, host, port and the plain words of the path stay, so a person can
//! still tell which target is meant.

pub const REDACTED: &str = "(redacted)";

/// Whether a path segment looks like a key rather than a word.
fn secret_segment(seg: &str) -> bool {
    let letters = seg.chars().filter(|c| c.is_ascii_alphabetic()).count();
    let digits = seg.chars().filter(|c| c.is_ascii_digit()).count();
    seg.len() >= 24 || (seg.len() >= 8 && letters > 0 && digits > 0)
}

/// `url` with its secrets replaced; text that is not a URL with a host is
/// returned as it is (nothing in it looks like a credential to remove).
pub fn url(text: &str) -> String {
    let Ok(mut u) = url::Url::parse(text) else {
        return text.to_string();
    };
    if u.cannot_be_a_base() {
        return text.to_string();
    }
    if u.password().is_some() {
        let _ = u.set_password(Some(REDACTED));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, _)| (k.into_owned(), REDACTED.to_string()))
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let path: Vec<String> = u
        .path_segments()
        .map(|segs| {
            segs.map(|s| {
                if secret_segment(s) {
                    REDACTED.to_string()
                } else {
                    s.to_string()
                }
            })
            .collect()
        })
        .unwrap_or_default();
    if !path.is_empty() {
        u.set_path(&path.join("/"));
    }
    // `(redacted)` is percent-encoded in a query and a path; show it plainly.
    u.to_string()
        .replace("%28redacted%29", REDACTED)
        .replace("(redacted)", REDACTED)
}

/// Free text (an error message, a log line) with every URL in it redacted.
pub fn text(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .unwrap_or(tail.len());
        // A trailing colon or comma belongs to the sentence, not the URL.
        let end = tail[..end].trim_end_matches([':', ',', '.', ';']).len();
        out.push_str(&url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn find_url(s: &str) -> Option<usize> {
    let i = s.find("://")?;
    let start = s[..i]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .map_or(0, |p| p + 1);
    if start == i {
        // "://" with no scheme before it: skip past it.
        return find_url(&s[i + 3..]).map(|j| j + i + 3);
    }
    Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets_and_keep_their_place() {
        let table = [
            (
                "postgres://app:hunter2@db.internal:5432/firelane",
                "postgres://app:(redacted)@db.internal:5432/firelane",
            ),
            (
                "postgres://db.internal/firelane?user=app&password=hunter2",
                "postgres://db.internal/firelane?user=(redacted)&password=(redacted)",
            ),
            (
                "smtps://alerts:s3cret@mail.example.com:465",
                "smtps://alerts:(redacted)@mail.example.com:465",
            ),
            (
                "https://hooks.slack.com/services/T0001/B0002/abcdEFGHijklMNOPqrstUVWX",
                "https://hooks.slack.com/services/T0001/B0002/(redacted)",
            ),
            (
                "https://example.com/hook?token=abc123",
                "https://example.com/hook?token=(redacted)",
            ),
            (
                "https://example.com/api/alerts/1a2b3c4d5e",
                "https://example.com/api/alerts/(redacted)",
            ),
            ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
            ("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"),
            ("not a url", "not a url"),
        ];
        for (given, want) in table {
            assert_eq!(url(given), want, "{given}");
        }
    }

    #[test]
    fn urls_inside_text_are_redacted() {
        let got = text(
            "POST https://example.com/hook?key=abc: error sending request for url (https://example.com/hook?key=abc)",
        );
        assert_eq!(
            got,
            "POST https://example.com/hook?key=(redacted): error sending request for url (https://example.com/hook?key=(redacted))"
        );
        assert_eq!(
            text("database postgres://u:pw@h/db: connection refused"),
            "database postgres://u:(redacted)@h/db: connection refused"
        );
        assert_eq!(text("nothing here"), "nothing here");
    }
}
