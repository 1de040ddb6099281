//! Each path's answer: health, role, metrics, the key and segment queries,
//! the status page and document, unknown paths, bad parameters.

use super::*;

#[tokio::test]
async fn health_and_role() {
    let (addr, _) = start().await;
    let r = get(addr, "/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "ok");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = get(addr, "/role").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "role": "leader" }));
}

#[tokio::test]
async fn metrics() {
    let (addr, server) = start().await;
    server
        .metrics
        .record(Metrics::op_index("alloc"), 2, false, Duration::from_micros(30));
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let b = &r.body;
    for line in [
        "mmc_requests_total{op=\"alloc\"} 1",
        "mmc_request_keys_total{op=\"alloc\"} 2",
        "mmc_keys 2",
        "mmc_members_alive 1",
        &format!("mmc_segment_capacity_bytes{{service=\"1\",medium=\"dram\"}} {SEG_SIZE}"),
        "mmc_segment_objects{service=\"1\",medium=\"dram\"} 2",
        &format!("mmc_medium_capacity_bytes{{medium=\"dram\"}} {SEG_SIZE}"),
        "mmc_medium_capacity_bytes{medium=\"hbm\"} 0",
        "mmc_evictions_total 0",
        "mmc_evicted_bytes_total 0",
        "mmc_put_timeouts_total 0",
        "mmc_dead_services_total 0",
        "mmc_leases_active 0",
    ] {
        assert!(b.lines().any(|l| l == line), "missing {line:?} in\n{b}");
    }
    let used: u64 = b
        .lines()
        .find_map(|l| l.strip_prefix("mmc_segment_used_bytes{service=\"1\",medium=\"dram\"} "))
        .expect("segment used")
        .parse()
        .expect("number");
    assert!(used >= 4096 + 100, "{used}");
    assert!(b
        .lines()
        .any(|l| l == format!("mmc_medium_used_bytes{{medium=\"dram\"}} {used}")));
    // Every sample line is `name{labels} value` with a numeric value.
    for l in b.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = l.rsplit_once(' ').expect("sample");
        assert!(v.parse::<f64>().is_ok(), "{l}");
    }
}

#[tokio::test]
async fn query_key() {
    let (addr, _) = start().await;
    let expect = json!({ "key": KEY1, "size": 4096, "replicas": [{ "service_id": 1, "medium": "dram" }] });
    for target in [
        "/query_key?key=hello%20world%2F%C3%BC",
        "/query_key?key=hello+world/%c3%bc&x=1",
    ] {
        let r = get(addr, target).await;
        assert_eq!(r.status, 200, "{target}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json(), expect);
    }
    let r = get(addr, "/query_key?key=k%2C2").await;
    assert_eq!((r.status, r.json()["size"].clone()), (200, json!(100)));
    let r = get(addr, "/query_key?key=nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["key"], "nope");
    assert!(r.json()["error"].is_string());
    for bad in [
        "/query_key",
        "/query_key?keys=a",
        "/query_key?key=",
        "/query_key?key=%zz",
        "/query_key?key=%FF",
    ] {
        let r = get(addr, bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.json()["error"].as_str().expect("error").contains("'key'"),
            "{bad}: {}",
            r.body
        );
    }
    let long = "a".repeat(300);
    let r = get(addr, &format!("/query_key?key={long}")).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn batch_query_keys() {
    let (addr, _) = start().await;
    let r = get(addr, "/batch_query_keys?keys=hello+world%2F%C3%BC,missing,k%2C2").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!([
            { "key": KEY1, "found": true, "size": 4096, "replicas": [{ "service_id": 1, "medium": "dram" }] },
            { "key": "missing", "found": false },
            { "key": KEY2, "found": true, "size": 100, "replicas": [{ "service_id": 1, "medium": "dram" }] },
        ])
    );
    let r = get(addr, "/batch_query_keys?keys=a,,b").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v.as_array().map(Vec::len), Some(3));
    assert_eq!(v[1]["found"], false);
    assert!(v[1]["error"].is_string());
    for bad in [
        "/batch_query_keys",
        "/batch_query_keys?keys=",
        "/batch_query_keys?keys=a,%2",
    ] {
        let r = get(addr, bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].as_str().expect("error").contains("'keys'"));
    }
}

#[tokio::test]
async fn get_all_keys() {
    let (addr, _) = start().await;
    let r = get(addr, "/get_all_keys").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let mut keys: Vec<String> = serde_json::from_value(v["keys"].clone()).expect("keys");
    keys.sort();
    assert_eq!(keys, vec![KEY1.to_string(), KEY2.to_string()]);
    assert_eq!(v["next_cursor"], Value::Null);

    // Page one key at a time.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let v = get(addr, &format!("/get_all_keys?cursor={cursor}&limit=1"))
            .await
            .json();
        let page: Vec<String> = serde_json::from_value(v["keys"].clone()).expect("keys");
        assert!(page.len() <= 1);
        seen.extend(page);
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, keys);

    let r = get(addr, "/get_all_keys?limit=1000000000").await;
    assert_eq!(r.status, 200);
    for (bad, name) in [
        ("/get_all_keys?limit=x", "'limit'"),
        ("/get_all_keys?limit=0", "'limit'"),
        ("/get_all_keys?limit=-1", "'limit'"),
        ("/get_all_keys?cursor=1.5", "'cursor'"),
        ("/get_all_keys?cursor=99999999999999999999999", "'cursor'"),
    ] {
        let r = get(addr, bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.json()["error"].as_str().expect("error").contains(name),
            "{bad}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn segments_and_usage() {
    let (addr, _) = start().await;
    let r = get(addr, "/get_all_segments").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let segs = v.as_array().expect("array");
    assert_eq!(segs.len(), 1);
    let s = &segs[0];
    assert_eq!(s["service_id"], 1);
    assert_eq!(s["host_id"], 7);
    assert_eq!(s["transfer_addr"], "127.0.0.1:7000");
    assert_eq!(s["medium"], "dram");
    assert_eq!(s["capacity"], SEG_SIZE);
    assert_eq!(s["objects"], 2);
    let used = s["used"].as_u64().expect("used");
    assert!(used >= 4196);

    let r = get(addr, "/api/v1/capacity/usage").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["dram"]["capacity"], SEG_SIZE);
    assert_eq!(v["dram"]["used"], used);
    let pct = v["dram"]["percent"].as_f64().expect("percent");
    assert!((pct - used as f64 * 100.0 / SEG_SIZE as f64).abs() < 0.01, "{pct}");
    assert_eq!(v["hbm"], json!({ "capacity": 0, "used": 0, "percent": 0.0 }));
    assert_eq!(v["ssd"]["capacity"], 0);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let (addr, _) = start().await;
    for t in [
        "/nope",
        "/index.html",
        "/api/v1/status/x",
        "/health/",
        "/api/v1/capacity",
        "/query_key/x?key=a",
    ] {
        let r = get(addr, t).await;
        assert_eq!(r.status, 404, "{t}");
        assert!(r.json()["error"].is_string());
    }
}

#[tokio::test]
async fn status_page_and_document() {
    let (addr, server) = start().await;
    server
        .metrics
        .record(Metrics::op_index("alloc"), 2, false, Duration::from_micros(30));
    let r = get(addr, "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{}", r.head);
    assert!(r.body.contains("/api/v1/status") && r.body.contains("<title>MemCache status</title>"));

    let r = get(addr, "/api/v1/status").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["role"], "leader");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["time_ms"].as_u64().expect("time_ms") > 1_600_000_000_000);
    assert!(v["membership_epoch"].is_u64());
    assert_eq!(v["keys"], 2);
    for zero in [
        "leases_active",
        "evictions",
        "evicted_bytes",
        "put_timeouts",
        "dead_services",
    ] {
        assert_eq!(v[zero], 0, "{zero}");
    }
    let used = server.state.stat().segments[0].used;
    assert!(used >= 4096 + 100);
    let pct = (used as f64 * 10_000.0 / SEG_SIZE as f64).round() / 100.0;
    assert_eq!(
        v["members"],
        json!([{
            "service_id": 1,
            "host_id": 7,
            "host_id_hex": "0000000000000007",
            "transfer_addr": "127.0.0.1:7000",
            "segments": [{ "medium": "dram", "capacity": SEG_SIZE, "used": used, "percent": pct, "objects": 2 }],
        }])
    );
    assert_eq!(
        v["capacity"]["dram"],
        json!({ "capacity": SEG_SIZE, "used": used, "percent": pct })
    );
    assert_eq!(
        v["capacity"]["hbm"],
        json!({ "capacity": 0, "used": 0, "percent": 0.0 })
    );
    let ops = v["ops"].as_array().expect("ops");
    assert_eq!(ops.len(), crate::metrics::OPS.len());
    let alloc = ops.iter().find(|o| o["op"] == "alloc").expect("alloc");
    assert_eq!(
        *alloc,
        json!({
            "op": "alloc", "requests": 1, "failures": 0, "keys": 2, "latency_sum_us": 30,
            "latency_mean_us": 30.0, "latency_p50_le_us": 50, "latency_p99_le_us": 50,
        })
    );
    let idle = ops.iter().find(|o| o["op"] == "remove").expect("remove");
    assert_eq!(idle["requests"], 0);
    assert_eq!(idle["latency_p99_le_us"], Value::Null);
}

#[tokio::test]
async fn bad_parameters_name_the_parameter() {
    let (addr, _) = start().await;
    for (target, name) in [
        ("/query_key?key=%zz", "'key'"),
        ("/batch_query_keys?keys=a,%2", "'keys'"),
        ("/get_all_keys?limit=x", "'limit'"),
        ("/get_all_keys?cursor=zz", "'cursor'"),
        ("/api/v1/drain?service_id=x", "'service_id'"),
        ("/api/v1/drain", "service_id"),
    ] {
        let r = get(addr, target).await;
        assert_eq!(r.status, 400, "{target}");
        let e = r.json()["error"].as_str().expect("error").to_owned();
        assert!(e.contains(name), "{target}: {e}");
    }
    // POST drain of an unknown provider: 404; of a known one: its report.
    let post = |t: &str| format!("POST {t} HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    let r = raw(addr, post("/api/v1/drain?service_id=99").as_bytes())
        .await
        .expect("reply");
    assert_eq!(r.status, 404, "{}", r.body);
}
