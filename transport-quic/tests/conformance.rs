//! The `Transport` conformance suite from `actraft::testkit`, over QUIC on loopback.

mod common;

#[tokio::test]
async fn conformance() {
    common::init_tracing();
    actraft::testkit::transport::run_suite(common::QuicFactory::default()).await;
}
