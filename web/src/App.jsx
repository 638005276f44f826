import { useEffect, useRef, useState } from "react";
import { explain, fetchJob, fetchTables, problemsAsCsv, uploadFile } from "./api.js";
import Review from "./Review.jsx";
import { commitJob } from "./review.js";

const WRITES = ["append", "upsert", "replace"];
const allows = (table, permission) => (table.permissions ?? []).includes(permission);

const MODES = [
  ["append", "Append", "add the rows"],
  ["replace", "Replace", "delete the table's rows first"],
  ["upsert", "Upsert", "update rows whose id exists"],
];

function formatBytes(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

export default function App() {
  const [tables, setTables] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const refresh = () =>
    fetchTables()
      .then((found) => {
        setTables(found);
        setLoadError(null);
      })
      .catch((error) => setLoadError(error.message));
  useEffect(() => {
    refresh();
  }, []);

  return (
    <main>
      <header>
        <h1>sheetstream</h1>
        <p>Large spreadsheets in and out of the database, as streams.</p>
      </header>
      <Downloads tables={tables} error={loadError} />
      {/* Only the tables this identity may write, and only the modes it may use: no upload area without one. */}
      {tables && tables.some((t) => WRITES.some((m) => allows(t, m))) && (
        <Upload tables={tables.filter((t) => WRITES.some((m) => allows(t, m)))} onImported={refresh} />
      )}
    </main>
  );
}

function Downloads({ tables, error }) {
  return (
    <section aria-labelledby="downloads-title">
      <h2 id="downloads-title">Download</h2>
      {error && <p role="alert" className="error">{error}</p>}
      {!tables && !error && <p>Loading the tables…</p>}
      {tables && tables.length === 0 && <p>There are no tables you may use on this server.</p>}
      {tables && tables.length > 0 && (
        <ul className="tables">
          {tables.map((table) => (
            <li key={table.name}>
              {/* A plain link: the browser streams the file to disk with its own progress (the cookie signs it). */}
              {allows(table, "read") ? (
                <a className="button" href={table.export} download={`${table.name}.xlsx`}>
                  {table.name}.xlsx
                </a>
              ) : (
                <span>{table.name}</span>
              )}
              <span className="muted" data-testid={`rows-${table.name}`}>
                {table.rows.toLocaleString("en")} rows, {table.columns.length} columns
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function Upload({ tables, onImported }) {
  const [table, setTable] = useState(tables[0].name);
  const [file, setFile] = useState(null);
  const permitted = tables.find((t) => t.name === table)?.permissions ?? [];
  const modes = MODES.filter(([value]) => permitted.includes(value));
  const [chosenMode, setMode] = useState("append");
  const mode = permitted.includes(chosenMode) ? chosenMode : modes[0][0];
  const [dryRun, setDryRun] = useState(false);
  const [sent, setSent] = useState(null); // {loaded, total}
  const [job, setJob] = useState(null);
  const [failure, setFailure] = useState(null);
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  const input = useRef(null);

  async function follow(id) {
    for (;;) {
      const current = await fetchJob(id);
      setJob(current);
      if (current.state === "done" || current.state === "failed") return current;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }

  async function submit(event) {
    event.preventDefault();
    if (!file) return;
    setBusy(true);
    setJob(null);
    setFailure(null);
    setSent({ loaded: 0, total: file.size });
    try {
      const answer = await uploadFile({
        table, file, mode, dryRun, onProgress: (loaded, total) => setSent({ loaded, total }),
      });
      if (answer.status !== 202) {
        setFailure(explain(answer));
        if (answer.body?.errors) setJob(answer.body);
        return;
      }
      const ended = await follow(answer.body.id);
      if (ended.state === "done") onImported();
    } catch (error) {
      setFailure(`Lost track of the import: ${error.message}`);
    } finally {
      setBusy(false);
    }
  }

  async function importNow(preview) {
    setBusy(true);
    setFailure(null);
    setSent(null);
    try {
      const answer = await commitJob(preview.id);
      if (answer.status !== 202) {
        setFailure(explain(answer));
        return;
      }
      setJob(answer.body);
      const ended = await follow(answer.body.id);
      if (ended.state === "done") onImported();
    } catch (error) {
      setFailure(`Lost track of the import: ${error.message}`);
    } finally {
      setBusy(false);
    }
  }

  function choose(files) {
    if (files && files.length > 0) {
      setFile(files[0]);
      setJob(null);
      setFailure(null);
      setSent(null);
    }
  }

  return (
    <section aria-labelledby="upload-title">
      <h2 id="upload-title">Upload</h2>
      <form onSubmit={submit}>
        <div className="row">
          <label htmlFor="table">Table</label>
          <select id="table" value={table} onChange={(e) => setTable(e.target.value)}>
            {tables.map((t) => (
              <option key={t.name} value={t.name}>{t.name}</option>
            ))}
          </select>
        </div>
        <label
          htmlFor="file"
          className={`drop ${dragging ? "dragging" : ""}`}
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            choose(e.dataTransfer.files);
          }}
        >
          <span>{file ? `${file.name} (${formatBytes(file.size)})` : "Drop an .xlsx file here, or choose one"}</span>
          <input
            id="file"
            ref={input}
            type="file"
            accept=".xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            onChange={(e) => choose(e.target.files)}
          />
        </label>
        <fieldset>
          <legend>Mode</legend>
          {modes.map(([value, label, hint]) => (
            <label key={value} className="choice">
              <input type="radio" name="mode" value={value} checked={mode === value} onChange={() => setMode(value)} />
              {label} <span className="muted">— {hint}</span>
            </label>
          ))}
          <label className="choice">
            <input type="checkbox" checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} />
            Dry run <span className="muted">— check everything, write nothing</span>
          </label>
        </fieldset>
        <button type="submit" disabled={!file || busy}>{busy ? "Importing…" : "Import"}</button>
      </form>
      <Progress sent={sent} job={job} />
      <div aria-live="polite">
        {failure && <p role="alert" className="error" data-testid="failure">{failure}</p>}
        {job && job.state === "done" && (
          <p className="success" data-testid="success">
            {job.message} — {job.rows_read.toLocaleString("en")} rows read in {job.elapsed_seconds.toFixed(1)} s.
          </p>
        )}
        {job && job.state === "failed" && !failure && (
          <p role="alert" className="error" data-testid="failure">{job.message}</p>
        )}
        {job && job.errors && job.errors.length > 0 && <Problems job={job} />}
        <Review job={job} busy={busy} onImportNow={importNow} />
      </div>
    </section>
  );
}

function Progress({ sent, job }) {
  if (!sent) return null;
  const percent = sent.total ? Math.round((100 * sent.loaded) / sent.total) : 0;
  return (
    <div className="progress">
      <label htmlFor="sent">Sent {formatBytes(sent.loaded)} of {formatBytes(sent.total)}</label>
      <progress id="sent" max="100" value={percent} aria-valuetext={`${percent}% sent`}>{percent}%</progress>
      {job && (
        <p className="muted" data-testid="job-state">
          Import {job.state}: {job.rows_read.toLocaleString("en")} rows read, {job.rows_inserted.toLocaleString("en")} written
          {job.queue_position ? `, number ${job.queue_position} in the queue` : ""}
        </p>
      )}
    </div>
  );
}

function Problems({ job }) {
  const [href, setHref] = useState(null);
  useEffect(() => {
    const url = URL.createObjectURL(new Blob([problemsAsCsv(job.errors)], { type: "text/csv" }));
    setHref(url);
    return () => URL.revokeObjectURL(url);
  }, [job]);
  return (
    <div className="problems">
      <p>
        {job.error_total} problem{job.error_total === 1 ? "" : "s"}
        {job.error_total > job.errors.length ? ` (the first ${job.errors.length} are listed)` : ""}; nothing was written.
        {href && (
          <>
            {" "}
            <a href={href} download={`import-problems-${job.id}.csv`}>Download the problems as CSV</a>
          </>
        )}
      </p>
      <div className="scroll">
        <table data-testid="problems">
          <thead>
            <tr><th scope="col">Sheet</th><th scope="col">Cell</th><th scope="col">Column</th><th scope="col">Value</th><th scope="col">Problem</th></tr>
          </thead>
          <tbody>
            {job.errors.map((e, i) => (
              <tr key={i}>
                <td>{e.sheet}</td><td>{e.cell}</td><td>{e.column ?? ""}</td>
                <td>{e.value === null || e.value === undefined ? "" : String(e.value)}</td><td>{e.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
