//! `edge-gateway healthcheck`: asks the running gateway's `GET /healthz` and answers with the
//! exit code, for container health checks (the runtime image has no curl).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Ok when the gateway on `host:port` answers `/healthz` with 200 within `timeout`.
pub async fn check(host: IpAddr, port: u16, timeout: Duration) -> Result<(), String> {
    // A gateway bound to 0.0.0.0 / [::] is reached on loopback.
    let ip = match host {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, port);
    let ask = async {
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
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}
