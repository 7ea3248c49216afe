//! The OpenAPI 3.1 document. Each route brings its own entry: the router
//! registers handlers through utoipa-axum's `routes!` (see `server::app`),
//! which reads their `#[utoipa::path]` annotations, so a route cannot be
//! served without being described, nor described without being served.
//!
//! This module holds the rest: the document's frame ([`ApiDoc`]), the
//! problem answers every route shares ([`answers`]), and two [`Modify`]s for
//! what an annotation cannot say, plus one for a utoipa bug.
//!
//! # Layout
//! * `answers` – the problem answers, one type per status.
//! * `tests`   – the document against the router and against `docs/api.md`.

pub(super) mod answers;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Json;
use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::problem::ProblemDetails as Problem;
use seckill_client::api::{CouponDto, GrabRequest, PromotionDto, PromotionRequest, StatusDto};

/// The frame of the API description served at `/openapi.json`: info, tags
/// and the shared schemas. The paths are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SecKill",
        description = "Flash sales: a promotion offers a fixed number of coupons; customers race to grab one. \
                       Every error is application/problem+json; see docs/api.md."
    ),
    components(schemas(PromotionRequest, GrabRequest, PromotionDto, CouponDto, StatusDto, Problem)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "admin", description = "Create, change and cancel promotions"),
        (name = "command", description = "Grab a coupon"),
        (name = "query", description = "Coupons and promotions, and their live feed"),
        (name = "operations", description = "Metrics and probes"),
    )
)]
pub(super) struct ApiDoc;

/// One event stream of the document: its path, the SSE `event` names it
/// sends, what its `id` is, and the schema of its `data`.
struct EventStream {
    path: &'static str,
    events: &'static [&'static str],
    what: &'static str,
    id: &'static str,
    data: &'static str,
}
/// The two kinds of credentials (docs/security.md): the admin token on
/// `/admin`, and customer JWTs on a grab and a coupon list when the server
/// identifies customers by token.
pub(super) struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = document.components.get_or_insert_with(Default::default);
        let bearer = |format: Option<&str>, description: &str| {
            let mut http = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description));
            if let Some(format) = format {
                http = http.bearer_format(format);
            }
            SecurityScheme::Http(http.build())
        };
        components.add_security_scheme(
            "adminToken",
            bearer(None, "The server's admin token (`--admin-token`)"),
        );
        components.add_security_scheme(
            "customerToken",
            bearer(
                Some("JWT"),
                "A customer's JWT, required with `--customer-auth jwt`: the customer is its `sub`",
            ),
        );
    }
}

/// The document's event streams, whose items [`EventStreamItems`] describes.
const EVENT_STREAMS: [EventStream; 2] = [
    EventStream {
        path: "/query/promotions/{promotionId}/events",
        events: &["promotion"],
        what: "One server-sent event: `promotion`, whose data is the promotion as JSON.",
        id: "The last event sequence number the promotion includes.",
        data: "PromotionDto",
    },
    EventStream {
        path: "/events",
        // Every type the store can hold, from the domain's own list.
        events: &seckill_domain::PromotionEvent::TYPES,
        what: "One server-sent event per stored event: `event` is its type, `data` the event with its positions as JSON.",
        id: "The event's global position; send it back as `Last-Event-ID` to resume after it.",
        data: "FeedEventDto",
    },
];

/// Describes what each event stream's 200 carries: events whose `data` is
/// JSON of a schema. An annotation can only name a body type, which would
/// say the whole stream is one such body; readers of `text/event-stream`
/// (and schemathesis) check each event, as `{event, id, data, retry}`.
pub(super) struct EventStreamItems;

impl Modify for EventStreamItems {
    fn modify(&self, document: &mut Document) {
        for stream in &EVENT_STREAMS {
            describe(document, stream);
        }
    }
}

fn describe(document: &mut Document, stream: &EventStream) {
    let content = document
        .paths
        .paths
        .get_mut(stream.path)
        .and_then(|item| item.get.as_mut())
        .and_then(|operation| operation.responses.responses.get_mut("200"))
        .and_then(|response| match response {
            RefOr::T(response) => response.content.get_mut("text/event-stream"),
            RefOr::Ref(_) => None,
        });
    let Some(content) = content else { return };
    let string = || ObjectBuilder::new().schema_type(Type::String);
    // JSON Schema's `contentSchema` has no builder method in utoipa 5;
    // extensions are written as they are, so it goes in as one.
    let data_schema: Extensions = [(
        "contentSchema",
        serde_json::to_value(Ref::from_schema_name(stream.data)).unwrap_or_default(),
    )]
    .into_iter()
    .collect();
    content.schema = Some(RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(stream.what))
            .required("data")
            .property(
                "event",
                string().enum_values(Some(stream.events.iter().copied())),
            )
            .property("id", string().description(Some(stream.id)))
            .property(
                "retry",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .property(
                "data",
                string()
                    .content_media_type("application/json")
                    .extensions(Some(data_schema)),
            )
            .build(),
    )));
}

/// Writes links as OpenAPI spells them. utoipa 5 serialises a link's
/// members in snake case (`operation_id`, `request_body`), which no reader
/// knows, so every response's links move to an extension named `links`
/// whose members are camel case. Remove this once utoipa spells them right.
pub(super) struct CamelCaseLinks;

impl Modify for CamelCaseLinks {
    fn modify(&self, document: &mut Document) {
        let operations = document.paths.paths.values_mut().flat_map(|item| {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
        });
        let responses = operations.flat_map(|operation| operation.responses.responses.values_mut());
        for response in responses {
            let RefOr::T(response) = response else {
                continue;
            };
            if response.links.is_empty() {
                continue;
            }
            let links: serde_json::Map<_, _> = std::mem::take(&mut response.links)
                .into_iter()
                .map(|(name, link)| (name, camel_case_members(serde_json::to_value(link))))
                .collect();
            response
                .extensions
                .get_or_insert_with(Extensions::default)
                .insert("links".to_owned(), links.into());
        }
    }
}

/// The object's own member names in camel case; nested values as they are
/// (a link's request body is the linked operation's, spelled its own way).
fn camel_case_members(value: serde_json::Result<serde_json::Value>) -> serde_json::Value {
    let Ok(serde_json::Value::Object(members)) = value else {
        return serde_json::Value::Null;
    };
    let camel = |name: String| {
        let mut words = name.split('_');
        let first = words.next().unwrap_or_default().to_owned();
        words.fold(first, |mut camel, word| {
            let mut letters = word.chars();
            camel.extend(letters.next().map(|c| c.to_ascii_uppercase()));
            camel.push_str(letters.as_str());
            camel
        })
    };
    members
        .into_iter()
        .map(|(name, value)| (camel(name), value))
        .collect()
}

/// Example times for a new promotion relative to `now` (opening now, for an
/// hour), so the example request creates a promotion, as a client or a
/// fuzzer trying the examples expects; a fixed time would be refused as
/// already over or too far ahead once the calendar moves on. Applied to
/// each answer of `/openapi.json`.
pub(super) struct LiveExamples {
    /// The time of the request.
    pub(super) now: DateTime<Utc>,
}

impl Modify for LiveExamples {
    fn modify(&self, document: &mut Document) {
        let now = self.now.trunc_subsecs(0);
        let Some(components) = document.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(request))) =
            components.schemas.get_mut("PromotionRequest")
        else {
            return;
        };
        for (property, time) in [
            ("publishTime", now),
            ("finishTime", now + Duration::hours(1)),
        ] {
            if let Some(RefOr::T(Schema::Object(property))) = request.properties.get_mut(property) {
                property.example = Some(time.to_rfc3339_opts(SecondsFormat::Secs, true).into());
            }
        }
    }
}

/// `GET /openapi.json`: the router's document with live example times.
pub(super) async fn document(document: Arc<Document>) -> Json<Document> {
    let mut document = Document::clone(&document);
    LiveExamples { now: Utc::now() }.modify(&mut document);
    Json(document)
}
