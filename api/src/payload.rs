//! A request payload of our own (a raw stream, a multipart body read field by field)
//! as an operation argument: what poem-openapi's private `impl_apirequest_for_payload!`
//! writes for its own payloads. Check the content type, then parse.

/// `impl ApiExtractor` for a type that implements `Payload` and `ParsePayload`
/// (optionally generic over one type parameter: `payload_extractor!(X<T>, T: Bound)`).
macro_rules! payload_extractor {
    ($ty:ty $(, $param:ident : $bound:path)?) => {
        impl<'a $(, $param: $bound)?> poem_openapi::ApiExtractor<'a> for $ty {
            const TYPES: &'static [poem_openapi::ApiExtractorType] =
                &[poem_openapi::ApiExtractorType::RequestObject];

            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <Self as poem_openapi::payload::Payload>::register(registry);
            }

            fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
                Some(poem_openapi::registry::MetaRequest {
                    description: None,
                    content: vec![poem_openapi::registry::MetaMediaType {
                        content_type: <Self as poem_openapi::payload::Payload>::CONTENT_TYPE,
                        schema: <Self as poem_openapi::payload::Payload>::schema_ref(),
                    }],
                    required: true,
                })
            }

            async fn from_request(
                request: &'a poem::Request,
                body: &mut poem::RequestBody,
                _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                use poem_openapi::payload::Payload as _;
                match request.content_type() {
                    Some(ct) if Self::check_content_type(ct) => {
                        <Self as poem_openapi::payload::ParsePayload>::from_request(request, body)
                            .await
                    }
                    Some(ct) => Err(poem_openapi::error::ContentTypeError::NotSupported {
                        content_type: ct.to_owned(),
                    }
                    .into()),
                    None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
                }
            }
        }
    };
}

pub(crate) use payload_extractor;
