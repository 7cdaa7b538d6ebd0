//! A request the gRPC transport cannot decode (a message that does not parse, an empty or torn
//! frame, a compressed flag without compression) is the caller's mistake, so it is answered
//! INVALID_ARGUMENT. tonic answers such frames INTERNAL before any handler runs; those answers
//! never carry the `google.rpc` details every answer of this service carries, which is how
//! they are told apart here (the service's own INTERNAL keeps its code).

use http::{HeaderValue, Response};

const GRPC_STATUS: &str = "grpc-status";
const DETAILS: &str = "grpc-status-details-bin";
/// `Code::Internal` and `Code::InvalidArgument` on the wire.
const INTERNAL: &str = "13";
const INVALID_ARGUMENT: &str = "3";

/// Rewrites a trailers-only INTERNAL without details (a decoder refusal) to INVALID_ARGUMENT.
pub fn as_invalid_argument<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    let refusal =
        headers.get(GRPC_STATUS).is_some_and(|v| v == INTERNAL) && !headers.contains_key(DETAILS);
    if refusal {
        headers.insert(GRPC_STATUS, HeaderValue::from_static(INVALID_ARGUMENT));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &'static str, details: bool) -> Response<()> {
        let mut builder = Response::builder().header(GRPC_STATUS, status);
        if details {
            builder = builder.header(DETAILS, "CAo=");
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn only_a_bare_internal_becomes_invalid_argument() {
        let status = |r: Response<()>| r.headers()[GRPC_STATUS].to_str().unwrap().to_owned();
        assert_eq!(status(as_invalid_argument(answer("13", false))), "3");
        assert_eq!(status(as_invalid_argument(answer("13", true))), "13");
        assert_eq!(status(as_invalid_argument(answer("16", false))), "16");
        let ok = as_invalid_argument(Response::new(()));
        assert!(!ok.headers().contains_key(GRPC_STATUS));
    }
}
