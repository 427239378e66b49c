//! Processing of stored uploads: turning documents into text.

pub mod local_ocr;
