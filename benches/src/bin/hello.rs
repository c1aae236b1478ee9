//! The HTTP ceiling for `benches/http.sh`: a plain hyper server answering
//! every request with 200 and an empty body, through the same accept loop
//! (`keyshift-http`) the verifier uses.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            println!("hello listening on http://{}", listener.local_addr()?);
            keyshift_http::serve(
                listener,
                keyshift_http::Limits::default(),
                |_| {
                    hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                    })
                },
                std::future::pending(),
            )
            .await;
            Ok(())
        })
}
