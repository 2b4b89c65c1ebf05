//! What the storms and the behaviour checks are sent to: our layer with either fetcher, or
//! `jwks_client_rs::JwksClient`, and what happens to a token there.

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use jwks_client_rs::JwksClient;
use jwks_client_rs::source::WebSource;
use tower::ServiceExt;

use crate::fixture::{AUDIENCE, Fetcher, jwks_client, layer_app};
use crate::report::request::{self, ITEM_URI, bearer};
use crate::sides::Claims;

pub const CONTENDERS: [Contender; 3] = [
    Contender::LayerBuiltIn,
    Contender::LayerJwksClientRs,
    Contender::JwksClient,
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    LayerBuiltIn,
    LayerJwksClientRs,
    JwksClient,
}

impl Contender {
    pub fn what(self) -> &'static str {
        match self {
            Contender::LayerBuiltIn => "our layer, built-in fetcher",
            Contender::LayerJwksClientRs => "our layer, `JwksClientRsFetcher`",
            Contender::JwksClient => "`jwks_client_rs::JwksClient::decode`",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Contender::LayerBuiltIn => "builtin",
            Contender::LayerJwksClientRs => "crate-fetcher",
            Contender::JwksClient => "jwks-client",
        }
    }
}

/// A layer or a `JwksClient`, as a storm target.
#[derive(Clone)]
pub enum Target {
    Layer(Router),
    Client(JwksClient<WebSource>),
}

pub type Outcome = Pin<Box<dyn Future<Output = String> + Send>>;

impl Target {
    pub fn new(contender: Contender, url: &str) -> Self {
        match contender {
            Contender::LayerBuiltIn => Target::Layer(layer_app(url, Fetcher::BuiltIn, true)),
            Contender::LayerJwksClientRs => {
                Target::Layer(layer_app(url, Fetcher::JwksClientRs, true))
            }
            Contender::JwksClient => Target::Client(jwks_client(url)),
        }
    }

    /// What happens to `token`: `HTTP <status>` from the layer, `ok` or the error's kind from
    /// the client.
    pub fn outcome(&self, token: &str) -> Outcome {
        match self {
            Target::Layer(app) => {
                let req = request::get(ITEM_URI, bearer(token));
                let app = app.clone();
                Box::pin(async move {
                    match app.oneshot(req).await {
                        Ok(res) => format!("HTTP {}", res.status().as_u16()),
                        Err(never) => match never {},
                    }
                })
            }
            Target::Client(client) => {
                let client = client.clone();
                let token = token.to_owned();
                Box::pin(async move {
                    match client.decode::<Claims>(&token, &[AUDIENCE]).await {
                        Ok(_) => "ok".to_owned(),
                        // The kind without the details (a kid, a URL): "Cannot find key for
                        // key_id", "Failed fetching the key", ...
                        Err(e) => {
                            let text = e.to_string();
                            format!("error: {}", text.split(':').next().unwrap_or(&text))
                        }
                    }
                })
            }
        }
    }
}

/// A readable outcome: the layer's 200 is a verified token, 401 a refused one, 503 no keys.
pub fn label(outcome: &str) -> String {
    match outcome {
        "HTTP 200" => "200, verified".to_owned(),
        "HTTP 401" => "401, refused".to_owned(),
        "HTTP 503" => "503, no usable keys".to_owned(),
        "ok" => "Ok, verified".to_owned(),
        other => other.replace("error: ", "Err: "),
    }
}
