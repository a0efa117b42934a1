//! Logging in to a pulled camera: HTTP Basic, or Digest (RFC 7616, as
//! Hikvision, Dahua and Axis use) through the `digest_auth` crate.
//!
//! The challenge of a 401 is kept and answered on every later request (the
//! nonce count advances), so a healthy camera costs one request per frame,
//! not two; a 401 to a kept answer (stale nonce) takes the new challenge.

use base64::Engine;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

use crate::config::Login;

/// What a camera asked for in its `WWW-Authenticate` headers.
#[derive(Debug)]
pub enum Challenge {
    Basic,
    Digest(Box<digest_auth::WwwAuthenticateHeader>),
}

impl Challenge {
    /// Digest when offered (it never sends the password), else Basic.
    pub fn from_headers(headers: &HeaderMap) -> Result<Challenge, String> {
        let offers: Vec<&str> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        let scheme = |v: &str| {
            v.split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        };
        if let Some(d) = offers.iter().find(|v| scheme(v) == "digest") {
            // The crate expects the scheme spelled `Digest`.
            let params = d.get("digest".len()..).unwrap_or("");
            return digest_auth::parse(&format!("Digest {params}"))
                .map(|h| Challenge::Digest(Box::new(h)))
                .map_err(|e| format!("{e}"));
        }
        if offers.iter().any(|v| scheme(v) == "basic") {
            return Ok(Challenge::Basic);
        }
        match offers.first() {
            None => Err("HTTP 401 without a WWW-Authenticate header".into()),
            Some(v) => Err(format!(
                "unsupported scheme `{}` (Basic and Digest are)",
                scheme(v)
            )),
        }
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            Challenge::Basic => "Basic",
            Challenge::Digest(_) => "Digest",
        }
    }
}

/// The challenge being answered, if any.
#[derive(Debug, Default)]
pub struct LoginState {
    current: Option<(Challenge, Login)>,
}

impl LoginState {
    pub fn accept(&mut self, challenge: Challenge, login: &Login) {
        self.current = Some((challenge, login.clone()));
    }

    /// The `Authorization` value for a GET of `url`, once challenged.
    pub fn authorization(&mut self, url: &url::Url) -> Option<String> {
        let (challenge, login) = self.current.as_mut()?;
        match challenge {
            Challenge::Basic => {
                let pair = format!("{}:{}", login.username, login.password);
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            Challenge::Digest(h) => {
                let uri = &url[url::Position::BeforePath..];
                let ctx = digest_auth::AuthContext::new(
                    login.username.as_str(),
                    login.password.as_str(),
                    uri,
                );
                h.respond(&ctx).ok().map(|a| a.to_header_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(WWW_AUTHENTICATE, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn picks_digest_then_basic_and_names_the_rest() {
        let table: [(&[&str], Result<&str, &str>); 5] = [
            (
                &[
                    "Basic realm=\"cam\"",
                    "Digest realm=\"cam\", qop=\"auth\", nonce=\"abc\"",
                ],
                Ok("Digest"),
            ),
            (&["digest realm=\"cam\", nonce=\"abc\""], Ok("Digest")),
            (&["Basic realm=\"cam\""], Ok("Basic")),
            (&["Bearer realm=\"x\""], Err("unsupported scheme `bearer`")),
            (&[], Err("without a WWW-Authenticate")),
        ];
        for (offers, want) in table {
            let got = Challenge::from_headers(&headers(offers));
            match (got, want) {
                (Ok(c), Ok(s)) => assert_eq!(c.scheme(), s, "{offers:?}"),
                (Err(e), Err(s)) => assert!(e.contains(s), "{offers:?}: {e}"),
                (got, want) => panic!("{offers:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn digest_answers_count_up_on_one_nonce() {
        let login = Login {
            username: "admin".into(),
            password: "pw".into(),
        };
        let mut state = LoginState::default();
        let url = url::Url::parse("http://cam/ISAPI/picture?channel=1").unwrap();
        assert_eq!(state.authorization(&url), None);
        let c = Challenge::from_headers(&headers(&[
            "Digest realm=\"cam\", qop=\"auth\", nonce=\"n1\"",
        ]))
        .unwrap();
        state.accept(c, &login);
        let first = state.authorization(&url).unwrap();
        let second = state.authorization(&url).unwrap();
        assert!(
            first.contains("uri=\"/ISAPI/picture?channel=1\""),
            "{first}"
        );
        assert!(first.contains("nc=00000001") && second.contains("nc=00000002"));
        assert!(!first.contains("pw"));
    }
}
