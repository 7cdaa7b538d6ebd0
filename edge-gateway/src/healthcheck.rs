//! `edge-gateway healthcheck`: asks the running gateway's `GET /healthz` and answers with the
//! exit code, for container health checks (the runtime image has no curl).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Ok when the gateway listening on `listen` answers `/healthz` with 200 (the caller bounds
/// the wait).
pub async fn check(listen: SocketAddr) -> Result<(), String> {
    let addr = baatcheet_runtime::cli::local_address(listen);
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = String::from_utf8_lossy(&head[9..12]).into_owned();
    if status == "200" {
        Ok(())
    } else {
        Err(format!("/healthz answered {status}"))
    }
}
