//! [`ApiError`]: everything a call to the HTTP API can fail with.
//!
//! Three families, told apart because a user does something different about each:
//!
//! | variant | meaning | what the user does |
//! |---|---|---|
//! | [`ApiError::Connect`] | nobody answered at the address | start an agent, fix `-address` / `NOMAD_ADDR` |
//! | [`ApiError::Status`] | the agent answered with a non-2xx status | read the agent's message (`job not found`) |
//! | [`ApiError::Decode`] | the agent answered 2xx with a body we cannot read | report a bug / version mismatch |
//!
//! [`ApiError::Transport`] covers the rest of the network (a connection reset halfway, a
//! timeout), and [`ApiError::InvalidAddress`] an address that is not a URL at all.
//!
//! The `Display` texts follow Nomad's CLI: a failed status renders as
//! `Unexpected response code: 404 (job not found)`, and a connection failure names the
//! method and URL like Go's `net/http` does (`Get "http://127.0.0.1:4646/v1/jobs": …`), followed
//! by what to do about it.

use std::fmt;

/// An HTTP method as Go's `net/http` prints it in errors (`Get`, `Put`, `Delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GET`
    Get,
    /// `PUT`
    Put,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
}

impl Verb {
    /// The method for the wire.
    pub fn method(self) -> reqwest::Method {
        match self {
            Verb::Get => reqwest::Method::GET,
            Verb::Put => reqwest::Method::PUT,
            Verb::Post => reqwest::Method::POST,
            Verb::Delete => reqwest::Method::DELETE,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Get => "Get",
            Verb::Put => "Put",
            Verb::Post => "Post",
            Verb::Delete => "Delete",
        })
    }
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The address is not something we can send HTTP requests to.
    #[error("invalid agent address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No agent answered: connection refused, unknown host, unreachable network.
    #[error(
        "{verb} \"{url}\": {reason} (is a Drover agent running at {address}? Start one with \
         `drover agent -dev`, or point -address or NOMAD_ADDR at a running agent)"
    )]
    Connect {
        /// Method of the failed request.
        verb: Verb,
        /// Full URL of the failed request.
        url: String,
        /// The agent address the client was configured with.
        address: String,
        /// The lowest-level reason, e.g. `connection refused`.
        reason: String,
    },
    /// The connection worked but the exchange did not complete (reset, timeout, bad body).
    #[error("{verb} \"{url}\": {reason}")]
    Transport {
        /// Method of the failed request.
        verb: Verb,
        /// Full URL of the failed request.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The agent answered with a non-success status; `body` is its (plain-text) message.
    #[error("Unexpected response code: {code} ({body})")]
    Status {
        /// HTTP status code.
        code: u16,
        /// The response body, trimmed (Nomad sends plain text such as `job not found`).
        body: String,
    },
    /// A success response whose body is not what the endpoint should return.
    #[error("failed to decode {what}: {message}")]
    Decode {
        /// What was being decoded (`job`, `evaluation`, ...).
        what: String,
        /// The decoder's message, with the JSON path of the problem when known.
        message: String,
    },
}

impl ApiError {
    /// The HTTP status of a [`ApiError::Status`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for a 404 (`job not found`, `eval not found`, ...).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when no agent could be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, ApiError::Connect { .. })
    }

    /// The agent's message of a status error (`job not found`), else the full text.
    pub fn message(&self) -> String {
        match self {
            ApiError::Status { body, .. } => body.clone(),
            other => other.to_string(),
        }
    }
}

/// The most specific reason inside a reqwest error chain, worded like Go's dialer where we can
/// (`connection refused`) and otherwise the innermost error's own text.
pub(crate) fn root_reason(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost: &(dyn std::error::Error + 'static) = err;
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            let worded = match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused"),
                ErrorKind::ConnectionReset => Some("connection reset by peer"),
                ErrorKind::TimedOut => Some("connection timed out"),
                ErrorKind::HostUnreachable => Some("no route to host"),
                ErrorKind::NetworkUnreachable => Some("network is unreachable"),
                _ => None,
            };
            if let Some(w) = worded {
                return w.to_string();
            }
        }
        innermost = e;
        current = e.source();
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_reads_like_nomad() {
        let e = ApiError::Status {
            code: 404,
            body: "job not found".into(),
        };
        assert_eq!(e.to_string(), "Unexpected response code: 404 (job not found)");
        assert!(e.is_not_found());
        assert_eq!(e.message(), "job not found");
    }

    #[test]
    fn connect_error_names_the_address_and_the_fix() {
        let e = ApiError::Connect {
            verb: Verb::Get,
            url: "http://127.0.0.1:4646/v1/jobs".into(),
            address: "http://127.0.0.1:4646".into(),
            reason: "connection refused".into(),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("Get \"http://127.0.0.1:4646/v1/jobs\": connection refused"),
            "{s}"
        );
        assert!(s.contains("drover agent -dev"), "{s}");
        assert!(s.contains("NOMAD_ADDR"), "{s}");
        assert!(e.is_connect());
    }

    #[test]
    fn root_reason_words_refused_connections_like_go() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(root_reason(&e), "connection refused");
        let other = Outer(std::io::Error::other("dns error: no such host"));
        assert_eq!(root_reason(&other), "dns error: no such host");
    }
}
