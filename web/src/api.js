// The server's HTTP API, as the page uses it.

// The session's CSRF token (from /session): sent in a header with every state-changing request, which a page
// of another site cannot do. The session cookie itself is HttpOnly: this script never sees it.
let csrf = null;
const CSRF_HEADER = "X-Sheetstream-CSRF";

async function sessionAnswer(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return { signedIn: false, status: response.status, message: body.message };
  csrf = body.csrf;
  return { signedIn: true, ...body };
}

// Who is signed in (the cookie, or a proxy's sign-on), or why not.
export async function fetchSession() {
  return sessionAnswer(await fetch("/session"));
}

// Exchange a token for a session cookie; the token itself is not kept anywhere by the page.
export async function signIn(token) {
  return sessionAnswer(
    await fetch("/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }) }),
  );
}

export async function signOut() {
  await fetch("/session", { method: "DELETE", headers: { [CSRF_HEADER]: csrf ?? "" } });
  csrf = null;
}

export async function fetchTables() {
  const response = await fetch("/tables");
  if (!response.ok) throw new Error(`could not list the tables (HTTP ${response.status})`);
  return response.json();
}

// PUT the File itself as the body: the browser streams it from disk (no reading into memory here), and
// XMLHttpRequest is what reports upload progress.
export function uploadFile({ table, file, mode, dryRun, onProgress }) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const query = new URLSearchParams({ dry_run: String(dryRun) });
    if (mode) query.set("mode", mode);
    xhr.open("PUT", `/imports/${encodeURIComponent(table)}?${query}`);
    // The server tells the format from the bytes; the type only has to agree (a .csv is text/csv).
    xhr.setRequestHeader("Content-Type", /\.(csv|tsv|txt)$/i.test(file.name) ? "text/csv"
      : /\.xlsx$/i.test(file.name) ? "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
      : "application/octet-stream");
    if (csrf) xhr.setRequestHeader(CSRF_HEADER, csrf);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = { message: xhr.responseText.slice(0, 300) };
      }
      resolve({ status: xhr.status, body, retryAfter: xhr.getResponseHeader("Retry-After") });
    };
    xhr.onerror = () => resolve({ status: 0, body: null });
    xhr.send(file);
  });
}

// Every state-changing request the page makes goes through here, with the session's CSRF header.
async function change(method, url) {
  const response = await fetch(url, { method, headers: { [CSRF_HEADER]: csrf ?? "" } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = { message: `HTTP ${response.status}` };
  }
  return { status: response.status, body, retryAfter: response.headers.get("Retry-After") };
}

// Import for real the file a check (dry run) kept: the server still has it, nothing is sent again.
export function commitJob(id) {
  return change("POST", `/jobs/${encodeURIComponent(id)}/commit`);
}

export function cancelJob(id) {
  return change("DELETE", `/jobs/${encodeURIComponent(id)}`);
}

// The caller's recent jobs, newest first.
export async function fetchJobs(limit = 10) {
  const response = await fetch(`/jobs?limit=${limit}`);
  if (!response.ok) throw new Error(`could not list the jobs (HTTP ${response.status})`);
  return response.json();
}

export async function fetchJob(id) {
  const response = await fetch(`/jobs/${encodeURIComponent(id)}`);
  if (!response.ok) throw new Error(`could not read the job (HTTP ${response.status})`);
  return response.json();
}

export function problemsAsCsv(errors) {
  const cell = (value) => {
    const text = value === null || value === undefined ? "" : String(value);
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const rows = [["sheet", "cell", "column", "value", "message"], ...errors.map((e) => [e.sheet, e.cell, e.column, e.value, e.message])];
  return rows.map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

// What a person should read for an upload that did not go through.
export function explain({ status, body, retryAfter }) {
  if (status === 0) return "The connection to the server was lost before the upload finished. Check the network and try again.";
  if (status === 401) return "Your session has ended: reload the page and sign in again. (HTTP 401)";
  if (status === 403) return `${body?.message ?? "Your grants do not allow this."} Ask an admin for the grant you need. (HTTP 403)`;
  if (status === 413) return `${body?.message ?? "The file is too large."} (HTTP 413)`;
  if (status === 429) return `The server is busy right now. Try again in ${retryAfter ?? "a few"} seconds. (HTTP 429)`;
  return `${body?.message ?? "The upload failed."} (HTTP ${status})`;
}
