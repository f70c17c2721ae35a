//! `pods/log` on the node: checking the log options, finding the node's server from its Node object, and streaming
//! the node's reply back, with kube-apiserver's errors when the node says no or cannot be reached.
//!
//! The log options are validated here (`ValidatePodLogOptions`), before the Pod is read, as kube-apiserver does;
//! the node's `containerLogs` endpoint gets them re-encoded as kube-apiserver sends them. A reply outside 2xx
//! becomes the Status `GenericHttpResponseChecker` makes of it (400 → BadRequest with the node's text, which
//! kubectl prints as `Error from server (BadRequest): <text>`), and a node that cannot be dialled the plain 500 Go's
//! HTTP client error gives (`Get "https://…": dial tcp …: connect: connection refused`).
//!
//! Security: nodes are reached over TLS only, trusting the cluster CA alone, and the API server proves itself with
//! its kubelet-client certificate (group `system:masters`). Only the Node object decides where a Pod's logs are
//! fetched from; nothing in the request names a host.

use axum::body::Body;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use peapod_api::errors::{quote, FieldError};
use peapod_api::ApiError;
use peapod_client::{Client, ClientError, Config};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The kubelet's port when the Node does not publish one (`ports.KubeletPort`).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;
/// How long dialling a node may take (kube-apiserver's kubelet client dials with a 30 s timeout).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error reply is read (`maxReadLength` in kube-apiserver's `GenericHttpResponseChecker`).
const MAX_ERROR_BODY: usize = 50_000;
/// The order addresses are tried in (kubeadm's `--kubelet-preferred-address-types`).
const ADDRESS_PREFERENCE: &[&str] = &["InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS", "Hostname"];
/// Go's `time.RFC3339` layout, named in `sinceTime` parse errors.
const RFC3339_LAYOUT: &str = "2006-01-02T15:04:05Z07:00";

/// The options of a `pods/log` request (`PodLogOptions` without `container`, which the caller resolves).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodLogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<jiff::Timestamp>,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
}

/// apimachinery's query boolean: anything but `0` and `false` (any case) is true, an empty value included.
fn parse_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

/// apimachinery's query integer, with Go's `strconv` error text.
fn parse_int(v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        ApiError::bad_request(format!("strconv.ParseInt: parsing {}: {why}", quote(v)))
    })
}

impl PodLogOptions {
    /// Decodes the options from a request's query (`get` gives the first value of a key). A value that does not
    /// convert is 400 BadRequest, as kube-apiserver's parameter decoding answers.
    pub fn from_query<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ApiError> {
        let int = |k: &str| get(k).map(parse_int).transpose();
        let since_time = match get("sinceTime") {
            // metav1.Time reads an empty value as no time.
            None | Some("") => None,
            Some(s) => Some(s.parse::<jiff::Timestamp>().map_err(|e| {
                ApiError::bad_request(format!("parsing time {} as {}: {e}", quote(s), quote(RFC3339_LAYOUT)))
            })?),
        };
        Ok(Self {
            follow: get("follow").is_some_and(parse_bool),
            previous: get("previous").is_some_and(parse_bool),
            timestamps: get("timestamps").is_some_and(parse_bool),
            since_seconds: int("sinceSeconds")?,
            since_time,
            tail_lines: int("tailLines")?,
            limit_bytes: int("limitBytes")?,
        })
    }

    /// `ValidatePodLogOptions`: 422 `PodLogOptions "<pod>" is invalid: …`.
    pub fn validate(&self, pod: &str) -> Result<(), ApiError> {
        let mut errs = Vec::new();
        if let Some(t) = self.tail_lines.filter(|t| *t < 0) {
            errs.push(FieldError::invalid(
                "tailLines",
                t.to_string(),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(l) = self.limit_bytes.filter(|l| *l < 1) {
            errs.push(FieldError::invalid(
                "limitBytes",
                l.to_string(),
                "must be greater than 0",
            ));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(s), None) if s < 1 => errs.push(FieldError::invalid(
                "sinceSeconds",
                s.to_string(),
                "must be greater than 0",
            )),
            _ => {}
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid("", "PodLogOptions", pod, &errs))
        }
    }

    /// The query for the node's `containerLogs`, as kube-apiserver writes it (`url.Values.Encode`: keys sorted;
    /// `sinceTime` in RFC 3339 to the second). Empty when no option is set.
    pub fn node_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if self.follow {
            q.append_pair("follow", "true");
        }
        if let Some(l) = self.limit_bytes {
            q.append_pair("limitBytes", &l.to_string());
        }
        if self.previous {
            q.append_pair("previous", "true");
        }
        if let Some(s) = self.since_seconds {
            q.append_pair("sinceSeconds", &s.to_string());
        }
        if let Some(t) = self.since_time {
            q.append_pair("sinceTime", &t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        if let Some(t) = self.tail_lines {
            q.append_pair("tailLines", &t.to_string());
        }
        if self.timestamps {
            q.append_pair("timestamps", "true");
        }
        q.finish()
    }
}

/// Where a node's server listens, from its Node object: the first address of the preferred types and
/// `status.daemonEndpoints.kubeletEndpoint.Port` (10250 when unset). Err is kube-apiserver's text.
pub fn kubelet_endpoint(node: &Value) -> Result<(String, u16), String> {
    let addresses: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| Some((x.get("type")?.as_str()?, x.get("address")?.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let host = ADDRESS_PREFERENCE
        .iter()
        .find_map(|t| {
            addresses
                .iter()
                .find(|(ty, a)| ty == t && !a.is_empty())
                .map(|(_, a)| *a)
        })
        .ok_or_else(|| {
            let known: Vec<String> = addresses.iter().map(|(t, a)| format!("{{{t} {a}}}")).collect();
            format!("no preferred addresses found; known addresses: [{}]", known.join(" "))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((host.to_string(), port))
}

/// `host:port`, with brackets around an IPv6 address.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The Status kube-apiserver makes of a node's reply outside 2xx (`GenericHttpResponseChecker`): 500 and 400
/// carry the node's text; anything else is the generic message for the code with ` ( pods/log <pod>)` after it.
pub fn node_error(code: StatusCode, body: &[u8], pod: &str) -> ApiError {
    let text = String::from_utf8_lossy(body).into_owned();
    match code.as_u16() {
        500 => {
            let mut e = ApiError::internal(&text);
            e.details = Some(json!({ "causes": [{ "message": text }] }));
            e
        }
        400 => ApiError::bad_request(text),
        c => {
            let (reason, message) = match c {
                409 => ("Conflict", "the server reported a conflict".to_string()),
                404 => ("NotFound", "the server could not find the requested resource".to_string()),
                401 => ("Unauthorized", "the server has asked for the client to provide credentials".to_string()),
                403 => ("Forbidden", text),
                405 => (
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource".to_string(),
                ),
                422 => (
                    "Invalid",
                    "the server rejected our request due to an error in our request".to_string(),
                ),
                504 => (
                    "Timeout",
                    "the server was unable to return a response in the time allotted, but may still be processing the request".to_string(),
                ),
                429 => (
                    "TooManyRequests",
                    "the server has received too many requests and has asked us to try again later".to_string(),
                ),
                c if c >= 500 => (
                    "InternalError",
                    format!("an error on the server ({}) has prevented the request from succeeding", quote(&text)),
                ),
                c => (
                    "",
                    format!("the server responded with the status code {c} but did not return more information"),
                ),
            };
            ApiError {
                code: c,
                reason,
                message: format!("{message} ( pods/log {pod})"),
                details: Some(json!({ "name": pod, "kind": "pods/log" })),
            }
        }
    }
}

/// Go's `net.Dial` words for the connect failures users meet, from the OS error text the client reports.
fn dial_error(authority: &str, message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let why = if lower.contains("connection refused") {
        "connect: connection refused".to_string()
    } else if lower.contains("no route to host") {
        "connect: no route to host".to_string()
    } else if lower.contains("network is unreachable") {
        "connect: network is unreachable".to_string()
    } else if lower.contains("timed out") {
        "i/o timeout".to_string()
    } else {
        return message.to_string();
    };
    format!("dial tcp {authority}: {why}")
}

/// Reaches node servers with the API server's kubelet-client certificate. Keeps one HTTP/2 connection per node
/// (concurrent log streams share it) and dials again when a cached one has failed.
pub struct NodeProxy {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    /// Open connections by `host:port`.
    connections: Mutex<HashMap<String, Client>>,
}

impl NodeProxy {
    /// `ca_pem`: the CA node serving certificates are signed by; `cert_pem`/`key_pem`: the kubelet-client
    /// certificate the API server presents.
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Self {
        Self {
            ca_pem: ca_pem.as_bytes().to_vec(),
            cert_pem: cert_pem.as_bytes().to_vec(),
            key_pem: key_pem.as_bytes().to_vec(),
            connections: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, authority: &str) -> Option<Client> {
        let conns = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        conns.get(authority).cloned()
    }

    fn forget(&self, authority: &str) {
        let mut conns = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        conns.remove(authority);
    }

    async fn dial(&self, authority: &str) -> Result<Client, String> {
        let config = Config {
            server: format!("https://{authority}"),
            ca_pem: self.ca_pem.clone(),
            token: None,
            client_cert_pem: Some(self.cert_pem.clone()),
            client_key_pem: Some(self.key_pem.clone()),
            namespace: String::new(),
        };
        let client = match tokio::time::timeout(DIAL_TIMEOUT, Client::connect(&config)).await {
            Err(_) => return Err(format!("dial tcp {authority}: i/o timeout")),
            Ok(Err(ClientError::Connect { message, .. })) => return Err(dial_error(authority, &message)),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(c)) => c,
        };
        let mut conns = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        conns.insert(authority.to_string(), client.clone());
        Ok(client)
    }

    /// GETs `path` from the node at `authority`; Err is the error text without the `Get "<url>": ` prefix.
    async fn get(&self, authority: &str, path: &str) -> Result<(StatusCode, Incoming), String> {
        if let Some(client) = self.cached(authority) {
            match client.stream_get(path).await {
                Ok(reply) => return Ok(reply),
                // The cached connection died (node restarted, idle close): dial again below.
                Err(e) => {
                    tracing::debug!(node = %authority, error = %e, "cached node connection failed; redialling");
                    self.forget(authority);
                }
            }
        }
        let client = self.dial(authority).await?;
        client.stream_get(path).await.map_err(|e| {
            self.forget(authority);
            match e {
                ClientError::Request { message, .. } => message,
                other => other.to_string(),
            }
        })
    }

    /// Streams `/containerLogs/<namespace>/<pod>/<container>?<opts>` from the node server at `host:port`: a 200
    /// `text/plain` reply whose body is the node's, frame by frame (it ends when the node ends it; dropping it,
    /// when the client goes away, cancels the node's stream), or the Status kube-apiserver answers.
    pub async fn container_logs(
        &self,
        host: &str,
        port: u16,
        namespace: &str,
        pod: &str,
        container: &str,
        opts: &PodLogOptions,
    ) -> Result<Response<Body>, ApiError> {
        let authority = authority(host, port);
        let query = opts.node_query();
        let path = if query.is_empty() {
            format!("/containerLogs/{namespace}/{pod}/{container}")
        } else {
            format!("/containerLogs/{namespace}/{pod}/{container}?{query}")
        };
        let (status, mut body) = self.get(&authority, &path).await.map_err(|why| {
            // Not a Status error in kube-apiserver either: a 500 with no reason, which kubectl prints as
            // `Error from server: Get "https://…": …`.
            ApiError::new(
                500,
                "",
                format!("Get {}: {why}", quote(&format!("https://{authority}{path}"))),
            )
        })?;
        if !status.is_success() {
            let mut text = Vec::new();
            while text.len() < MAX_ERROR_BODY {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            text.extend_from_slice(&d);
                        }
                    }
                    Some(Err(e)) => return Err(ApiError::internal(e)),
                    None => break,
                }
            }
            text.truncate(MAX_ERROR_BODY);
            return Err(node_error(status, &text, pod));
        }
        let mut resp = Response::new(Body::new(body));
        resp.headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(q: &str) -> Result<PodLogOptions, ApiError> {
        let pairs: HashMap<String, String> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        PodLogOptions::from_query(|k| pairs.get(k).map(String::as_str))
    }

    #[test]
    fn decodes_and_reencodes_options() {
        let o = opts("follow=true&previous=1&timestamps=&tailLines=5&limitBytes=100&sinceTime=2026-11-24T21%3A00%3A00.5%2B01%3A00&container=app").unwrap();
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(100)));
        assert_eq!(
            o.node_query(),
            "follow=true&limitBytes=100&previous=true&sinceTime=2026-11-24T20%3A00%3A00Z&tailLines=5&timestamps=true"
        );
        let o = opts("follow=false&previous=0&sinceSeconds=10").unwrap();
        assert_eq!(o.node_query(), "sinceSeconds=10");
        assert_eq!(opts("").unwrap().node_query(), "");
    }

    #[test]
    fn conversion_errors_are_bad_requests() {
        let e = opts("tailLines=x").unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert_eq!(e.message, "strconv.ParseInt: parsing \"x\": invalid syntax");
        let e = opts("limitBytes=99999999999999999999").unwrap_err();
        assert_eq!(
            e.message,
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        let e = opts("sinceTime=yesterday").unwrap_err();
        assert!(e
            .message
            .starts_with("parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\": "));
    }

    #[test]
    fn validation_in_kubernetes_words() {
        assert!(opts("tailLines=0&limitBytes=1&sinceSeconds=1")
            .unwrap()
            .validate("web")
            .is_ok());
        let e = opts("tailLines=-1").unwrap().validate("web").unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert_eq!(
            e.message,
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(e.details.as_ref().unwrap()["kind"], "PodLogOptions");
        let e = opts("limitBytes=0&sinceSeconds=0")
            .unwrap()
            .validate("web")
            .unwrap_err();
        assert_eq!(
            e.message,
            "PodLogOptions \"web\" is invalid: [limitBytes: Invalid value: 0: must be greater than 0, sinceSeconds: Invalid value: 0: must be greater than 0]"
        );
        let e = opts("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z")
            .unwrap()
            .validate("web")
            .unwrap_err();
        assert_eq!(
            e.message,
            "PodLogOptions \"web\" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        );
    }

    #[test]
    fn endpoint_from_node() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10555}}
        }});
        assert_eq!(kubelet_endpoint(&node).unwrap(), ("10.0.0.5".to_string(), 10555));
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(kubelet_endpoint(&node).unwrap(), ("n1".to_string(), 10250));
        let node = json!({"status": {"addresses": [{"type": "Weird", "address": "x"}]}});
        assert_eq!(
            kubelet_endpoint(&node).unwrap_err(),
            "no preferred addresses found; known addresses: [{Weird x}]"
        );
        assert_eq!(authority("fd00::1", 10250), "[fd00::1]:10250");
    }

    #[test]
    fn node_errors_as_kube_apiserver_maps_them() {
        let e = node_error(
            StatusCode::BAD_REQUEST,
            b"container \"app\" in pod \"web\" is waiting to start: ContainerCreating",
            "web",
        );
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert_eq!(
            e.message,
            "container \"app\" in pod \"web\" is waiting to start: ContainerCreating"
        );
        let e = node_error(StatusCode::NOT_FOUND, b"pod \"web\" does not exist", "web");
        assert_eq!((e.code, e.reason), (404, "NotFound"));
        assert_eq!(
            e.message,
            "the server could not find the requested resource ( pods/log web)"
        );
        let e = node_error(StatusCode::INTERNAL_SERVER_ERROR, b"boom", "web");
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (500, "InternalError", "Internal error occurred: boom")
        );
        let e = node_error(StatusCode::FORBIDDEN, b"Forbidden (user=x)", "web");
        assert_eq!(e.message, "Forbidden (user=x) ( pods/log web)");
        let e = node_error(StatusCode::BAD_GATEWAY, b"bad", "web");
        assert_eq!(
            e.message,
            "an error on the server (\"bad\") has prevented the request from succeeding ( pods/log web)"
        );
    }

    #[test]
    fn dial_errors_in_go_words() {
        assert_eq!(
            dial_error("10.0.0.5:10250", "Connection refused (os error 111)"),
            "dial tcp 10.0.0.5:10250: connect: connection refused"
        );
        assert_eq!(
            dial_error("h:1", "invalid peer certificate: UnknownIssuer"),
            "invalid peer certificate: UnknownIssuer"
        );
    }
}
