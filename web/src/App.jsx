import { useEffect, useRef, useState } from "react";
import { commitJob, explain, fetchJob, fetchTables, uploadFile } from "./api.js";
import Builder from "./Builder.jsx";
import Jobs from "./Jobs.jsx";
import Review from "./Review.jsx";
import { ENDED, MODES } from "./review.js";

const WRITES = ["append", "upsert", "replace"];
const allows = (table, permission) => (table.permissions ?? []).includes(permission);

function formatBytes(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

export default function App() {
  const [tables, setTables] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [jobsChanged, setJobsChanged] = useState(0);
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
  const writable = tables ? tables.filter((t) => WRITES.some((m) => allows(t, m))) : [];

  return (
    <main>
      <header>
        <h1>sheetstream</h1>
        <p>Large spreadsheets in and out of the database, as streams.</p>
      </header>
      <Downloads tables={tables} error={loadError} />
      {tables && tables.some((t) => allows(t, "read")) && <Builder tables={tables} />}
      {/* Only the tables this identity may write, and only the modes it may use: no upload area without one. */}
      {writable.length > 0 && (
        <Upload
          tables={writable}
          onImported={refresh}
          onJob={() => setJobsChanged((n) => n + 1)}
        />
      )}
      {tables && writable.length > 0 && <Jobs changed={jobsChanged} />}
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
                <>
                  <a className="button" href={table.export} download={`${table.name}.xlsx`}>
                    {table.name}.xlsx
                  </a>
                  <a className="button secondary" href={`/exports/${encodeURIComponent(table.name)}.csv`}
                     download={`${table.name}.csv`}>
                    {table.name}.csv
                  </a>
                </>
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

// What this identity may do with a table, in words (for a grant that leaves modes out).
function possible(table, modes) {
  const missing = MODES.filter(([value]) => !allows(table, value)).map(([, label]) => label.toLowerCase());
  if (!missing.length) return null;
  return `Your grants on ${table.name} allow: ${modes.map(([, label]) => label.toLowerCase()).join(", ")}. ` +
    `To ${missing.join(" or ")}, ask an admin for that grant.`;
}

function Upload({ tables, onImported, onJob }) {
  const [tableName, setTable] = useState(tables[0].name);
  const table = tables.find((t) => t.name === tableName) ?? tables[0];
  const [file, setFile] = useState(null);
  const hasKey = table.columns.some((c) => c.primary_key);
  // "update" needs a primary key to find the existing rows by.
  const modes = MODES.filter(([value]) => allows(table, value) && (value !== "upsert" || hasKey));
  const [chosenMode, setMode] = useState(null);
  const fallback = modes.some(([value]) => value === table.default_mode) ? table.default_mode : modes[0][0];
  const mode = modes.some(([value]) => value === chosenMode) ? chosenMode : fallback;
  const [checkOnly, setCheckOnly] = useState(true);
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
      if (ENDED.includes(current.state)) return current;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }

  async function run(start) {
    setBusy(true);
    setFailure(null);
    try {
      const answer = await start();
      if (answer.status !== 202) {
        setFailure(explain(answer));
        if (answer.body?.errors) setJob(answer.body);
        return;
      }
      setJob(answer.body);
      onJob();
      const ended = await follow(answer.body.id);
      onJob();
      if (ended.state === "done" && !ended.dry_run) onImported();
    } catch (error) {
      setFailure(`Lost track of the import: ${error.message}`);
    } finally {
      setBusy(false);
    }
  }

  function submit(event) {
    event.preventDefault();
    if (!file) return;
    setJob(null);
    setSent({ loaded: 0, total: file.size });
    run(() => uploadFile({
      table: table.name, file, mode, dryRun: checkOnly, onProgress: (loaded, total) => setSent({ loaded, total }),
    }));
  }

  function importNow(checked) {
    setSent(null);
    run(() => commitJob(checked.id));
  }

  function choose(files) {
    if (files && files.length > 0) {
      setFile(files[0]);
      setJob(null);
      setFailure(null);
      setSent(null);
    }
  }

  const limits = possible(table, modes);
  return (
    <section aria-labelledby="upload-title">
      <h2 id="upload-title">Upload</h2>
      <form onSubmit={submit}>
        <div className="row">
          <label htmlFor="table">Table</label>
          <select id="table" value={table.name} onChange={(e) => setTable(e.target.value)}>
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
          <span>{file ? `${file.name} (${formatBytes(file.size)})` : "Drop an .xlsx or .csv file here, or choose one"}</span>
          <input
            id="file"
            ref={input}
            type="file"
            accept=".xlsx,.csv,.tsv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,text/csv"
            onChange={(e) => choose(e.target.files)}
          />
        </label>
        <fieldset>
          <legend>What the rows do</legend>
          {modes.map(([value, label, hint]) => (
            <label key={value} className="choice">
              <input type="radio" name="mode" value={value} checked={mode === value} onChange={() => setMode(value)} />
              {label} <span className="muted">— {hint}</span>
            </label>
          ))}
          {limits && <p className="muted" data-testid="grants-note">{limits}</p>}
        </fieldset>
        <label className="choice check-only">
          <input type="checkbox" checked={checkOnly} onChange={(e) => setCheckOnly(e.target.checked)} />
          Check only <span className="muted">— nothing is written: see what would change, then import</span>
        </label>
        <button type="submit" disabled={!file || busy}>
          {busy ? "Working…" : checkOnly ? "Check" : "Import"}
        </button>
      </form>
      <Progress sent={sent} job={job} />
      <div aria-live="polite">
        {failure && <p role="alert" className="error" data-testid="failure">{failure}</p>}
        <Review job={job} busy={busy} failure={failure} onImportNow={importNow} />
      </div>
    </section>
  );
}

function Progress({ sent, job }) {
  if (!sent && !job) return null;
  const percent = sent && sent.total ? Math.round((100 * sent.loaded) / sent.total) : 0;
  const running = job && !ENDED.includes(job.state);
  return (
    <div className="progress">
      {sent && (
        <>
          <label htmlFor="sent">Sent {formatBytes(sent.loaded)} of {formatBytes(sent.total)}</label>
          <progress id="sent" max="100" value={percent} aria-valuetext={`${percent}% sent`}>{percent}%</progress>
        </>
      )}
      {job && (
        <p className="muted" data-testid="job-state">
          {job.phase[0].toUpperCase() + job.phase.slice(1)}: {job.rows_read.toLocaleString("en")} rows read
          {!job.dry_run && job.state === "done" ? `, ${job.rows_inserted.toLocaleString("en")} written` : ""}
          {running && job.progress != null ? ` (${Math.round(100 * job.progress)}%)` : ""}
          {job.queue_position ? `, number ${job.queue_position} in the queue` : ""}
        </p>
      )}
    </div>
  );
}
