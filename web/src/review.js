// The review side of an import: committing a dry run, and the marked-up workbook's address.

// Import for real the file a dry run checked: the server still has it, nothing is sent again.
export async function commitJob(id) {
  const response = await fetch(`/jobs/${encodeURIComponent(id)}/commit`, { method: "POST" });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = { message: `HTTP ${response.status}` };
  }
  return { status: response.status, body, retryAfter: response.headers.get("Retry-After") };
}

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
