//! Registry credentials go only where they should, through the binary against the
//! sandbox's auth registry (htpasswd, 127.0.0.1:5998) behind the rewriting proxy of
//! `registry_support` (passing `Authorization` on): the proxy points the registry's `WWW-Authenticate` realm, or its upload `Location`,
//! or a blob download (redirect) at a foreign plain-HTTP listener on another loopback
//! address (127.0.0.2). The foreign listener must never see an `Authorization` header.

mod common;
mod registry_support;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use common::{Sandbox, TestHome, sandbox, unique_name};
use registry_support::{FaultAction, FaultProxy, FaultRule, header, read_head};

/// One request a listener received: request line and headers.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn authorization(&self) -> Option<&str> {
        header(&self.headers, "authorization")
    }
}

/// A plain-HTTP listener on 127.0.0.2 playing a foreign host (token service, upload
/// host, blob store): records every request and answers 401 with a Basic challenge.
struct Foreign {
    address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Foreign {
    fn start() -> Foreign {
        let listener = TcpListener::bind("127.0.0.2:0")
            .expect("bind 127.0.0.2 (Linux routes all of 127.0.0.0/8 to loopback)");
        let address = listener.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let shared = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = shared.clone();
                thread::spawn(move || {
                    let _ = answer_foreign(stream, &seen);
                });
            }
        });
        Foreign { address, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    #[track_caller]
    fn assert_no_authorization(&self, password: &str) {
        for seen in self.seen() {
            assert!(
                seen.authorization().is_none(),
                "the foreign host got Authorization: {seen:?}"
            );
            assert!(
                !format!("{seen:?}").contains(password),
                "the foreign host got the password: {seen:?}"
            );
        }
    }
}

fn answer_foreign(stream: TcpStream, seen: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some((line, headers)) = read_head(&mut reader)? else {
        return Ok(());
    };
    let length: usize = header(&headers, "content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())?;
    seen.lock().unwrap().push(Seen { line, headers });
    let mut stream = stream;
    let body = b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"foreign\"}]}";
    write!(
        stream,
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"foreign\"\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

/// What the proxy changes in the registry's answers.
enum Rewrite {
    /// Every `WWW-Authenticate` becomes a Bearer challenge naming this realm.
    Realm(String),
    /// Upload-session `Location`s (answers to POST/PATCH on `/blobs/uploads/`) move to
    /// this origin, keeping the path and query.
    UploadOrigin(String),
    /// Blob GETs are answered with a 307 redirect to this origin.
    RedirectBlobs(String),
}

/// The proxy of `registry_support` in front of `upstream`, passing the client's
/// `Authorization` on, with `rewrite` applied to every matching request.
fn rewriting_proxy(upstream: &str, rewrite: Rewrite) -> FaultProxy {
    let proxy = FaultProxy::start(upstream);
    proxy.keep_authorization();
    let rules = match rewrite {
        Rewrite::Realm(realm) => vec![
            ("GET", "/v2/", FaultAction::Realm(realm.clone())),
            ("HEAD", "/v2/", FaultAction::Realm(realm)),
        ],
        Rewrite::UploadOrigin(origin) => vec![
            (
                "POST",
                "/blobs/uploads/",
                FaultAction::MoveLocation(origin.clone()),
            ),
            (
                "PATCH",
                "/blobs/uploads/",
                FaultAction::MoveLocation(origin),
            ),
        ],
        Rewrite::RedirectBlobs(origin) => {
            vec![("GET", "/blobs/sha256:", FaultAction::Redirect(origin))]
        }
    };
    for (method, path, action) in rules {
        proxy.add_rule(FaultRule::new(method, path, action, usize::MAX));
    }
    proxy
}

/// A HOME whose Docker config holds the sandbox auth registry's credentials for `registry`.
fn home_with_credentials(sandbox: &Sandbox, registry: &str) -> TestHome {
    let home = TestHome::new(sandbox);
    home.write_docker_auth(registry, &sandbox.auth_user, &sandbox.auth_password);
    home
}

/// `registry pull` of a fresh unique image from the plain sandbox registry into an archive
/// directory, ready for `registry push`.
fn archived_unique_image(sandbox: &Sandbox, home: &TestHome, archive: &std::path::Path) {
    let name = unique_name("credscope");
    let local = format!("{name}:v1");
    common::build_unique_image(sandbox, &local);
    let reference = common::push_to_registry(sandbox, &local, &local);
    common::docker_ok(sandbox, ["rmi", &local]);
    home.bunker()
        .args(["registry", "pull", &reference, "--archive-dir"])
        .arg(archive)
        .run()
        .assert_success();
}

#[test]
fn credentials_never_go_to_a_foreign_plain_http_token_realm() {
    let sandbox = sandbox();
    let foreign = Foreign::start();
    let realm = format!("{}/token", foreign.url());
    let proxy = rewriting_proxy(&sandbox.auth_registry, Rewrite::Realm(realm.clone()));
    let home = home_with_credentials(&sandbox, &proxy.address);
    let output = home
        .bunker()
        .args([
            "registry",
            "list-tags",
            &format!("{}/{}", proxy.address, unique_name("realm")),
        ])
        .run();
    foreign.assert_no_authorization(&sandbox.auth_password);
    output
        .assert_code(1)
        .assert_stderr_contains(&format!(
            "not sending the credentials for {} to the token service {realm}",
            proxy.address
        ))
        .assert_stderr_contains(&format!(
            "plain HTTP on another host ({}) than the registry",
            foreign.address
        ));
}

#[test]
fn upload_location_on_another_host_gets_no_authorization() {
    let sandbox = sandbox();
    let home_plain = TestHome::new(&sandbox);
    let archive = tempfile::tempdir().unwrap();
    archived_unique_image(&sandbox, &home_plain, archive.path());
    let foreign = Foreign::start();
    let proxy = rewriting_proxy(&sandbox.auth_registry, Rewrite::UploadOrigin(foreign.url()));
    let home = home_with_credentials(&sandbox, &proxy.address);
    let output = home
        .bunker()
        .args([
            "registry",
            "push",
            "--to",
            &format!("{}/{}", proxy.address, unique_name("upload")),
            "--archive-dir",
        ])
        .arg(archive.path())
        .env("BUNKER_RETRY_ATTEMPTS", "2")
        .env("BUNKER_RETRY_INITIAL_MS", "10")
        .run();
    let seen = foreign.seen();
    assert!(
        seen.iter().any(|s| s.line.contains("/blobs/uploads/")),
        "the upload never reached the foreign host: {seen:?}\n{output}"
    );
    foreign.assert_no_authorization(&sandbox.auth_password);
    assert!(!output.success(), "{output}");
    output
        .assert_stderr_contains(&format!(
            "{} is another host than the registry {}",
            foreign.address, proxy.address
        ))
        .assert_stderr_contains("bunker does not send the registry's credentials to other hosts");
}

#[test]
fn blob_redirect_to_another_host_drops_authorization() {
    let sandbox = sandbox();
    let home_plain = TestHome::new(&sandbox);
    let name = unique_name("credredirect");
    let local = format!("{name}:v1");
    common::build_unique_image(&sandbox, &local);
    let plain_reference = common::push_to_registry(&sandbox, &local, &local);
    common::docker_ok(&sandbox, ["rmi", &local]);
    let archive = tempfile::tempdir().unwrap();
    home_plain
        .bunker()
        .args(["registry", "pull", &plain_reference, "--archive-dir"])
        .arg(archive.path())
        .run()
        .assert_success();
    // Into the auth registry directly (credentials allowed there), then read it back
    // through a proxy that redirects every blob download to the foreign host.
    let direct = home_with_credentials(&sandbox, &sandbox.auth_registry);
    let repository = format!("{}/{name}", sandbox.auth_registry);
    direct
        .bunker()
        .args(["registry", "push", "--to", &repository, "--archive-dir"])
        .arg(archive.path())
        .run()
        .assert_success();
    let foreign = Foreign::start();
    let proxy = rewriting_proxy(
        &sandbox.auth_registry,
        Rewrite::RedirectBlobs(foreign.url()),
    );
    let home = home_with_credentials(&sandbox, &proxy.address);
    let output = home
        .bunker()
        .args([
            "registry",
            "pull",
            &format!("{}/{name}/{name}:v1", proxy.address),
            "--archive-dir",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .env("BUNKER_RETRY_ATTEMPTS", "2")
        .env("BUNKER_RETRY_INITIAL_MS", "10")
        .run();
    assert!(!output.success(), "{output}");
    let seen = foreign.seen();
    assert!(
        seen.iter().any(|s| s.line.contains("/blobs/sha256:")),
        "no blob download reached the foreign host: {seen:?}\n{output}"
    );
    foreign.assert_no_authorization(&sandbox.auth_password);
}
