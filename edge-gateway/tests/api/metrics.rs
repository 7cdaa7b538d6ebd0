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
