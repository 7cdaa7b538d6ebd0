//! Metrics: labels from a fixed set whatever the requests look like.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};

use crate::helpers::*;

/// The distinct `gateway_http_requests_total` series (label sets, without values) at `url`.
async fn request_series(app: &TestApp, url: &str) -> BTreeSet<String> {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
        .text()
        .await
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("gateway_http_requests_total{"))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

#[tokio::test]
async fn metric_labels_do_not_grow_with_random_methods_and_paths() {
    let app = spawn_app().await;
    let metrics_url = app.url("/metrics");
    let tag = unique_tag();
    let send = |method: String, path: String| {
        app.request(Method::from_bytes(method.as_bytes()).unwrap(), &path)
            .send()
    };
    // One of each kind first, so that every series these requests can make exists already.
    for path in ["/healthz".to_owned(), format!("/warm-{tag}")] {
        send(format!("WARM{tag}"), path).await.unwrap();
    }
    let before = request_series(&app, &metrics_url).await;

    for i in 0..50 {
        let method = format!("M{tag}X{i}");
        send(method.clone(), "/healthz".to_owned()).await.unwrap();
        let response = send(method, format!("/p-{tag}/{i}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let after = request_series(&app, &metrics_url).await;

    let text = app.client.get(&metrics_url).send().await.unwrap();
    let text = text.text().await.unwrap();
    assert!(
        !text.contains(&tag),
        "a request's own method or path is a label:\n{text}"
    );
    let others = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter()
            .filter(|s| s.contains("method=\"other\""))
            .cloned()
            .collect()
    };
    assert!(!others(&before).is_empty(), "{before:#?}");
    assert_eq!(
        others(&before),
        others(&after),
        "100 odd requests made new series"
    );
    // Other tests in this process may add series of their own, never with other labels.
    for series in &after {
        let method = series
            .split("method=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a method label");
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"
            ]
            .contains(&method),
            "{series}"
        );
    }
}

#[tokio::test]
async fn metrics_addr_moves_metrics_off_the_api_port() {
    let app = spawn_app_with(Env::default().gateway("METRICS_ADDR", "127.0.0.1:0")).await;
    let metrics_base = app.metrics_base.clone().expect("a metrics listener");
    app.request(Method::GET, "/healthz").send().await.unwrap();

    // The API port has no /metrics at all, in the error shape like any unknown route.
    let (status, body) = read(app.request(Method::GET, "/metrics").send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (_, doc) = read(
        app.request(Method::GET, "/openapi.json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        doc["paths"]["/metrics"].is_null(),
        "not documented on the API"
    );

    // Its own listener serves it, and nothing else.
    let series = request_series(&app, &format!("{metrics_base}/metrics")).await;
    assert!(
        series.iter().any(|s| s.contains("route=\"/healthz\"")),
        "{series:#?}"
    );
    for path in ["/healthz", "/api/auth/me", "/"] {
        let response = app
            .client
            .get(format!("{metrics_base}{path}"))
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    }
}

#[tokio::test]
async fn without_metrics_addr_metrics_stay_on_the_api_port() {
    let app = spawn_app().await;
    assert!(app.metrics_base.is_none());
    app.request(Method::GET, "/healthz").send().await.unwrap();
    let series = request_series(&app, &app.url("/metrics")).await;
    assert!(
        series.iter().any(|s| s.contains("route=\"/healthz\"")),
        "{series:#?}"
    );
}
