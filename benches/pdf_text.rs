//! Time of reading a PDF's text layer (`alta_actors::processing::local_ocr::extract`, in
//! process, no child) against its page count: it should grow linearly (issue 14: 1,000
//! pages took 0.8 s, 2,000 3 s, 3,000 7.6 s when every page walked the page tree).
//!
//! ```text
//! cargo bench --bench pdf_text -- [PAGES[,PAGES...]]      (default 1000,2000,3000)
//! ```
//!
//! One line per size on stdout: pages, then milliseconds and microseconds per page of
//! `extract`, then of the former way (lopdf's `extract_text_chunks` page by page, which
//! walks the whole page tree for every page) for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use alta_actors::processing::local_ocr::{LocalOcrConfig, extract};
use lopdf::Document;

#[path = "common/pdf.rs"]
mod pdf;

/// `pages` pages of text.
fn text_pdf(pages: usize) -> Vec<u8> {
    let texts: Vec<String> = (0..pages)
        .map(|n| format!("Page {n} of the bench. A second sentence of words."))
        .collect();
    pdf::text_pdf(&texts)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "1000,2000,3000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("page counts"))
        .collect();
    let mut cfg = LocalOcrConfig::discover();
    cfg.tesseract = None;
    cfg.pdftoppm = None;
    cfg.timeout = Duration::from_secs(3600);
    cfg.page_timeout = Duration::from_secs(3600);
    cfg.max_pages = usize::MAX;
    let dir = tempfile::tempdir().unwrap();
    println!("pages\tms\tus_per_page\tformer_ms\tformer_us_per_page");
    for pages in sizes {
        let path = dir.path().join(format!("{pages}.pdf"));
        std::fs::write(&path, text_pdf(pages)).unwrap();
        let started = Instant::now();
        let x = extract(&path, "pdf", &cfg).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(x.pages.len(), pages);
        let started = Instant::now();
        let doc = Document::load(&path).unwrap();
        let numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
        let mut chars = 0usize;
        for number in numbers {
            for chunk in doc.extract_text_chunks(&[number]).into_iter().flatten() {
                chars += chunk.len();
            }
        }
        let former = started.elapsed();
        assert!(chars > 0);
        println!(
            "{pages}\t{}\t{:.1}\t{}\t{:.1}",
            elapsed.as_millis(),
            elapsed.as_secs_f64() * 1e6 / pages as f64,
            former.as_millis(),
            former.as_secs_f64() * 1e6 / pages as f64
        );
    }
}
