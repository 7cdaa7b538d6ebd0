//! The CSRF check's idea of "this origin": scheme, host and port.

use reqwest::{Method, StatusCode, header};

use crate::helpers::*;

#[tokio::test]
async fn same_origin_means_same_scheme_host_and_port() {
    for (secure, scheme, other_scheme) in [("off", "http", "https"), ("on", "https", "http")] {
        let app = spawn_app_with(Env::default().gateway("COOKIE_SECURE", secure)).await;
        let (_, _, session) = app.signed_up_user().await;
        let authority = app.base.trim_start_matches("http://").to_owned();
        let port: u16 = authority.rsplit(':').next().unwrap().parse().unwrap();
        let sessions_from = |origin: String| {
            app.with_session(Method::GET, "/api/auth/sessions", &session)
                .header(header::ORIGIN, origin)
                .send()
        };
        for origin in [
            format!("{other_scheme}://{authority}"),
            format!("{scheme}://127.0.0.1:{}", port.wrapping_add(1)),
            format!("{scheme}://127.0.0.1"),
            format!("{scheme}://localhost:{port}"),
        ] {
            let (status, body) = read(sessions_from(origin.clone()).await.unwrap()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
            assert_error(status, &body, StatusCode::FORBIDDEN, "CSRF_REJECTED");
        }
        let (status, body) = read(
            sessions_from(format!("{scheme}://{authority}"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "COOKIE_SECURE={secure}: {body:#}");
    }
}
