//! No Docker engine runs on the development machines, so the images and the compose file
//! are checked here by parsing them: what compose would start, how it is wired, and that
//! every variable it sets is one the services know.

use std::{collections::BTreeMap, path::Path};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
}

fn compose() -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo().join("docker/compose.yaml")).expect("compose.yaml");
    serde_yaml::from_str(&text).expect("compose.yaml is YAML")
}

fn env_of(service: &serde_yaml::Value) -> BTreeMap<String, String> {
    let env = service
        .get("environment")
        .and_then(|e| e.as_mapping())
        .cloned()
        .unwrap_or_default();
    env.into_iter()
        .map(|(k, v)| {
            let value = match v {
                serde_yaml::Value::String(s) => s,
                other => serde_yaml::to_string(&other).unwrap().trim().to_owned(),
            };
            (k.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

#[test]
fn compose_starts_every_part_wired_by_env() {
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services");
    let names: Vec<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for needed in ["mongo", "redis", "mailpit", "auth-service", "edge-gateway"] {
        assert!(names.contains(&needed), "compose lacks {needed}: {names:?}");
    }
    let auth = &doc["services"]["auth-service"];
    let env = env_of(auth);
    assert_eq!(env["MONGODB_URI"], "mongodb://mongo:27017");
    assert_eq!(env["REDIS_URL"], "redis://redis:6379");
    assert_eq!(
        (env["SMTP_HOST"].as_str(), env["SMTP_PORT"].as_str()),
        ("mailpit", "1025")
    );
    assert!(
        env["GRPC_ADDR"].starts_with("0.0.0.0:"),
        "reachable from the gateway container"
    );
    for dep in ["mongo", "redis"] {
        assert_eq!(
            auth["depends_on"][dep]["condition"], "service_healthy",
            "{dep}"
        );
    }
    let gateway = env_of(&doc["services"]["edge-gateway"]);
    assert_eq!(gateway["AUTH_SERVICE_URL"], "http://auth-service:50051");
    // The service believes forwarded client addresses from the gateway's address only.
    let gateway_ip = doc["services"]["edge-gateway"]["networks"]["default"]["ipv4_address"]
        .as_str()
        .expect("the gateway has a fixed address");
    let service = env_of(&doc["services"]["auth-service"]);
    assert_eq!(service["TRUSTED_PROXIES"], format!("{gateway_ip}/32"));
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if let Some(dockerfile) = service
            .get("build")
            .and_then(|b| b.get("dockerfile"))
            .and_then(|d| d.as_str())
        {
            assert!(
                repo().join(dockerfile).is_file(),
                "{name}: {dockerfile} missing"
            );
            assert_eq!(
                service["build"]["context"], "..",
                "{name} builds from the repo root"
            );
        }
    }
}

#[test]
fn every_variable_compose_sets_is_documented() {
    let example = std::fs::read_to_string(repo().join(".env.example")).unwrap();
    let gateway_docs =
        std::fs::read_to_string(repo().join("edge-gateway/README.md")).unwrap_or_default();
    let doc = compose();
    for service in ["auth-service", "edge-gateway"] {
        for var in env_of(&doc["services"][service]).keys() {
            assert!(
                example.contains(var.as_str()) || gateway_docs.contains(var.as_str()),
                "{service} sets {var}, which .env.example / edge-gateway/README.md does not document"
            );
        }
    }
}

#[test]
fn images_are_multi_stage_non_root_with_a_health_check() {
    for (file, binary) in [
        ("auth-service.Dockerfile", "auth-service"),
        ("edge-gateway.Dockerfile", "edge-gateway"),
    ] {
        let text = std::fs::read_to_string(repo().join("docker").join(file)).unwrap();
        let stages = text
            .lines()
            .filter(|l| l.trim_start().starts_with("FROM "))
            .count();
        assert!(stages >= 2, "{file}: multi-stage");
        assert!(text.contains("--locked"), "{file}: builds from Cargo.lock");
        let user = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with("USER "))
            .expect("USER");
        let who = user.trim_start().trim_start_matches("USER ").trim();
        assert!(who != "root" && who != "0", "{file}: runs as {who}");
        assert!(text.contains("HEALTHCHECK"), "{file}: health check");
        assert!(
            text.contains(&format!("[\"/usr/local/bin/{binary}\", \"healthcheck\"]")),
            "{file}: {binary} healthcheck"
        );
    }
}
