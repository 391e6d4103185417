//! The S3 server of the `corral files` tests (`corral_session::testing::s3`) and the gateway flags that point at it.

use corral_session::testing::s3::{ACCESS_KEY, BUCKET, SECRET_KEY, WeedServer};

/// A running `weed mini`; it is ready when an upload through the gateway succeeds.
pub struct S3Server {
    weed: WeedServer,
}

impl S3Server {
    /// Starts `weed mini` with the bucket [`BUCKET`].
    pub fn start() -> Self {
        Self {
            weed: WeedServer::start().expect("weed mini starts"),
        }
    }

    /// The gateway's `serve` flags for this server.
    pub fn gateway_flags(&self) -> Vec<String> {
        vec![
            format!("--object-store-bucket={BUCKET}"),
            format!("--object-store-endpoint={}", self.weed.endpoint),
            format!("--object-store-access-key-id={ACCESS_KEY}"),
            format!("--object-store-secret-access-key={SECRET_KEY}"),
        ]
    }
}
