//! A gateway on a temporary directory, without a host composition, for end-to-end tests of
//! the transport; the raw client is `perch_gateway::testing`.

#![allow(dead_code)]

use std::sync::Arc;

use perch_gateway::{GatewayConfig, GatewayOnly, RunningGateway};

pub use perch_gateway::testing::*;

pub struct TestHost {
    pub gw: RunningGateway,
    pub dir: tempfile::TempDir,
    pub token: String,
}

impl Target for TestHost {
    fn url(&self) -> String {
        self.gw.url()
    }
    fn token(&self) -> &str {
        &self.token
    }
}

pub async fn start_host(tweak: impl FnOnce(&mut GatewayConfig)) -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::defaults(dir.path().to_path_buf());
    cfg.bind = "127.0.0.1:0".parse().unwrap();
    tweak(&mut cfg);
    let gw = perch_gateway::start(cfg, Arc::new(GatewayOnly))
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("operator.token"))
        .unwrap()
        .trim()
        .to_string();
    TestHost { gw, dir, token }
}
