//! What the endpoint admits (method, target, body) and the bearer token.

use super::*;

#[test]
fn admit_checks_method_target_and_body() {
    use http::{HeaderMap, Method, Uri};
    let h = |pairs: &[(&'static str, &'static str)]| {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, http::HeaderValue::from_static(v));
        }
        m
    };
    let uri = |s: &str| Uri::try_from(s).expect("uri");
    let t = routes::admit(&Method::GET, &uri("/q?a=1"), &h(&[])).expect("ok");
    assert_eq!((t.path.as_str(), t.query.as_str(), t.post), ("/q", "a=1", false));
    assert!(routes::admit(
        &Method::POST,
        &uri("/api/v1/drain?service_id=1"),
        &h(&[("content-length", "0")])
    )
    .is_ok());
    for (method, target, headers, status) in [
        (Method::DELETE, "/health", h(&[]), 405),
        (Method::POST, "/health", h(&[]), 405),
        (Method::GET, "http://x/health", h(&[]), 400),
        (Method::OPTIONS, "*", h(&[]), 405),
        (Method::GET, "/health", h(&[("content-length", "5")]), 400),
        (Method::GET, "/health", h(&[("transfer-encoding", "chunked")]), 400),
        (
            Method::GET,
            "/health",
            h(&[("authorization", "a"), ("authorization", "b")]),
            400,
        ),
    ] {
        let e = routes::admit(&method, &uri(target), &headers).expect_err("must fail");
        assert_eq!(e.status, status, "{method} {target}");
        assert!(e.close);
        assert_eq!(e.allow_get, status == 405);
    }
}

#[tokio::test]
async fn a_token_server_requires_the_bearer_token_except_for_health() {
    const TOKEN: &str = "0123456789abcdef-http";
    let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
    let server = Server::with_options(
        state,
        Duration::ZERO,
        false,
        Some(mmc_wire::auth::ClusterToken::new(TOKEN)),
        64,
        Duration::from_secs(10),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_http(server.clone(), listener, Arc::new(|| "leader")));
    assert_eq!(get(addr, "/health").await.status, 200);
    let with = |auth: &str| format!("GET /role HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
    let r = get(addr, "/role").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"memcache\""),
        "{}",
        r.head
    );
    assert!(r.json()["error"].as_str().unwrap().contains("Authorization"));
    for bad in [
        "Bearer 0123456789abcdef-nope",
        "Basic abc",
        "Bearer",
        &format!("bearer {TOKEN}x"),
    ] {
        let r = raw(addr, with(bad).as_bytes()).await.expect("reply");
        assert_eq!(r.status, 401, "{bad}");
    }
    for good in [format!("Bearer {TOKEN}"), format!("bearer  {TOKEN}")] {
        let r = raw(addr, with(&good).as_bytes()).await.expect("reply");
        assert_eq!(r.status, 200, "{good}");
    }
    let r = raw(
        addr,
        with(&format!("Bearer {TOKEN}")).replace("/role", "/metrics").as_bytes(),
    )
    .await
    .expect("reply");
    assert!(
        r.body.contains("mmc_auth_failures_total{port=\"http\"} 5"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn status_document_needs_the_token_but_the_page_does_not() {
    const TOKEN: &str = "0123456789abcdef-status";
    let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
    let server = Server::with_options(
        state,
        Duration::ZERO,
        false,
        Some(mmc_wire::auth::ClusterToken::new(TOKEN)),
        64,
        Duration::from_secs(10),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The role comes from the function given to serve_http.
    tokio::spawn(serve_http(server.clone(), listener, Arc::new(|| "standby")));
    let r = get(addr, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("sessionStorage"));
    let r = get(addr, "/api/v1/status").await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
    let req = format!("GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    let r = raw(addr, req.as_bytes()).await.expect("reply");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["role"], "standby");
    assert_eq!(v["keys"], 0);
    assert_eq!(v["members"], json!([]));
}
