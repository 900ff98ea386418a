//! Every input once: an output whose parts name a path twice (two runs that
//! wrote it at once before outputs were locked, or a retry of failed inputs)
//! is repaired before its manifest is written.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, RecordBatch};

use crate::parts::{open_part, path_column};
use crate::{OutputDir, PartKind, Scan, ScannedPart, StoreError};

impl OutputDir {
    /// Scans the output and makes every input appear at most once across its
    /// parts: a path in several features parts keeps its first row (parts in
    /// run and sequence order); a path with a features row loses its errors
    /// rows; among errors rows, the newest run's wins (a retried input's last
    /// outcome). Parts that lose rows are rewritten under the same name,
    /// atomically; parts left empty are deleted.
    pub fn scan_repaired(&self) -> Result<Scan, StoreError> {
        let mut scan = self.scan()?;
        let mut seen: HashSet<String> = HashSet::new();
        let order: Vec<usize> = {
            let features =
                (0..scan.parts.len()).filter(|&i| scan.parts[i].kind == PartKind::Features);
            let errors = (0..scan.parts.len())
                .rev()
                .filter(|&i| scan.parts[i].kind == PartKind::Errors);
            features.chain(errors).collect()
        };
        for i in order {
            let part = &mut scan.parts[i];
            let drop: HashSet<String> = part
                .paths
                .iter()
                .filter(|p| seen.contains(p.as_str()))
                .cloned()
                .collect();
            if !drop.is_empty() {
                tracing::warn!(
                    part = %part.file,
                    rows = drop.len(),
                    "dropping rows of inputs another part already holds"
                );
                self.rewrite_without(part, &drop)?;
            }
            seen.extend(part.paths.iter().cloned());
        }
        scan.parts.retain(|p| !p.paths.is_empty());
        Ok(scan)
    }

    /// Rewrites `part` without the rows whose path is in `drop` (deletes it
    /// when none is left), keeping its metadata.
    pub(crate) fn rewrite_without(
        &self,
        part: &mut ScannedPart,
        drop: &HashSet<String>,
    ) -> Result<(), StoreError> {
        let shown = self.root().describe(&part.file);
        let builder = open_part(self.root(), &part.file)?;
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned();
        let schema = builder.schema().clone();
        let reader = builder
            .build()
            .map_err(StoreError::parquet(shown.as_str()))?;
        let mut kept = Vec::new();
        for batch in reader {
            let batch = batch.map_err(StoreError::parquet(shown.as_str()))?;
            let paths = path_column(&batch, &shown)?;
            let keep: BooleanArray = (0..paths.len())
                .map(|i| Some(!drop.contains(paths.value(i))))
                .collect();
            let filtered = arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(|e| StoreError::Arrow(e.to_string()))?;
            if filtered.num_rows() > 0 {
                kept.push(filtered);
            }
        }
        part.paths.retain(|p| !drop.contains(p));
        if kept.is_empty() {
            return Ok(self.root().delete(&part.file)?);
        }
        let whole = arrow_select::concat::concat_batches(&Arc::clone(&schema), &kept)
            .map_err(|e| StoreError::Arrow(e.to_string()))?;
        let whole = RecordBatch::try_new(schema, whole.columns().to_vec())
            .map_err(|e| StoreError::Arrow(e.to_string()))?;
        self.write_batch(&part.file, &whole, kv)?;
        Ok(())
    }
}
