//! The OpenAPI document, derived from the handlers and their types so it cannot drift.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{error, ingest, reads};

#[derive(OpenApi)]
#[openapi(
    info(title = "energy platform billing API", description = "Meter readings in; history, carbon, recommendations and alerts out."),
    paths(ingest::ingest_one, ingest::ingest_batch, reads::consumption, reads::recommendations, reads::alerts),
    components(schemas(error::ErrorBody, error::ErrorDetail, ingest::AcceptedBody, ingest::BatchBody, ingest::BatchItemResult)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document served at `/api/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
