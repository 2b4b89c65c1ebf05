//! The server modes: the same router and handler, behind a different authentication each.

use std::future::IntoFuture;
use std::str::FromStr;

use axum::Router;
use axum::routing::get;
use s2s_auth::layer::AuthService;
use s2s_auth::{Auth, JwksAccess};
use tokio::net::TcpListener;
use tower::Layer;
use tower_oauth2_resource_server::server::OAuth2ResourceServer;
use tower_oauth2_resource_server::tenant::TenantConfiguration;

use crate::fixture::Fixture;
use crate::floor::{FloorKeys, FloorLayer};
use crate::{Error, Result, ServeOptions, idp, selftest};

pub(crate) const ITEMS: &str = "/items";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Plain axum: what a request costs without authentication.
    NoAuth,
    /// `jsonwebtoken::decode` with ready keys: the crypto floor (see `floor`).
    Floor,
    /// s2s-auth's layer with one `JwksAccess` entry, applied with `Router::layer` (axum then
    /// wraps it inside each route).
    Layer,
    /// The same layer around the whole router (`auth.layer().layer(router)`).
    LayerOuter,
    /// The peer crate, configured as its docs show (OIDC discovery of the issuer).
    TowerOauth2,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::NoAuth => "noauth",
            Mode::Floor => "floor",
            Mode::Layer => "layer",
            Mode::LayerOuter => "layer-outer",
            Mode::TowerOauth2 => "tower-oauth2-resource-server",
        }
    }
}

impl FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "noauth" => Ok(Mode::NoAuth),
            "floor" => Ok(Mode::Floor),
            "layer" => Ok(Mode::Layer),
            "layer-outer" => Ok(Mode::LayerOuter),
            "tower-oauth2-resource-server" => Ok(Mode::TowerOauth2),
            "jwt-authorizer" => Err("jwt-authorizer 0.15 is left out: it is built on axum 0.7 \
                 (its middleware needs `Response: From<AuthError>`, implemented for axum 0.7's \
                 response type only, so it cannot wrap an axum 0.8 router) and on jsonwebtoken 9 \
                 with ring; see loadbench/README.md"
                .into()),
            other => Err(format!("unknown mode {other:?}").into()),
        }
    }
}

/// The handler every mode serves: a tiny body, nothing read from the request.
async fn items() -> &'static str {
    "ok"
}

/// A mode's app: a router, or (`layer-outer`) the layer around one.
enum App {
    Router(Router),
    Outer(AuthService<Router>),
}

fn layer_auth(fixture: &Fixture, options: &ServeOptions) -> Result<Auth> {
    let meta = &fixture.meta;
    let url = options.jwks_url.clone().unwrap_or_else(|| meta.jwks_url());
    let mut builder = Auth::builder("loadbench").jwks_access(
        JwksAccess::new(url)
            .issuers([meta.issuer.as_str()])
            .audiences([meta.audience.as_str()]),
    );
    if let Some(capacity) = options.cache {
        builder = builder.verified_cache_capacity(capacity);
    }
    Ok(builder.build()?)
}

async fn app(fixture: &Fixture, options: &ServeOptions) -> Result<App> {
    let router = Router::new().route(ITEMS, get(items));
    let meta = &fixture.meta;
    Ok(App::Router(match options.mode {
        Mode::NoAuth => router,
        Mode::Floor => router.layer(FloorLayer::new(FloorKeys::from_jwks(
            &fixture.jwks,
            &meta.issuer,
            &meta.audience,
        )?)),
        Mode::Layer => router.layer(layer_auth(fixture, options)?.layer()),
        Mode::LayerOuter => {
            return Ok(App::Outer(
                layer_auth(fixture, options)?.layer().layer(router),
            ));
        }
        Mode::TowerOauth2 => {
            let tenant = TenantConfiguration::builder(meta.issuer.as_str())
                .audiences(&[meta.audience.as_str()])
                .build()
                .await?;
            let server = <OAuth2ResourceServer>::builder()
                .add_tenant(tenant)
                .build()
                .await?;
            router.layer(server.into_layer())
        }
    }))
}

/// Serves the keys, builds the mode's app, serves it, and declares it ready only once the
/// self-test has passed.
pub(crate) async fn serve(fixture: Fixture, options: ServeOptions) -> Result<()> {
    idp::spawn(&fixture.meta, fixture.jwks_json.clone()).await?;
    let app = app(&fixture, &options).await?;
    let listener = TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| format!("port {}: {e}", options.port))?;
    let server = match app {
        App::Router(app) => tokio::spawn(axum::serve(listener, app).into_future()),
        App::Outer(app) => tokio::spawn(
            axum::serve(
                listener,
                axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
            )
            .into_future(),
        ),
    };
    selftest::run(options.port, &fixture.selftest, options.mode).await?;
    println!(
        "loadbench: ready mode={} cache={} pid={}",
        options.mode.name(),
        options
            .cache
            .map_or_else(|| String::from("default"), |n| n.to_string()),
        std::process::id()
    );
    server.await??;
    Ok(())
}
