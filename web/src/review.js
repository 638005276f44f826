// The review side of an import: committing a dry run, and the marked-up workbook's address.

export function markedUpUrl(id) {
  return `/jobs/${encodeURIComponent(id)}/problems.xlsx`;
}

// True while the server keeps the job's upload (for "Import now" and the marked-up workbook).
export function isKept(job) {
  return Boolean(job && job.kept_until && job.kept_until * 1000 > Date.now());
}

export function showValue(value) {
  return value === null || value === undefined ? "" : String(value);
}

// Each mode in a person's words: [value, label, what it does].
export const MODES = [
  ["upsert", "Update existing rows and add new ones", "rows whose key is in the table are updated, the others added"],
  ["append", "Add new rows", "every row is added; a key already in the table is a problem"],
  ["replace", "Replace the whole table", "the table's rows are deleted first"],
];

export const modeWords = (mode) => (MODES.find(([value]) => value === mode)?.[1] ?? mode).toLowerCase();

export const ENDED = ["done", "failed"];
