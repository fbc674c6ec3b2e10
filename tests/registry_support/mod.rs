//! Test doubles that sit *in front of* the real sandbox registry: a loopback
//! HTTP proxy that injects faults (429 with Retry-After, 503, a connection cut
//! mid-blob, corrupted bytes) and counts what it forwards, and a bearer-token
//! gate with its own token endpoint. It can also play a registry that points
//! elsewhere (a foreign token realm, upload host or blob redirect) and pass the
//! client's `Authorization` on. The registry behind them is the real
//! docker-registry; only the network misbehaves. What the tests put in the registry
//! comes from `images`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bunker::registry::login::base64;

mod images;
#[allow(unused_imports)] // Each test crate uses a different subset of these helpers.
pub use images::*;

/// What the proxy does to a matching request.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Answer with this status and headers without asking the registry.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Forward, but close the connection after this many body bytes.
    CutAfter(usize),
    /// Forward with one body byte flipped.
    Corrupt,
    /// Forward with a `Content-Length` this many bytes off the real body
    /// (negative: shorter), then close the connection.
    WrongLength(i64),
    /// Forward the body `chunk` bytes at a time with `pause_ms` between chunks.
    Drip { chunk: usize, pause_ms: u64 },
    /// Forward, with every `WWW-Authenticate` of the answer replaced by a Bearer
    /// challenge naming this realm.
    Realm(String),
    /// Forward, with the answer's `Location` moved to this origin (path and query kept).
    MoveLocation(String),
    /// Answer 307 with a `Location` of this origin and the request's path.
    Redirect(String),
}

impl FaultAction {
    /// 503 Service Unavailable, without asking the registry.
    pub fn unavailable() -> FaultAction {
        FaultAction::Respond {
            status: 503,
            headers: vec![],
        }
    }

    /// 429 Too Many Requests with `Retry-After: seconds`, without asking the registry.
    pub fn too_many_requests(seconds: u32) -> FaultAction {
        FaultAction::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), seconds.to_string())],
        }
    }
}

#[derive(Debug, Clone)]
pub struct FaultRule {
    pub method: String,
    /// Substring of the request path.
    pub path_contains: String,
    pub action: FaultAction,
    /// How many matching requests it applies to.
    pub times: usize,
}

impl FaultRule {
    /// `action` on the next `times` requests of `method` whose path contains `path`.
    pub fn new(method: &str, path: &str, action: FaultAction, times: usize) -> FaultRule {
        FaultRule {
            method: method.to_string(),
            path_contains: path.to_string(),
            action,
            times,
        }
    }
}

/// One request that went through the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
    /// Response body bytes sent to the client.
    pub body_bytes: u64,
    /// When the request arrived at the proxy.
    pub at: Instant,
    /// The fault injected into it, if any.
    pub fault: Option<FaultAction>,
}

#[derive(Default)]
struct ProxyState {
    rules: Vec<FaultRule>,
    seen: Vec<Seen>,
    /// Bearer-token mode: the token endpoint URL and the tokens issued (token → scopes).
    token_realm: Option<String>,
    tokens: Vec<(String, String)>,
    /// Pass the client's `Authorization` on to the registry (dropped otherwise).
    keep_authorization: bool,
}

/// A fault-injecting proxy to `upstream` (`127.0.0.1:port`) on a free loopback port.
#[derive(Clone)]
pub struct FaultProxy {
    pub address: String,
    state: Arc<Mutex<ProxyState>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let upstream = upstream.to_string();
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                let upstream = upstream.clone();
                thread::spawn(move || {
                    let _ = handle(stream, &upstream, &state);
                });
            }
        });
        FaultProxy { address, state }
    }

    pub fn add_rule(&self, rule: FaultRule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Passes the client's `Authorization` header on to the registry (by default the
    /// proxy drops it: the sandbox's plain registry needs none).
    pub fn keep_authorization(&self) {
        self.state.lock().unwrap().keep_authorization = true;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests a fault was injected into.
    pub fn faults_injected(&self) -> usize {
        self.seen()
            .iter()
            .filter(|seen| seen.fault.is_some())
            .count()
    }

    /// Blocks until `condition` holds for what the proxy has seen (checked every
    /// 5 ms, at most about two minutes: then it panics naming `what`).
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut(&[Seen]) -> bool) {
        for _ in 0..24_000 {
            if condition(&self.seen()) {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        panic!("the proxy never saw {what}: {:#?}", self.seen());
    }

    pub fn clear_seen(&self) {
        self.state.lock().unwrap().seen.clear();
    }

    /// Body bytes sent for GETs whose path contains `needle`.
    pub fn body_bytes(&self, needle: &str) -> u64 {
        self.seen()
            .iter()
            .filter(|seen| seen.method == "GET" && seen.path.contains(needle))
            .map(|seen| seen.body_bytes)
            .sum()
    }

    /// Requires `Authorization: Bearer` tokens issued by `token_server` for the
    /// request's repository; answers 401 with a Bearer challenge otherwise.
    pub fn require_tokens(&self, token_server: &TokenServer) {
        let mut state = self.state.lock().unwrap();
        state.token_realm = Some(format!("http://{}/token", token_server.address));
        drop(state);
        token_server.attach(self.state.clone());
    }
}

/// A request or status line and its headers.
pub type Head = (String, Vec<(String, String)>);

/// The path and query of an absolute or relative URL.
fn path_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|index| &rest[index..]).unwrap_or("/"),
        None => url,
    }
}

pub fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Head>> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    Ok(Some((request_line.trim_end().to_string(), headers)))
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn repository_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    for marker in ["/manifests/", "/blobs/", "/tags/"] {
        if let Some(index) = rest.find(marker) {
            return Some(rest[..index].to_string());
        }
    }
    None
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn handle(
    client: TcpStream,
    upstream: &str,
    state: &Arc<Mutex<ProxyState>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let Some((request_line, headers)) = read_head(&mut reader)? else {
        return Ok(());
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let length: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let range = header(&headers, "range").map(str::to_string);

    // Bearer gate.
    let realm = state.lock().unwrap().token_realm.clone();
    if let Some(realm) = realm {
        let repository = repository_of(&path);
        let presented = header(&headers, "authorization")
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::to_string);
        let allowed = presented.is_some_and(|token| {
            state.lock().unwrap().tokens.iter().any(|(issued, scopes)| {
                issued == &token
                    && match &repository {
                        Some(repository) => scopes
                            .split(' ')
                            .any(|scope| scope.starts_with(&format!("repository:{repository}:"))),
                        None => true,
                    }
            })
        });
        if !allowed {
            let scope = repository
                .map(|repository| format!(",scope=\"repository:{repository}:pull\""))
                .unwrap_or_default();
            let challenge = format!("Bearer realm=\"{realm}\",service=\"bunker-test\"{scope}");
            record(state, &method, &path, range, 401, 0, None);
            return respond(
                &mut client,
                401,
                &[("WWW-Authenticate".into(), challenge)],
                b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"token required\"}]}",
            );
        }
    }

    let action = {
        let mut state = state.lock().unwrap();
        let mut chosen = None;
        for rule in state.rules.iter_mut() {
            if rule.times > 0 && rule.method == method && path.contains(&rule.path_contains) {
                rule.times -= 1;
                chosen = Some(rule.action.clone());
                break;
            }
        }
        chosen
    };
    if let Some(FaultAction::Respond { status, headers }) = &action {
        record(state, &method, &path, range, *status, 0, action.clone());
        return respond(&mut client, *status, headers, b"");
    }
    if let Some(FaultAction::Redirect(origin)) = &action {
        record(state, &method, &path, range, 307, 0, action.clone());
        let location = format!("{origin}{path}");
        return respond(&mut client, 307, &[("Location".into(), location)], b"");
    }
    let keep_authorization = state.lock().unwrap().keep_authorization;

    let position = start_record(state, &method, &path, range, action.clone());
    let mut upstream_stream = TcpStream::connect(upstream)?;
    let mut request = format!("{request_line}\r\n");
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("connection")
            || (name.eq_ignore_ascii_case("authorization") && !keep_authorization)
        {
            continue;
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    upstream_stream.write_all(request.as_bytes())?;
    upstream_stream.write_all(&body)?;
    let mut upstream_reader = BufReader::new(upstream_stream);
    let Some((status_line, response_headers)) = read_head(&mut upstream_reader)? else {
        return Ok(());
    };
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut head = format!("{status_line}\r\n");
    for (name, value) in &response_headers {
        if name.eq_ignore_ascii_case("connection") {
            continue;
        }
        let value = match &action {
            Some(FaultAction::WrongLength(delta))
                if name.eq_ignore_ascii_case("content-length") =>
            {
                (value.parse::<i64>().unwrap_or(0) + delta)
                    .max(0)
                    .to_string()
            }
            Some(FaultAction::Realm(realm)) if name.eq_ignore_ascii_case("www-authenticate") => {
                format!("Bearer realm=\"{realm}\",service=\"bunker-test\"")
            }
            Some(FaultAction::MoveLocation(origin)) if name.eq_ignore_ascii_case("location") => {
                format!("{origin}{}", path_of(value))
            }
            _ => value.clone(),
        };
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    client.write_all(head.as_bytes())?;
    let drip = match &action {
        Some(FaultAction::Drip { chunk, pause_ms }) => {
            Some(((*chunk).max(1), Duration::from_millis(*pause_ms)))
        }
        _ => None,
    };
    let limit = match &action {
        Some(FaultAction::CutAfter(bytes)) => Some(*bytes),
        _ => None,
    };
    let mut sent = 0usize;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut corrupted = false;
    loop {
        let read = upstream_reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        let mut chunk = &mut buffer[..read];
        if let Some(limit) = limit
            && sent + chunk.len() > limit
        {
            chunk = &mut chunk[..limit - sent];
        }
        if matches!(action, Some(FaultAction::Corrupt)) && !corrupted && !chunk.is_empty() {
            chunk[chunk.len() / 2] ^= 0xff;
            corrupted = true;
        }
        let written = match drip {
            Some((size, pause)) => chunk.chunks(size).try_for_each(|piece| {
                thread::sleep(pause);
                client.write_all(piece)
            }),
            None => client.write_all(chunk),
        };
        if written.is_err() {
            break;
        }
        sent += chunk.len();
        if limit.is_some_and(|limit| sent >= limit) {
            break;
        }
    }
    let _ = client.flush();
    let _ = client.shutdown(Shutdown::Both);
    finish_record(state, position, &path, status, sent as u64);
    Ok(())
}

fn record(
    state: &Arc<Mutex<ProxyState>>,
    method: &str,
    path: &str,
    range: Option<String>,
    status: u16,
    body_bytes: u64,
    fault: Option<FaultAction>,
) {
    state.lock().unwrap().seen.push(Seen {
        method: method.to_string(),
        path: path.to_string(),
        range,
        status,
        body_bytes,
        at: Instant::now(),
        fault,
    });
}

/// Records a forwarded request as it arrives (so a client that moves on
/// before the upstream connection closes never finds it missing); returns its
/// position for [`finish_record`].
fn start_record(
    state: &Arc<Mutex<ProxyState>>,
    method: &str,
    path: &str,
    range: Option<String>,
    fault: Option<FaultAction>,
) -> usize {
    let mut state = state.lock().unwrap();
    state.seen.push(Seen {
        method: method.to_string(),
        path: path.to_string(),
        range,
        status: 0,
        body_bytes: 0,
        at: Instant::now(),
        fault,
    });
    state.seen.len() - 1
}

/// Fills in the status and body size of a request [`start_record`] noted;
/// nothing when the list was cleared meanwhile.
fn finish_record(
    state: &Arc<Mutex<ProxyState>>,
    position: usize,
    path: &str,
    status: u16,
    body_bytes: u64,
) {
    let mut state = state.lock().unwrap();
    if let Some(seen) = state
        .seen
        .get_mut(position)
        .filter(|seen| seen.path == path)
    {
        seen.status = status;
        seen.body_bytes = body_bytes;
    }
}

/// A token endpoint issuing bearer tokens for Basic-authenticated scoped requests.
#[derive(Clone)]
pub struct TokenServer {
    pub address: String,
    proxies: Arc<Mutex<Vec<Arc<Mutex<ProxyState>>>>>,
    /// Every `scope` parameter set requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    /// Accepts `user`/`password` (base64 `Basic`) and issues tokens.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        let address = listener.local_addr().unwrap().to_string();
        let server = TokenServer {
            address,
            proxies: Arc::default(),
            requests: Arc::default(),
        };
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let shared = server.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = shared.clone();
                let expected = expected.clone();
                thread::spawn(move || {
                    let _ = server.handle(stream, &expected);
                });
            }
        });
        server
    }

    fn attach(&self, proxy: Arc<Mutex<ProxyState>>) {
        self.proxies.lock().unwrap().push(proxy);
    }

    fn handle(&self, stream: TcpStream, expected: &str) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut stream = stream;
        let Some((request_line, headers)) = read_head(&mut reader)? else {
            return Ok(());
        };
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        if header(&headers, "authorization") != Some(expected) {
            return respond(&mut stream, 401, &[], b"{\"details\":\"bad credentials\"}");
        }
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let scopes: Vec<String> = query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("scope="))
            .map(percent_decode)
            .collect();
        let joined = scopes.join(" ");
        self.requests.lock().unwrap().push(joined.clone());
        let token = format!("token-{}", self.requests.lock().unwrap().len());
        for proxy in self.proxies.lock().unwrap().iter() {
            proxy
                .lock()
                .unwrap()
                .tokens
                .push((token.clone(), joined.clone()));
        }
        let body = format!("{{\"token\":\"{token}\",\"expires_in\":300}}");
        respond(
            &mut stream,
            200,
            &[("Content-Type".into(), "application/json".into())],
            body.as_bytes(),
        )
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&text[index + 1..index + 3], 16)
        {
            out.push(value);
            index += 3;
            continue;
        }
        out.push(if bytes[index] == b'+' {
            b' '
        } else {
            bytes[index]
        });
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
