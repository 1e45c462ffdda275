//! Property tests of request parsing: the Authorization header, run numbers, and
//! arbitrary keys and bodies through the router.

mod common;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use common::*;
use gofer_api::{bearer_token, parse_run};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn header(value: &[u8]) -> Option<HeaderMap> {
    let v = HeaderValue::from_bytes(value).ok()?;
    let mut h = HeaderMap::new();
    h.insert("authorization", v);
    Some(h)
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    #[test]
    fn any_authorization_header_is_a_token_or_a_401(value in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some(h) = header(&value) {
            match bearer_token(&h) {
                Ok(token) => {
                    prop_assert!(!token.is_empty());
                    prop_assert!(token.bytes().all(|b| b.is_ascii_graphic()));
                    let text = std::str::from_utf8(&value).expect("accepted headers are ASCII");
                    prop_assert!(text[..7].eq_ignore_ascii_case("bearer "));
                    prop_assert_eq!(&text[7..], token);
                }
                Err(e) => prop_assert_eq!(e.status(), StatusCode::UNAUTHORIZED),
            }
        }
    }

    #[test]
    fn a_bearer_token_is_read_back(scheme in "(?i)bearer", token in "[!-~]{1,100}") {
        let h = header(format!("{scheme} {token}").as_bytes()).expect("valid header");
        prop_assert_eq!(bearer_token(&h).expect("token"), token.as_str());
    }

    #[test]
    fn run_numbers(text in ".{0,30}", n in any::<u64>()) {
        prop_assert_eq!(parse_run(&n.to_string()).expect("number"), n);
        match parse_run(&text) {
            Ok(m) => {
                prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(text.parse::<u64>().ok(), Some(m));
            }
            Err(e) => prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST),
        }
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Any key and any body through the router: stored and read back exactly, or refused
/// with a 4xx naming the key; never a panic, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_key_and_body_round_trip_or_are_refused() {
    let f = Fixture::new();
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let r = f.router();
    let handle = tokio::runtime::Handle::current();
    let cases = (
        prop_oneof![".{0,40}", "\\PC{1,300}", "[a-z]{1,8}", "[a-z]{1000,3000}"],
        proptest::collection::vec(any::<u8>(), 0..2048),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config::with_cases(256));
        runner.run(&cases, |(key, body)| {
            let path = run_path(PIPELINE, 1, &format!("/objects/{}", percent_encode(&key)));
            let (put, get) = handle.block_on(async {
                let put = send(&r, Method::PUT, &path, Some(&token), body.clone()).await;
                let get = send(&r, Method::GET, &path, Some(&token), "").await;
                (put, get)
            });
            match put.status {
                StatusCode::NO_CONTENT => {
                    prop_assert_eq!(get.status, StatusCode::OK);
                    prop_assert_eq!(&get.body, &body);
                }
                StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => {
                    // An empty key is no route segment (404); a bad key is named (400).
                    prop_assert!(put.error().message.len() <= gofer_api::MAX_MESSAGE_BYTES + 3);
                }
                other => prop_assert!(false, "PUT {key:?} answered {other}: {}", put.text()),
            }
            // Raw, unencoded segments: whatever the URI parser accepts must not fail the server.
            if let Ok(uri) = format!("/api/v1/pipelines/{PIPELINE}/runs/1/objects/{key}")
                .parse::<axum::http::Uri>()
            {
                let a = handle.block_on(send(&r, Method::GET, &uri.to_string(), Some(&token), ""));
                prop_assert!(
                    a.status.is_client_error() || a.status.is_success(),
                    "{}",
                    a.status
                );
            }
            Ok(())
        })
    })
    .await
    .expect("runner");
    end(&run).await;
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
