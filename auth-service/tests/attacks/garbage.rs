//! Garbage on the wire: raw HTTP/2 streams carrying gRPC frames no well-behaved client sends
//! (empty, truncated, lying length prefixes, a compressed flag without compression, seeded
//! random protobuf, messages at and over the 128 KiB limit, deep nesting) to every RPC of
//! `baatcheet.auth.v1.AuthService`, the health check and both reflection services.
//!
//! Every stream must end with a grpc-status, never UNKNOWN or INTERNAL: a message that does not
//! parse, a torn frame or a compressed flag without an encoding is INVALID_ARGUMENT (tonic
//! itself says INTERNAL for those; `grpc::malformed` rewrites them). Nothing may hang or reset,
//! and afterwards a fresh client signs up and logs in.
//!
//! The random cases come from a fixed seed (GARBAGE_SEED overrides it), so a failure names
//! the seed, the RPC and the case number that reproduce it.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use baatcheet_auth_api::v1::{self as pb, auth_service_client::AuthServiceClient};
use bytes::Bytes;
use prost::Message;
use rand::{Rng, SeedableRng, rngs::StdRng};
use tonic::{Code, Status};

use crate::attacks::arena::{Arena, Backend};
use crate::helpers::*;

const SERVICE: &str = "baatcheet.auth.v1.AuthService";

/// Every RPC of AuthService, and whether it takes a bearer token.
const RPCS: [(&str, bool); 16] = [
    ("Register", false),
    ("ResendVerificationCode", false),
    ("VerifyRegistration", false),
    ("Login", false),
    ("RefreshSession", false),
    ("Logout", false),
    ("LogoutAll", true),
    ("ListSessions", true),
    ("RevokeSession", true),
    ("GetCurrentUser", true),
    ("RequestPasswordReset", false),
    ("ResetPassword", false),
    ("ChangePassword", true),
    ("DeleteAccount", true),
    ("ValidateAccessToken", false),
    ("GetJwks", false),
];

/// The other services on the port (Health/Watch streams forever, so it is left out).
const OTHER_PATHS: [&str; 3] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// AuthService's largest request message (startup::MAX_MESSAGE_BYTES).
const MAX_MESSAGE: usize = 128 * 1024;

const DEFAULT_SEED: u64 = 0x6261_6174_6368_6565;
const RANDOM_CASES: usize = 64;

/// The messages with which tonic's transport refuses a frame or message it cannot decode.
const TRANSPORT_REFUSALS: [&str; 4] = [
    "failed to decode Protobuf message",
    "protocol error: received message with",
    "Unexpected EOF decoding stream.",
    "Missing request message.",
];

/// One request body (already framed, or deliberately not) and what must come back.
struct Case {
    name: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, &'static str)>,
    /// The exact code, when the contract fixes it; otherwise any sound answer.
    expect: Option<Code>,
}

impl Case {
    fn new(name: impl Into<String>, body: Vec<u8>, expect: Option<Code>) -> Self {
        Self {
            name: name.into(),
            body,
            headers: Vec::new(),
            expect,
        }
    }
}

/// A gRPC length-prefixed message: flag, big-endian length, bytes.
fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend((message.len() as u32).to_be_bytes());
    out.extend(message);
    out
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

/// A message whose field `field` is a string of `len` ASCII letters.
fn string_field(field: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    key(&mut out, field, 2);
    varint(&mut out, len as u64);
    out.extend(std::iter::repeat_n(b'a', len));
    out
}

/// A well-formed message of random text fields (the request's own numbers 1-6, as strings)
/// and unknown fields of every valid wire type: garbage that decodes and reaches the flows.
fn random_message(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.random_range(0..8) {
        let field = rng.random_range(1..=12);
        if field <= 6 {
            let text: String = (0..rng.random_range(0..48))
                .map(|_| match rng.random_range(0..4) {
                    0 => rng.random::<char>(),
                    1 => ['@', '.', ' ', '-', '_', '\0'][rng.random_range(0..6)],
                    _ => rng.random_range(' '..='~'),
                })
                .collect();
            key(&mut out, field, 2);
            varint(&mut out, text.len() as u64);
            out.extend(text.as_bytes());
        } else {
            match rng.random_range(0..3) {
                0 => {
                    key(&mut out, field, 0);
                    varint(&mut out, rng.random());
                }
                1 => {
                    key(&mut out, field, 1);
                    out.extend(rng.random::<[u8; 8]>());
                }
                _ => {
                    key(&mut out, field, 5);
                    out.extend(rng.random::<[u8; 4]>());
                }
            }
        }
    }
    out
}

/// Protobuf-shaped noise: records with mostly plausible field numbers and wire types, some
/// lying lengths, nested length-delimited records and invalid UTF-8.
fn random_wire(rng: &mut StdRng, depth: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.random_range(0..8) {
        let field = if rng.random_bool(0.8) {
            rng.random_range(1..=6)
        } else {
            rng.random_range(1..=(1 << 29) - 1)
        };
        let wire = [0, 0, 1, 2, 2, 2, 2, 5, 3, 4, 6, 7][rng.random_range(0..12)];
        key(&mut out, field, wire);
        match wire {
            0 => varint(&mut out, rng.random()),
            1 => out.extend(rng.random::<[u8; 8]>()),
            5 => out.extend(rng.random::<[u8; 4]>()),
            2 => {
                let content: Vec<u8> = match rng.random_range(0..4) {
                    0 if depth < 4 => random_wire(rng, depth + 1),
                    1 => (0..rng.random_range(0..64))
                        .map(|_| rng.random_range(b' '..=b'~'))
                        .collect(),
                    _ => (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
                };
                let lie = rng.random_bool(0.1).then(|| rng.random_range(0..1 << 20));
                varint(&mut out, lie.unwrap_or(content.len() as u64));
                out.extend(content);
            }
            _ => {}
        }
    }
    out
}

/// The fixed cases every path gets.
fn fixed_cases(auth_service: bool) -> Vec<Case> {
    use Code::*;
    let empty_message = frame(0, &[]);
    let mut cases = vec![
        Case::new("empty body", vec![], Some(InvalidArgument)),
        Case::new(
            "truncated length prefix",
            vec![0, 0, 0],
            Some(InvalidArgument),
        ),
        Case::new(
            "length prefix larger than the body",
            {
                let mut body = vec![0];
                body.extend(1000u32.to_be_bytes());
                body.extend([0x0a, 0x01, b'a']);
                body
            },
            Some(InvalidArgument),
        ),
        Case::new(
            "length prefix of 4 GiB",
            {
                let mut body = vec![0];
                body.extend(u32::MAX.to_be_bytes());
                body.extend([0; 16]);
                body
            },
            Some(OutOfRange),
        ),
        Case::new(
            "compressed flag without grpc-encoding",
            frame(1, &[0x0a, 0x01, b'a']),
            Some(InvalidArgument),
        ),
        Case {
            headers: vec![("grpc-encoding", "gzip")],
            ..Case::new(
                "compressed flag with an encoding the server does not speak",
                frame(1, b"\x1f\x8b not really gzip"),
                Some(Unimplemented),
            )
        },
        Case::new("compression flag 2", frame(2, &[]), Some(InvalidArgument)),
        Case::new(
            "two messages in a unary call",
            {
                let mut body = empty_message.clone();
                body.extend(&empty_message);
                body
            },
            None,
        ),
        Case::new(
            "a message then a torn frame",
            {
                let mut body = empty_message.clone();
                body.extend([0, 0, 0]);
                body
            },
            None,
        ),
        Case::new(
            "100 000 nested groups",
            frame(0, &[0x0b; 100_000]),
            Some(InvalidArgument),
        ),
        Case::new(
            "unknown length-delimited field nested 1000 deep",
            {
                let mut inner = Vec::new();
                for _ in 0..1000 {
                    let mut outer = Vec::new();
                    key(&mut outer, 15, 2);
                    varint(&mut outer, inner.len() as u64);
                    outer.extend(&inner);
                    inner = outer;
                }
                frame(0, &inner)
            },
            None,
        ),
        Case::new(
            "20 000 unknown fields",
            frame(0, &[0xf8, 0x07, 0x01].repeat(20_000)),
            None,
        ),
        Case::new(
            "an 11-byte varint",
            frame(
                0,
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
            ),
            Some(InvalidArgument),
        ),
        Case::new(
            "a string field that is not UTF-8",
            frame(0, &[0x0a, 0x04, 0xff, 0xfe, 0xc0, 0x80]),
            None,
        ),
        Case::new(
            "field number 0",
            frame(0, &[0x02, 0x00]),
            Some(InvalidArgument),
        ),
    ];
    if auth_service {
        // The whole frame sits under the limit when the message is exactly MAX_MESSAGE bytes.
        let at_limit = string_field(1, MAX_MESSAGE - 4);
        assert_eq!(at_limit.len(), MAX_MESSAGE);
        let over_limit = string_field(1, MAX_MESSAGE - 3);
        cases.push(Case::new(
            "a string field making the message exactly 128 KiB",
            frame(0, &at_limit),
            None,
        ));
        cases.push(Case::new(
            "a string field making the message 128 KiB + 1",
            frame(0, &over_limit),
            Some(OutOfRange),
        ));
        cases.push(Case::new(
            "a 1 MiB string field",
            frame(0, &string_field(1, 1 << 20)),
            Some(OutOfRange),
        ));
    }
    cases
}

/// The seeded random cases of one path.
fn random_cases(seed: u64, path: &str) -> Vec<Case> {
    let salt = path
        .bytes()
        .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
    let mut rng = StdRng::seed_from_u64(seed ^ salt);
    (0..RANDOM_CASES)
        .map(|i| {
            let message = match i % 4 {
                0 => (0..rng.random_range(0..256))
                    .map(|_| rng.random())
                    .collect(),
                1 => random_wire(&mut rng, 0),
                _ => random_message(&mut rng),
            };
            Case::new(
                format!("random #{i} (seed {seed:#x})"),
                frame(0, &message),
                None,
            )
        })
        .collect()
}

/// The grpc-status of one raw call, or why there was none.
async fn raw_call(
    client: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
    case: &Case,
    bearer: Option<&str>,
) -> Result<Status, String> {
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in &case.headers {
        request = request.header(*name, *value);
    }
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(()).expect("a request");
    let ready = client
        .clone()
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    *client = ready;
    let (response, mut stream) = client
        .send_request(request, case.body.is_empty())
        .map_err(|e| format!("send_request: {e}"))?;
    if !case.body.is_empty() {
        // The server may answer (and end the stream) before it has read everything.
        let _ = stream.send_data(Bytes::from(case.body.clone()), true);
    }
    let response = response.await.map_err(|e| format!("response: {e}"))?;
    let http = response.status();
    if let Some(status) = Status::from_header_map(response.headers()) {
        return Ok(status);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("body: {e}"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body
        .trailers()
        .await
        .map_err(|e| format!("trailers: {e}"))?;
    trailers
        .as_ref()
        .and_then(Status::from_header_map)
        .ok_or_else(|| format!("HTTP {http} without grpc-status"))
}

async fn connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    tcp.set_nodelay(true).expect("nodelay");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A sound answer: never UNKNOWN, never INTERNAL. A frame or message the transport cannot
/// decode is the caller's mistake: INVALID_ARGUMENT, with tonic's explanation.
fn assert_sound(what: &str, status: &Status) {
    assert_ne!(status.code(), Code::Unknown, "{what}: {status:?}");
    assert_ne!(status.code(), Code::Internal, "{what}: {status:?}");
    // The service's own refusals carry a reason; the health and reflection services have
    // their own words.
    let ours = what.starts_with(&format!("/{SERVICE}/"));
    if ours && status.code() == Code::InvalidArgument && reason(status).is_empty() {
        assert!(
            TRANSPORT_REFUSALS
                .iter()
                .any(|m| status.message().starts_with(m)),
            "{what}: an INVALID_ARGUMENT without a reason that is no decoder refusal: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_to_every_rpc_get_sound_statuses_and_the_service_goes_on() {
    let seed = std::env::var("GARBAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let arena = Arena::start(
        Backend::Sqlite,
        &[
            // Garbage that decodes into a login is a failed login; the service's own limits
            // must not be what stops the sign-up and login at the end.
            ("LOGIN_MAX_ATTEMPTS", "10000"),
            ("LOGIN_MAX_FAILURES_PER_IP", "1000000"),
            ("LOGIN_SLOWDOWN_AFTER", "1000000"),
        ],
    )
    .await;
    let app = &arena.app;
    let victim = email("garbage");
    arena.signup(&username("garbage"), &victim).await;

    let mut paths: Vec<(String, bool)> = RPCS
        .iter()
        .map(|(rpc, authed)| (format!("/{SERVICE}/{rpc}"), *authed))
        .collect();
    paths.extend(OTHER_PATHS.iter().map(|p| (p.to_string(), false)));
    paths.push((format!("/{SERVICE}/NoSuchMethod"), false));
    paths.push(("/baatcheet.auth.v1.NoSuchService/Login".into(), false));

    let mut client = connect(app.addr).await;
    // code -> how many answers had it, for the log.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut calls = 0;
    for (path, authed) in &paths {
        let auth_service =
            path.starts_with(&format!("/{SERVICE}/")) && !path.ends_with("/NoSuchMethod");
        let unknown = path.contains("NoSuch");
        // Reflection is a bidi stream: an empty or torn request stream is its client's
        // business, so only soundness is asked of it.
        let unary = !path.contains("Reflection");
        let mut cases = fixed_cases(auth_service);
        cases.extend(random_cases(seed, path));
        // The random cases once more with a live token, so decodable garbage reaches the
        // flows of an authenticated caller (a fresh session each time: garbage may log out).
        let bearer = if *authed {
            let tokens = app
                .login(&victim, PASSWORD)
                .await
                .expect("login")
                .tokens
                .unwrap();
            Some(tokens.access_token)
        } else {
            None
        };
        let mut runs: Vec<(&Case, Option<&str>)> = cases.iter().map(|c| (c, None)).collect();
        if let Some(token) = &bearer {
            runs.extend(
                cases
                    .iter()
                    .filter(|c| c.name.starts_with("random"))
                    .map(|c| (c, Some(token.as_str()))),
            );
        }
        for (case, bearer) in runs {
            let what = format!(
                "{path} <- {}{}",
                case.name,
                if bearer.is_some() {
                    " (with a token)"
                } else {
                    ""
                }
            );
            let status = tokio::time::timeout(
                Duration::from_secs(10),
                raw_call(&mut client, app.addr, path, case, bearer),
            )
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within 10 s"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            calls += 1;
            assert_sound(&what, &status);
            let expected = match (unknown, unary) {
                (true, _) => Some(Code::Unimplemented),
                (false, true) => case.expect,
                (false, false) => None,
            };
            if let Some(code) = expected {
                assert_eq!(status.code(), code, "{what}: {status:?}");
            }
            if auth_service && case.name.contains("exactly 128 KiB") {
                assert_ne!(status.code(), Code::OutOfRange, "{what}: {status:?}");
            }
            *seen
                .entry(format!(
                    "{:?}: {}",
                    status.code(),
                    case.name.split(" #").next().unwrap()
                ))
                .or_default() += 1;
        }
    }
    eprintln!("{calls} garbage calls (seed {seed:#x}); answers by code and case:");
    for (answer, n) in &seen {
        eprintln!("  {n:5} × {answer}");
    }

    // Well-formed messages with every field huge: refused as input, under and over the limit.
    let share = (MAX_MESSAGE - 64) / 5;
    let huge = "x".repeat(share);
    let register = pb::RegisterRequest {
        username: huge.clone(),
        email: huge.clone(),
        password: huge.clone(),
        bio: huge.clone(),
        avatar_url: huge.clone(),
    };
    assert!(register.encoded_len() <= MAX_MESSAGE);
    let status = app.client().register(register).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields = violated_fields(&status);
    for field in ["username", "email", "password", "bio", "avatar_url"] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
    let status = app
        .client()
        .login(pb::LoginRequest {
            identifier: huge.clone(),
            password: huge.repeat(3),
        })
        .await
        .unwrap_err();
    assert_sound("Login with huge fields", &status);
    assert_ne!(status.code(), Code::Ok);

    // The same connection still works, and a fresh client signs up and logs in.
    let health = raw_call(
        &mut client,
        app.addr,
        "/grpc.health.v1.Health/Check",
        &Case::new("a health check", frame(0, &[]), None),
        None,
    )
    .await
    .expect("health answers");
    assert_eq!(health.code(), Code::Ok, "{health:?}");
    let mut fresh = AuthServiceClient::connect(format!("http://{}", app.addr))
        .await
        .expect("a fresh connection");
    let (name, mail) = (username("after"), email("after"));
    let id = fresh
        .register(pb::RegisterRequest {
            username: name.clone(),
            email: mail.clone(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect("register after the garbage")
        .into_inner()
        .registration_id;
    let code = arena.code(&mail, 1).await;
    fresh
        .verify_registration(pb::VerifyRegistrationRequest {
            email: mail.clone(),
            code,
            registration_id: id,
        })
        .await
        .expect("verify after the garbage");
    let login = fresh
        .login(pb::LoginRequest {
            identifier: name.clone(),
            password: PASSWORD.into(),
        })
        .await
        .expect("login after the garbage")
        .into_inner();
    assert_eq!(login.user.unwrap().username, name);
    let me = fresh
        .get_current_user(authed(
            pb::GetCurrentUserRequest {},
            &login.tokens.unwrap().access_token,
        ))
        .await
        .expect("GetCurrentUser after the garbage")
        .into_inner();
    assert_eq!(me.user.unwrap().email, mail);
}
