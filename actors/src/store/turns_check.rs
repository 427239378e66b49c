//! Every statement that writes outside a transaction waits for SQLite's write turn
//! (`with_db_write!`), checked against the crate's sources (tests only).
//!
//! On SQLite a writer that skips the turn meets the database lock held by whichever
//! transaction has the turn, and SQLite's busy handler sleeps between its tries: under
//! load such a write waits seconds, or fails with "database is locked". Nothing at run
//! time tells a read from a write, so the check reads the code: a function that runs a
//! statement on the bare pool (`with_db!`, `sqlite.pool()`) may not carry one that
//! writes.

/// What starts a statement that writes. `UPDATE` alone would also find `FOR UPDATE`
/// and `DO UPDATE`, which belong to other statements.
fn writes(sql: &str) -> bool {
    sql.contains("INSERT INTO")
        || sql.contains("INSERT OR ")
        || sql.contains("DELETE FROM")
        || sql.contains("REPLACE INTO")
        || sql.match_indices("UPDATE ").any(|(at, _)| {
            let before = sql[..at].trim_end();
            !(before.ends_with("FOR") || before.ends_with("DO"))
        })
}

/// Whether a line opens a function (at any depth, with any visibility).
fn opens_fn(line: &str) -> bool {
    let mut rest = line.trim_start();
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    rest.starts_with("fn ")
}

/// A source's functions, as (first line, text): each from its `fn` line to the `}` at
/// the same indentation (rustfmt's layout), so nothing between two functions (a
/// statement kept in a `const`) is taken for part of either.
fn functions(text: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        if open.is_none() && opens_fn(line) {
            let indent = &line[..line.len() - line.trim_start().len()];
            open = Some(format!("{indent}}}"));
            found.push((line.trim().to_owned(), String::new()));
        }
        if let Some(end) = &open {
            let (_, body) = found.last_mut().expect("a function is open");
            body.push_str(line);
            body.push('\n');
            if line == end || (line.trim_end().ends_with('}') && opens_fn(line)) {
                open = None;
            }
        }
    }
    found
}

/// The names of `const … : &str` statements that write.
fn writing_consts(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("const ") {
        rest = &rest[at + "const ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let value = rest.split(';').next().unwrap_or("");
        if value.contains("&str") && writes(value) {
            names.push(name);
        }
    }
    names
}

/// Functions that run a statement on the bare pool and carry one that writes, as
/// "path: first line".
fn bare_writes(sources: &[(String, String)]) -> Vec<String> {
    let consts: Vec<String> = sources
        .iter()
        .flat_map(|(_, text)| writing_consts(text))
        .collect();
    let mut wrong = Vec::new();
    for (path, text) in sources {
        for (head, body) in functions(text) {
            let bare = body.contains("with_db!(") || body.contains("sqlite.pool()");
            let writing = writes(&body)
                || consts.iter().any(|name| {
                    body.match_indices(name.as_str()).any(|(at, _)| {
                        let next = body[at + name.len()..].chars().next();
                        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                });
            if bare && writing && !body.contains("with_db_write!(") {
                wrong.push(format!("{path}: {head}"));
            }
        }
    }
    wrong
}

#[test]
fn the_check_tells_writes_from_reads() {
    assert!(writes("UPDATE jobs SET state = 'done'"));
    assert!(writes(
        "INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING"
    ));
    assert!(writes("DELETE FROM t"));
    assert!(!writes("SELECT id FROM jobs FOR UPDATE SKIP LOCKED"));
    assert!(!writes("ON CONFLICT (id) DO UPDATE SET n = 1"));
    let source = "const SET: &str = \"UPDATE t SET n = 1\";\n\
                  pub async fn read(db: &Db) {\n    with_db!(db, |pool| q(\"SELECT 1\"))\n}\n\
                  pub async fn write(db: &Db) {\n    with_db!(db, |pool| q(SET))\n}\n\
                  pub async fn turn(db: &Db) {\n    with_db_write!(db, |pool| q(SET))\n}\n";
    let found = bare_writes(&[("x.rs".to_owned(), source.to_owned())]);
    assert_eq!(found, ["x.rs: pub async fn write(db: &Db) {"]);
    // A statement kept in a const between two functions belongs to neither.
    let between = "pub async fn read(db: &Db) {\n    with_db!(db, |pool| q(\"SELECT 1\"))\n}\n\n\
                   pub const SET: &str = \"UPDATE t SET n = 1\";\n";
    assert!(bare_writes(&[("y.rs".to_owned(), between.to_owned())]).is_empty());
}

#[test]
fn statements_that_write_outside_a_transaction_wait_for_the_write_turn() {
    let sources: Vec<(String, String)> = crate::layers::sources()
        .into_iter()
        .filter(|(path, _)| path != "store/turns_check.rs")
        .collect();
    let wrong = bare_writes(&sources);
    assert!(
        wrong.is_empty(),
        "writes on the bare pool, which skip SQLite's write turn (use with_db_write!): \
         {wrong:#?}"
    );
}
