//! Small real HTTP servers on 127.0.0.1 standing in for third parties. Each
//! follows the semantics of its reference page and records what it received.

pub mod grist;
pub mod lescommuns;
pub mod recoco;
pub mod target;

/// Binds 127.0.0.1 on a free port and serves `router` in the background;
/// returns the base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("fake server");
    });
    format!("http://{addr}")
}
