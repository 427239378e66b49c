//! PDFs built in memory, for the benches and the black-box tests (which include this
//! file by path): pages with a text layer, blank scans, and hostile content streams.

use lopdf::{
    Document, Object, Stream,
    content::{Content, Operation},
    dictionary,
};

/// A PDF of one A4 page per content stream, with Helvetica as `/F1` for every page.
pub fn pdf_of_pages(contents: Vec<Stream>) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let kids: Vec<Object> = contents
        .into_iter()
        .map(|content| {
            let content_id = doc.add_object(content);
            doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
            })
            .into()
        })
        .collect();
    let count = i64::try_from(kids.len()).expect("a page count fits");
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("an in-memory PDF saves");
    bytes
}

/// A PDF with a text layer: one page per entry, its text on one line.
pub fn text_pdf<S: AsRef<str>>(pages: &[S]) -> Vec<u8> {
    pdf_of_pages(
        pages
            .iter()
            .map(|text| {
                let content = Content {
                    operations: vec![
                        Operation::new("BT", vec![]),
                        Operation::new("Tf", vec!["F1".into(), 14.into()]),
                        Operation::new("Td", vec![60.into(), 700.into()]),
                        Operation::new("Tj", vec![Object::string_literal(text.as_ref())]),
                        Operation::new("ET", vec![]),
                    ],
                };
                Stream::new(dictionary! {}, content.encode().expect("operations encode"))
            })
            .collect(),
    )
}

/// A scan without a text layer: `pages` blank pages (empty content streams).
#[allow(dead_code)] // not every includer builds scans
pub fn blank_pdf(pages: usize) -> Vec<u8> {
    pdf_of_pages(
        (0..pages)
            .map(|_| Stream::new(dictionary! {}, Vec::new()))
            .collect(),
    )
}

/// One page whose content is `bytes` of nested `q` (save graphics state) operators,
/// after a line of `text` when given, Flate-compressed: a few KiB on disk, MiB once
/// inflated, and ~240 times that when a parser holds every operation.
#[allow(dead_code)] // not every includer builds hostile pages
pub fn q_bomb_pdf_with_text(bytes: usize, text: Option<&str>) -> Vec<u8> {
    let mut content = match text {
        Some(text) => format!("BT /F1 12 Tf 60 700 Td ({text}) Tj ET\n").into_bytes(),
        None => Vec::new(),
    };
    content.extend(b"q ".repeat(bytes / 2));
    let mut stream = Stream::new(dictionary! {}, content);
    stream.compress().expect("the content compresses");
    assert!(stream.content.len() < bytes / 50, "compressed");
    pdf_of_pages(vec![stream])
}
