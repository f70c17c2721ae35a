//! The node server over real TLS: client-certificate authentication and authorization, the kubelet's error
//! replies, and container logs read from real files (tail, timestamps, follow while the file grows), over HTTP/2
//! and HTTP/1.1.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use peapod_node::server::{serve, LocateError, NodeServerConfig, PodLogs};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A CA and the certificates it signed for one test.
struct Certs {
    ca_pem: String,
    server: (String, String),
    apiserver: (String, String),
    other_node: (String, String),
}

fn make_certs() -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, "test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = p.signed_by(&server_key, &issuer).unwrap();

    let client = |cn: &str, group: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, group);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Certs {
        apiserver: client("kube-apiserver-kubelet-client", "system:masters"),
        other_node: client("system:node:n2", "system:nodes"),
        server: (server.pem(), server_key.serialize_pem()),
        ca_pem,
    }
}

/// The agent side of the seam: Pod `default/web` with container `app` (log `0.log`, no previous instance) and
/// container `gone` whose log file does not exist.
struct TestPods {
    dir: PathBuf,
    running: watch::Sender<bool>,
}

impl PodLogs for TestPods {
    fn locate(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        previous: bool,
    ) -> Result<(PathBuf, watch::Receiver<bool>), LocateError> {
        if namespace != "default" || name != "web" {
            return Err(LocateError::NotFound(format!("pod {name:?} does not exist")));
        }
        let file = match container {
            "app" => "0.log",
            "gone" => "missing.log",
            _ => {
                return Err(LocateError::NotFound(format!(
                    "container {container:?} not found in pod {name:?}"
                )))
            }
        };
        if previous {
            return Err(format!("previous terminated container {container:?} in pod {name:?} not found").into());
        }
        Ok((self.dir.join(file), self.running.subscribe()))
    }
}

struct Fixture {
    addr: SocketAddr,
    certs: Certs,
    dir: tempfile::TempDir,
    running: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Fixture {
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("0.log")
    }
    fn append(&self, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.log_path())
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

async fn start() -> Fixture {
    let certs = make_certs();
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = watch::channel(true);
    let pods = Arc::new(TestPods {
        dir: dir.path().to_path_buf(),
        running: running.clone(),
    });
    let config = NodeServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert_pem: certs.server.0.clone(),
        key_pem: certs.server.1.clone(),
        client_ca_pem: certs.ca_pem.clone(),
    };
    let (addr, task) = serve(config, pods).await.unwrap();
    let f = Fixture {
        addr,
        certs,
        dir,
        running,
        task,
    };
    f.append(concat!(
        "2024-05-01T10:00:00.000000001Z stdout F one\n",
        "2024-05-01T10:00:01.000000002Z stderr F two\n",
        "2024-05-01T10:00:02.000000003Z stdout P thr\n",
        "2024-05-01T10:00:02.000000004Z stdout F ee\n",
    ));
    f
}

/// An HTTP/1.1 or HTTP/2 connection to the server.
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Conn {
    async fn get(&mut self, path: &str) -> Result<Response<Incoming>, hyper::Error> {
        let req = Request::get(format!("https://127.0.0.1{path}"))
            .body(Empty::new())
            .unwrap();
        match self {
            Conn::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Conn::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

/// Connects with `client` (certificate and key PEM) or none, offering `h2` or `http/1.1`.
async fn connect(f: &Fixture, client: Option<&(String, String)>, h2: bool) -> Result<Conn, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(f.certs.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    let tcp = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let io = TokioIo::new(stream);
    if h2 {
        let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn::H2(s))
    } else {
        let (s, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn::H1(s))
    }
}

async fn apiserver(f: &Fixture, h2: bool) -> Conn {
    connect(f, Some(&f.certs.apiserver), h2).await.unwrap()
}

async fn body_text(resp: Response<Incoming>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn get_text(conn: &mut Conn, path: &str) -> (StatusCode, String) {
    let resp = conn.get(path).await.unwrap();
    let status = resp.status();
    (status, body_text(resp).await)
}

#[tokio::test]
async fn refuses_clients_without_a_certificate_from_the_ca() {
    let f = start().await;
    // No certificate: the handshake (or, with TLS 1.3, the first request) fails; nothing is served.
    match connect(&f, None, true).await {
        Err(_) => {}
        Ok(mut conn) => assert!(
            conn.get("/healthz").await.is_err(),
            "served a client without a certificate"
        ),
    }
    // A certificate from another CA is refused too.
    let stranger = make_certs();
    match connect(&f, Some(&stranger.apiserver), false).await {
        Err(_) => {}
        Ok(mut conn) => assert!(conn.get("/healthz").await.is_err(), "served a foreign certificate"),
    }
    // A node's certificate from the cluster CA authenticates but may not read logs.
    let mut conn = connect(&f, Some(&f.certs.other_node), true).await.unwrap();
    let (status, text) = get_text(&mut conn, "/containerLogs/default/web/app").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        text,
        "Forbidden (user=system:node:n2, verb=get, resource=nodes, subresource(s)=[proxy])"
    );
    // The API server's certificate is served.
    let mut conn = apiserver(&f, true).await;
    assert_eq!(
        get_text(&mut conn, "/healthz").await,
        (StatusCode::OK, "ok".to_string())
    );
}

#[tokio::test]
async fn whole_log_tail_and_timestamps() {
    let f = start().await;
    for h2 in [true, false] {
        let mut conn = apiserver(&f, h2).await;
        let (status, text) = get_text(&mut conn, "/containerLogs/default/web/app").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "one\ntwo\nthree\n");

        let (status, text) = get_text(&mut conn, "/containerLogs/default/web/app?tailLines=2").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "three\n");

        let (_, text) = get_text(
            &mut conn,
            "/containerLogs/default/web/app?timestamps=true&sinceTime=2024-05-01T10%3A00%3A01Z",
        )
        .await;
        assert_eq!(
            text,
            "2024-05-01T10:00:01.000000002Z two\n2024-05-01T10:00:02.000000003Z three\n"
        );

        let (_, text) = get_text(&mut conn, "/containerLogs/default/web/app?limitBytes=6").await;
        assert_eq!(text, "one\ntw");
    }
}

#[tokio::test]
async fn kubelet_errors() {
    let f = start().await;
    let mut conn = apiserver(&f, true).await;
    let cases = [
        (
            "/containerLogs/default/web/app?previous=true",
            StatusCode::BAD_REQUEST,
            "previous terminated container \"app\" in pod \"web\" not found",
        ),
        (
            "/containerLogs/default/nosuch/app",
            StatusCode::NOT_FOUND,
            "pod \"nosuch\" does not exist",
        ),
        (
            "/containerLogs/default/web/nosuch",
            StatusCode::NOT_FOUND,
            "container \"nosuch\" not found in pod \"web\"",
        ),
        (
            "/containerLogs/default/web/app?tailLines=x",
            StatusCode::BAD_REQUEST,
            "strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        (
            "/containerLogs/default/web",
            StatusCode::NOT_FOUND,
            "404 page not found",
        ),
    ];
    for (path, code, text) in cases {
        assert_eq!(get_text(&mut conn, path).await, (code, text.to_string()), "{path}");
    }
    let (status, text) = get_text(&mut conn, "/containerLogs/default/web/gone").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let missing = f.dir.path().join("missing.log");
    assert_eq!(
        text,
        format!(
            "failed to try resolving symlinks in path \"{0}\": lstat {0}: no such file or directory",
            missing.display()
        )
    );
}

/// Reads the next data frame (skipping trailers), failing the test if none comes in time.
async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("no frame within 10s")?;
        if let Ok(d) = frame.unwrap().into_data() {
            return Some(d);
        }
    }
}

#[tokio::test]
async fn follow_streams_new_lines_until_the_container_stops() {
    for h2 in [true, false] {
        let f = start().await;
        let mut conn = apiserver(&f, h2).await;
        let resp = conn
            .get("/containerLogs/default/web/app?follow=true&tailLines=2")
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[http::header::CONTENT_TYPE], "text/plain");
        let mut body = resp.into_body();
        assert_eq!(next_data(&mut body).await.unwrap(), "three\n");

        // Lines written while following arrive without the stream ending.
        f.append("2024-05-01T10:00:03.000000000Z stdout F four\n");
        assert_eq!(next_data(&mut body).await.unwrap(), "four\n");
        f.append("2024-05-01T10:00:04.000000000Z stdout F five\n");
        assert_eq!(next_data(&mut body).await.unwrap(), "five\n");

        // The container exits: the rest is sent and the stream ends.
        f.append("2024-05-01T10:00:05.000000000Z stdout F last\n");
        f.running.send_replace(false);
        let mut rest = Vec::new();
        while let Some(d) = next_data(&mut body).await {
            rest.extend_from_slice(&d);
        }
        assert_eq!(rest, b"last\n");
    }
}

#[tokio::test]
async fn follow_stops_reading_when_the_client_goes_away() {
    for h2 in [true, false] {
        let f = start().await;
        let mut conn = apiserver(&f, h2).await;
        let resp = conn.get("/containerLogs/default/web/app?follow=true").await.unwrap();
        let mut body = resp.into_body();
        assert_eq!(next_data(&mut body).await.unwrap(), "one\ntwo\nthree\n");
        assert_eq!(
            f.running.receiver_count(),
            1,
            "the reader holds the container's running flag"
        );
        // The client leaves while the container still runs: the reader ends and lets go of the flag.
        drop(body);
        drop(conn);
        tokio::time::timeout(Duration::from_secs(10), f.running.closed())
            .await
            .expect("log reader still running after the client left");
    }
}

#[tokio::test]
async fn aborting_the_server_closes_it() {
    let f = start().await;
    let mut conn = apiserver(&f, true).await;
    let resp = conn.get("/containerLogs/default/web/app?follow=true").await.unwrap();
    let mut body = resp.into_body();
    assert_eq!(next_data(&mut body).await.unwrap(), "one\ntwo\nthree\n");
    f.task.abort();
    // The open stream ends (with an error or a plain end) and new connections are refused.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match body.frame().await {
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "stream still open after abort");
    assert!(tokio::net::TcpStream::connect(f.addr).await.is_err());
}
