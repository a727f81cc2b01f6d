//! SKU mappings as people and tokens change them: one mapping at a time, or a CSV file of them.
//! Both check each item code against the ERP's item lookup when the ERP can be asked, and both
//! end in the store's transactional save, which releases every order waiting on the SKU.
//!
//! An import is all or nothing: every row is checked first (SKU, item code, a SKU mapped twice
//! in the file, an item code the ERP does not know), and one bad row means nothing is applied
//! and the report lists every bad row with its line and the reason. A good file is applied in
//! one transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};

use crate::audit::Actor;
use crate::connectors::{DeliveryError, ErpApi};
use crate::domain::{ItemCode, Sku};
use crate::store::{ImportApplied, MappingRow, Released, SkuMapping, Store, StoreError};

/// The most data rows one file may hold; larger catalogues are imported in several files.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// How many item lookups run at once during an import (the connector's rate limit still holds).
const LOOKUPS_AT_ONCE: usize = 8;

/// Why a mapping could not be saved (nothing was).
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The input is wrong; the sentence says how.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A saved mapping.
#[derive(Clone, Debug)]
pub struct Saved {
    /// The mapping as stored.
    pub mapping: SkuMapping,
    /// The orders it released.
    pub released: Released,
    /// Set when the ERP could not be asked about the item code: why, as a sentence.
    pub unchecked: Option<String>,
}

/// A row that keeps a file from being imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRow {
    /// The line in the file (the header is line 1).
    pub line: u64,
    /// The SKU as written, possibly empty.
    pub sku: String,
    /// What is wrong, as a sentence.
    pub reason: String,
}

/// What an import found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read (blank lines are not counted).
    pub rows: usize,
    /// The rows that are wrong; when there is any, nothing was applied.
    pub rejected: Vec<RejectedRow>,
    /// What was applied; `None` when the file was refused.
    pub applied: Option<ImportApplied>,
    /// Set when some item codes could not be checked with the ERP: why.
    pub unchecked: Option<String>,
}

impl ImportReport {
    /// The outcome as one or two sentences.
    pub fn summary(&self) -> String {
        let Some(a) = &self.applied else {
            let bad = self.rejected.len();
            let rows = plural(self.rows as u64, "row");
            return format!(
                "Nothing was imported: {bad} of {rows} {} wrong. Fix {} and import the file again.",
                if bad == 1 { "is" } else { "are" },
                if bad == 1 { "it" } else { "them" },
            );
        };
        let mut text = format!(
            "Imported {}: {} new, {} changed, {} already so.",
            plural(self.rows as u64, "row"),
            a.created,
            a.changed,
            a.unchanged
        );
        if a.released_tasks > 0 {
            text.push_str(&format!(
                " {} released and on {} way to the ERP.",
                plural(a.released_tasks, "order"),
                if a.released_tasks == 1 {
                    "its"
                } else {
                    "their"
                }
            ));
        }
        if let Some(why) = &self.unchecked {
            text.push(' ');
            text.push_str(why);
        }
        text
    }
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// What the ERP said about an item code.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lookup {
    Known,
    Unknown,
    /// It could not be asked: why.
    Unavailable(String),
}

/// The one thing mappings need from the ERP: whether it knows an item code.
#[async_trait]
pub trait ItemLookup: Send + Sync {
    /// Whether the ERP's catalogue has `code`; an error when it cannot be asked.
    async fn item_exists(&self, code: &str) -> Result<bool, DeliveryError>;
}

/// The ERP connector's item lookup.
pub struct ErpItems(pub Arc<dyn ErpApi>);

#[async_trait]
impl ItemLookup for ErpItems {
    async fn item_exists(&self, code: &str) -> Result<bool, DeliveryError> {
        self.0.item_exists(code).await
    }
}

/// SKU mapping operations over a store and, when this process talks to one, the ERP.
#[derive(Clone)]
pub struct Mappings {
    store: Store,
    erp: Option<Arc<dyn ItemLookup>>,
}

impl Mappings {
    /// Operations on `store`; item codes are checked with `erp` when given.
    pub fn new(store: Store, erp: Option<Arc<dyn ItemLookup>>) -> Mappings {
        Mappings { store, erp }
    }

    async fn lookup(&self, code: &ItemCode) -> Lookup {
        let Some(erp) = &self.erp else {
            return Lookup::Unavailable("no ERP connection is configured for this server".into());
        };
        match erp.item_exists(code.as_str()).await {
            Ok(true) => Lookup::Known,
            Ok(false) => Lookup::Unknown,
            Err(e) => Lookup::Unavailable(e.to_string()),
        }
    }

    /// Maps `sku` to `item_code` and releases the orders waiting on it. An item code the ERP
    /// says it does not have is refused; when the ERP cannot be asked, the mapping is saved and
    /// [`Saved::unchecked`] says so (a wrong code then comes back as the ERP's refusal).
    pub async fn save(
        &self,
        sku: &str,
        item_code: &str,
        by: &Actor,
    ) -> Result<Saved, MappingError> {
        let sku = Sku::parse(sku)
            .map_err(|e| MappingError::Invalid(format!("That SKU cannot be used: {e}.")))?;
        let code = ItemCode::parse(item_code)
            .map_err(|e| MappingError::Invalid(format!("That item code cannot be used: {e}.")))?;
        let unchecked = match self.lookup(&code).await {
            Lookup::Known => None,
            Lookup::Unknown => return Err(unknown_item(&code)),
            Lookup::Unavailable(why) => Some(format!(
                "The item code was not checked with the ERP ({why}); if it is wrong, the ERP will refuse the orders and they come back to the queue."
            )),
        };
        let (mapping, released) = self
            .store
            .save_sku_mapping(sku.as_str(), code.as_str(), by)
            .await?;
        Ok(Saved {
            mapping,
            released,
            unchecked,
        })
    }

    /// Imports a CSV file with a header naming `sku` and `item_code` columns (any order, any
    /// case; other columns, such as those an export adds, are ignored). All or nothing: see the
    /// module's documentation. A file that cannot be read as such at all is an error.
    pub async fn import_csv(&self, text: &str, by: &Actor) -> Result<ImportReport, MappingError> {
        let (mut rows, mut rejected, count) = read_csv(text)?;
        let unchecked = self.check_items(&mut rows, &mut rejected).await;
        rejected.sort_by_key(|r| r.line);
        let mut report = ImportReport {
            rows: count,
            rejected,
            applied: None,
            unchecked,
        };
        if report.rejected.is_empty() {
            let rows: Vec<MappingRow> = rows.into_iter().map(|(_, row)| row).collect();
            report.applied = Some(self.store.import_sku_mappings(&rows, by).await?);
        }
        Ok(report)
    }

    /// Asks the ERP about each distinct item code once, a few at a time; rows whose code it does
    /// not know move to `rejected`. After the first lookup that fails, the rest are not tried
    /// (an ERP that is down would otherwise be asked thousands of times). Returns the sentence
    /// to show when some codes went unchecked.
    async fn check_items(
        &self,
        rows: &mut Vec<(u64, MappingRow)>,
        rejected: &mut Vec<RejectedRow>,
    ) -> Option<String> {
        if rows.is_empty() {
            return None;
        }
        let codes: Vec<ItemCode> = rows
            .iter()
            .map(|(_, r)| r.item_code.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|c| ItemCode::parse(&c).ok())
            .collect();
        let given_up = AtomicBool::new(false);
        let results: HashMap<String, Lookup> = stream::iter(codes)
            .map(|code| {
                let given_up = &given_up;
                async move {
                    if given_up.load(Ordering::Relaxed) {
                        return (code.as_str().to_owned(), Lookup::Unavailable(String::new()));
                    }
                    let found = self.lookup(&code).await;
                    if matches!(found, Lookup::Unavailable(_)) {
                        given_up.store(true, Ordering::Relaxed);
                    }
                    (code.as_str().to_owned(), found)
                }
            })
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .collect()
            .await;
        rows.retain(|(line, row)| match results.get(&row.item_code) {
            Some(Lookup::Unknown) => {
                rejected.push(RejectedRow {
                    line: *line,
                    sku: row.sku.clone(),
                    reason: format!(
                        "The ERP has no item {}. Check the code in the ERP's item list.",
                        row.item_code
                    ),
                });
                false
            }
            _ => true,
        });
        let unchecked = results
            .values()
            .filter(|l| matches!(l, Lookup::Unavailable(_)))
            .count();
        let why = results.values().find_map(|l| match l {
            Lookup::Unavailable(why) if !why.is_empty() => Some(why.clone()),
            _ => None,
        });
        (unchecked > 0).then(|| {
            format!(
                "{} not checked with the ERP ({}); a wrong one will come back as the ERP's refusal of the order.",
                if unchecked == 1 { "1 item code was".to_string() } else { format!("{unchecked} item codes were") },
                why.unwrap_or_else(|| "it could not be asked".into())
            )
        })
    }

    /// Every mapping as CSV: `sku,item_code,updated_at,updated_by`, by SKU. The file imports
    /// back unchanged.
    pub async fn export_csv(&self) -> Result<String, StoreError> {
        let mappings = self.store.all_sku_mappings().await?;
        let mut out = csv::Writer::from_writer(Vec::with_capacity(64 + mappings.len() * 48));
        let write = |out: &mut csv::Writer<Vec<u8>>| -> csv::Result<()> {
            out.write_record(["sku", "item_code", "updated_at", "updated_by"])?;
            for m in &mappings {
                out.write_record([
                    m.sku.as_str(),
                    m.item_code.as_str(),
                    &m.updated_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    m.updated_by.as_str(),
                ])?;
            }
            out.flush()?;
            Ok(())
        };
        write(&mut out).map_err(|e| StoreError::Invalid(format!("writing CSV failed: {e}")))?;
        let bytes = out
            .into_inner()
            .map_err(|e| StoreError::Invalid(format!("writing CSV failed: {e}")))?;
        Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8"))
    }
}

fn unknown_item(code: &ItemCode) -> MappingError {
    MappingError::Invalid(format!(
        "The ERP has no item {code}. Check the code in the ERP's item list; nothing was saved."
    ))
}

/// The rows of a file that parse (with their line), the rows that do not, and how many data
/// rows there were. Errors only when the file as a whole is unusable.
#[allow(clippy::type_complexity)]
fn read_csv(text: &str) -> Result<(Vec<(u64, MappingRow)>, Vec<RejectedRow>, usize), MappingError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(MappingError::Invalid(
            "The file is empty. It needs a first line naming the columns sku,item_code and then one mapping per line.".into(),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| MappingError::Invalid(format!("The first line cannot be read as CSV: {e}.")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(sku_at), Some(code_at)) = (column("sku"), column("item_code")) else {
        return Err(MappingError::Invalid(format!(
            "The first line must name the columns sku and item_code; it reads \"{}\".",
            headers.iter().collect::<Vec<_>>().join(",")
        )));
    };
    // Lines from byte offsets (past any blank lines the reader skipped before the record): the
    // reader's own line count does not count blank lines.
    let newlines: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
    let bytes = text.as_bytes();
    let line_at = |position: Option<&csv::Position>| {
        position.map_or(0, |p| {
            let mut at = usize::try_from(p.byte())
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
                at += 1;
            }
            newlines.partition_point(|&n| n < at) as u64 + 1
        })
    };
    let mut good: Vec<(u64, MappingRow)> = Vec::new();
    let mut bad: Vec<RejectedRow> = Vec::new();
    let mut first_line_of: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut count = 0usize;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                count += 1;
                let line = line_at(e.position());
                bad.push(RejectedRow {
                    line,
                    sku: String::new(),
                    reason: format!("This line cannot be read as CSV: {e}."),
                });
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        count += 1;
        if count > MAX_IMPORT_ROWS {
            return Err(MappingError::Invalid(format!(
                "The file has more than {MAX_IMPORT_ROWS} mappings; split it into files of at most {MAX_IMPORT_ROWS} rows."
            )));
        }
        let line = line_at(record.position());
        let raw_sku = record.get(sku_at).unwrap_or("").to_string();
        let raw_code = record.get(code_at).unwrap_or("");
        let reject = |reason: String| RejectedRow {
            line,
            sku: raw_sku.clone(),
            reason,
        };
        let sku = match Sku::parse(&raw_sku) {
            Ok(s) => s,
            Err(e) => {
                bad.push(reject(format!("The SKU cannot be used: {e}.")));
                continue;
            }
        };
        let code = match ItemCode::parse(raw_code) {
            Ok(c) => c,
            Err(e) => {
                bad.push(reject(format!("The item code cannot be used: {e}.")));
                continue;
            }
        };
        match first_line_of.get(sku.as_str()) {
            Some((_, earlier)) if earlier == code.as_str() => continue,
            Some((first, earlier)) => {
                bad.push(reject(format!(
                    "SKU {sku} is already mapped to {earlier} on line {first}; a file maps each SKU once."
                )));
                continue;
            }
            None => {
                first_line_of.insert(sku.as_str().to_owned(), (line, code.as_str().to_owned()));
            }
        }
        good.push((
            line,
            MappingRow {
                sku: sku.as_str().to_owned(),
                item_code: code.as_str().to_owned(),
            },
        ));
    }
    if count == 0 {
        return Err(MappingError::Invalid(
            "The file has a header but no mappings.".into(),
        ));
    }
    Ok((good, bad, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Vec<(u64, MappingRow)>, Vec<RejectedRow>, usize) {
        read_csv(text).expect("a readable file")
    }

    #[test]
    fn reads_columns_by_name_in_any_order_and_case_ignoring_others() {
        let (good, bad, n) =
            read("\u{feff}Item_Code,updated_by,SKU\nERP-1,ada,TEE-1\n\n  ERP-2 , x ,  TEE-2  \n");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(n, 2);
        assert_eq!(
            good,
            vec![
                (
                    2,
                    MappingRow {
                        sku: "TEE-1".into(),
                        item_code: "ERP-1".into()
                    }
                ),
                (
                    4,
                    MappingRow {
                        sku: "TEE-2".into(),
                        item_code: "ERP-2".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn every_bad_row_is_named_with_its_line_and_reason() {
        let (good, bad, n) = read(
            "sku,item_code\nTEE-1,ERP-1\n,ERP-2\nTEE-3,ERP 3\nTEE-1,ERP-9\nTEE-1,ERP-1\nTEE-4\n",
        );
        assert_eq!(n, 6);
        assert_eq!(good.len(), 1);
        let lines: Vec<(u64, &str)> = bad.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert_eq!(
            lines,
            vec![
                (3, "The SKU cannot be used: a SKU cannot be empty."),
                (
                    4,
                    "The item code cannot be used: an ERP item code cannot contain spaces or other whitespace."
                ),
                (
                    5,
                    "SKU TEE-1 is already mapped to ERP-1 on line 2; a file maps each SKU once."
                ),
                (
                    7,
                    "The item code cannot be used: an ERP item code cannot be empty."
                ),
            ]
        );
    }

    #[test]
    fn a_file_without_the_columns_or_rows_is_refused_as_a_whole() {
        let err = |t: &str| read_csv(t).unwrap_err().to_string();
        assert!(err("").contains("The file is empty"));
        assert!(err("product,code\nA,B\n").contains("must name the columns sku and item_code"));
        assert!(err("sku,item_code\n\n").contains("no mappings"));
        let big = format!("sku,item_code\n{}", "A,B\n".repeat(MAX_IMPORT_ROWS + 1));
        assert!(err(&big).contains("more than 10000"));
    }

    #[test]
    fn quoted_fields_may_hold_commas() {
        let (good, bad, _) = read("sku,item_code\n\"TEE, large\",ERP-1\n");
        assert!(bad.is_empty());
        assert_eq!(good[0].1.sku, "TEE, large");
    }

    #[test]
    fn summaries_read_as_sentences() {
        let refused = ImportReport {
            rows: 3,
            rejected: vec![RejectedRow {
                line: 2,
                sku: "A".into(),
                reason: "x".into(),
            }],
            applied: None,
            unchecked: None,
        };
        assert_eq!(
            refused.summary(),
            "Nothing was imported: 1 of 3 rows is wrong. Fix it and import the file again."
        );
        let done = ImportReport {
            rows: 3,
            rejected: vec![],
            applied: Some(ImportApplied {
                created: 1,
                changed: 1,
                unchanged: 1,
                released_tasks: 2,
                resolved_exceptions: 2,
            }),
            unchecked: None,
        };
        assert_eq!(
            done.summary(),
            "Imported 3 rows: 1 new, 1 changed, 1 already so. 2 orders released and on their way to the ERP."
        );
    }
}
