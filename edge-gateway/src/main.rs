//! Placeholder until the gateway is built: it only says so.

fn main() {
    eprintln!("edge-gateway: not built yet; use the auth service's gRPC or gRPC-Web API");
    std::process::exit(2);
}
