//! The methods each path answers, read from the OpenAPI document, for the `Allow`
//! header a 405 must carry (RFC 9110 §15.5.6).

use std::collections::BTreeSet;

/// Path templates of the document and the methods each one answers.
#[derive(Debug, Default)]
pub struct AllowedMethods {
    paths: Vec<(Vec<Segment>, BTreeSet<&'static str>)>,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param,
}

/// HTTP methods in the order `Allow` lists them.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl AllowedMethods {
    /// From the served document's `paths`.
    pub fn from_spec(doc: &serde_json::Value) -> Self {
        let mut paths = Vec::new();
        for (path, ops) in doc
            .get("paths")
            .and_then(|p| p.as_object())
            .into_iter()
            .flatten()
        {
            let mut methods = BTreeSet::new();
            for method in ops.as_object().into_iter().flat_map(|o| o.keys()) {
                let upper = method.to_ascii_uppercase();
                if let Some(known) = METHODS.iter().find(|m| **m == upper) {
                    methods.insert(*known);
                }
            }
            // poem answers HEAD wherever it answers GET.
            if methods.contains("GET") {
                methods.insert("HEAD");
            }
            paths.push((segments_of_template(path), methods));
        }
        // Literal segments win over parameters (`/api/projects/invitations/…` before
        // `/api/projects/{project_id}/…`), as in the router.
        paths
            .sort_by_key(|(segments, _)| segments.iter().filter(|s| **s == Segment::Param).count());
        Self { paths }
    }

    /// The `Allow` value for a request path: the document's methods for the template it
    /// matches, else `GET, HEAD` (every other route the app serves is a GET).
    pub fn allow(&self, path: &str) -> String {
        let request: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let methods = self
            .paths
            .iter()
            .find(|(template, _)| matches(template, &request))
            .map(|(_, methods)| methods.clone())
            .unwrap_or_else(|| BTreeSet::from(["GET", "HEAD"]));
        METHODS
            .iter()
            .filter(|m| methods.contains(*m))
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn segments_of_template(path: &str) -> Vec<Segment> {
    path.trim_end_matches('/')
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Param
            } else {
                Segment::Literal(s.to_owned())
            }
        })
        .collect()
}

fn matches(template: &[Segment], request: &[&str]) -> bool {
    template.len() == request.len()
        && template.iter().zip(request).all(|(t, r)| match t {
            Segment::Param => !r.is_empty(),
            Segment::Literal(l) => l == r,
        })
}

#[cfg(test)]
mod tests {
    use super::AllowedMethods;

    #[test]
    fn allow_lists_the_path_methods() {
        let doc = serde_json::json!({"paths": {
            "/api/uploads/{id}": {"get": {}, "head": {}, "patch": {}, "delete": {}},
            "/api/projects/{project_id}": {"get": {}, "put": {}, "delete": {}},
            "/api/projects/invitations/{token}/accept": {"post": {}},
            "/api/projects/{project_id}/restore": {"post": {}},
        }});
        let allowed = AllowedMethods::from_spec(&doc);
        assert_eq!(allowed.allow("/api/uploads/1"), "GET, HEAD, PATCH, DELETE");
        assert_eq!(allowed.allow("/api/projects/x"), "GET, HEAD, PUT, DELETE");
        assert_eq!(allowed.allow("/api/projects/invitations/t/accept"), "POST");
        assert_eq!(allowed.allow("/metrics"), "GET, HEAD");
    }
}
