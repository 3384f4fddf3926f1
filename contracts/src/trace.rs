//! W3C trace context (`traceparent`) as it travels with a reading: billing starts a trace or
//! continues the caller's, the Kafka message carries it, the recommender passes it on to the
//! carbon function and into the alert. Parsing and formatting are OpenTelemetry's
//! `TraceContextPropagator`; this module only decides between continuing and starting.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use crate::names::HEADER_TRACEPARENT;

/// A `traceparent` for the next hop: the same trace as `incoming` when that is a valid W3C
/// trace context, else a new trace; always a new span id for this service's own work.
pub fn continue_or_start(incoming: Option<&str>) -> String {
    let ids = RandomIdGenerator::default();
    let parent = incoming.and_then(remote_context);
    let (trace_id, flags) = match &parent {
        Some(parent) => (parent.trace_id(), parent.trace_flags()),
        None => (ids.new_trace_id(), TraceFlags::SAMPLED),
    };
    let own = SpanContext::new(
        trace_id,
        ids.new_span_id(),
        flags,
        false,
        TraceState::default(),
    );
    inject(&own)
}

/// The trace id (32 hex digits) of a valid `traceparent`, for log fields.
pub fn trace_id(traceparent: &str) -> Option<String> {
    remote_context(traceparent).map(|context| context.trace_id().to_string())
}

fn remote_context(traceparent: &str) -> Option<SpanContext> {
    let carrier = HashMap::from([(HEADER_TRACEPARENT.to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.clone())
}

fn inject(span_context: &SpanContext) -> String {
    let context = Context::new().with_remote_span_context(span_context.clone());
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    // The propagator always writes traceparent for a valid span context, and ours is valid:
    // both ids come from the random generator, which never yields the all-zero id.
    carrier
        .remove(HEADER_TRACEPARENT)
        .expect("a valid span context has a traceparent")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn continues_the_callers_trace_with_a_new_span() {
        let next = continue_or_start(Some(CALLER));
        assert_eq!(
            trace_id(&next).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_ne!(next, CALLER, "the span id must be this service's own");
    }

    #[test]
    fn starts_a_new_trace_when_there_is_none_or_it_is_invalid() {
        for incoming in [
            None,
            Some("garbage"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ] {
            let next = continue_or_start(incoming);
            let id = trace_id(&next).expect("a new valid trace");
            assert_ne!(id, "00000000000000000000000000000000");
        }
    }

    #[test]
    fn two_new_traces_differ() {
        assert_ne!(
            trace_id(&continue_or_start(None)),
            trace_id(&continue_or_start(None))
        );
    }
}
