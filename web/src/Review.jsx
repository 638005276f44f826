import { useEffect, useState } from "react";
import { problemsAsCsv } from "./api.js";
import { isKept, markedUpUrl, modeWords, showValue } from "./review.js";

// What an ended import has to say: the outcome in a line; problems as a summary (one line per kind and column,
// with the marked-up workbook beside it) before any cell; warnings; a check's preview with "Import now".
export default function Review({ job, busy, failure, onImportNow }) {
  if (!job || (job.state !== "done" && job.state !== "failed")) return null;
  const kept = isKept(job);
  const problems = job.state === "failed" && job.error === "invalid" && (job.errors?.length ?? 0) > 0;
  return (
    <>
      <Outcome job={job} failure={failure} />
      {problems && <Problems job={job} kept={kept} />}
      {job.warnings && job.warnings.length > 0 && <Warnings job={job} kept={kept && !problems} />}
      {job.state === "done" && job.dry_run && job.preview && (
        <Preview job={job} kept={kept} busy={busy} onImportNow={onImportNow} />
      )}
    </>
  );
}

function Outcome({ job, failure }) {
  if (job.state === "done") {
    return (
      <p className="success" data-testid="success">
        {job.message[0].toUpperCase() + job.message.slice(1)} ({job.elapsed_seconds.toFixed(1)} s)
      </p>
    );
  }
  if (failure) return null; // the request's own answer is shown already
  if (job.error === "invalid" && job.error_total) {
    return (
      <p role="alert" className="error" data-testid="failure">
        {job.error_total.toLocaleString("en")} problem{job.error_total === 1 ? "" : "s"} found; nothing was written.
      </p>
    );
  }
  return <p role="alert" className="error" data-testid="failure">{job.message}</p>;
}

function MarkedUp({ job, what }) {
  return (
    <a href={markedUpUrl(job.id)} download={`${job.table}-problems.xlsx`} data-testid="marked-up">
      Download your workbook with the {what} marked
    </a>
  );
}

function Problems({ job, kept }) {
  const [href, setHref] = useState(null);
  useEffect(() => {
    const url = URL.createObjectURL(new Blob([problemsAsCsv(job.errors)], { type: "text/csv" }));
    setHref(url);
    return () => URL.revokeObjectURL(url);
  }, [job]);
  const groups = job.problem_groups ?? [];
  return (
    <div className="problems">
      <div className="summary-head">
        <h3>What to fix</h3>
        {kept && <MarkedUp job={job} what="problems" />}
      </div>
      {groups.length > 0 && (
        <ul className="groups" data-testid="problem-groups">
          {groups.map((g, i) => (
            <li key={i}>
              <strong>{g.summary}</strong>
              {g.advice ? <> — {g.advice}</> : null}
              {g.cells?.length > 0 && (
                <span className="muted"> (first: {g.cells.map((c) => c.cell).join(", ")})</span>
              )}
            </li>
          ))}
        </ul>
      )}
      <details>
        <summary>
          The first {job.errors.length} problem{job.errors.length === 1 ? "" : "s"}, cell by cell
        </summary>
        <div className="scroll">
          <table data-testid="problems">
            <thead>
              <tr><th scope="col">Sheet</th><th scope="col">Cell</th><th scope="col">Column</th><th scope="col">Value</th><th scope="col">Problem</th></tr>
            </thead>
            <tbody>
              {job.errors.map((e, i) => (
                <tr key={i}>
                  <td>{e.sheet}</td><td>{e.cell}</td><td>{e.column ?? ""}</td>
                  <td>{showValue(e.value)}</td><td>{e.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {href && <a href={href} download={`import-problems-${job.id}.csv`}>Download these problems as CSV</a>}
      </details>
    </div>
  );
}

function Warnings({ job, kept }) {
  return (
    <div className="warnings" data-testid="warnings">
      <div className="summary-head">
        <h3>Warnings</h3>
        {kept && <MarkedUp job={job} what="warnings" />}
      </div>
      <ul>
        {job.warnings.map((w, i) => (
          <li key={i}>
            <strong>{w.sheet}!{w.cell}</strong>: {w.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Preview({ job, kept, busy, onImportNow }) {
  const p = job.preview;
  const counts = [
    ["updated", "updated"],
    ["inserted", "added"],
    ["unchanged", "unchanged"],
    ...(job.mode === "replace" ? [["deleted", "deleted"]] : []),
  ];
  return (
    <div className="preview" data-testid="preview">
      <h3>If you import this file ({modeWords(job.mode)})</h3>
      <ul className="counts">
        {counts.map(([key, label]) => (
          <li key={key} data-testid={`preview-${key}`}>
            <strong>{p[key].toLocaleString("en")}</strong> {label}
          </li>
        ))}
      </ul>
      {p.changes.length > 0 && (
        <div className="scroll">
          <table data-testid="changes">
            <caption>Changed values in the first updated rows</caption>
            <thead>
              <tr><th scope="col">Cell</th><th scope="col">Column</th><th scope="col">Now</th><th scope="col">After the import</th></tr>
            </thead>
            <tbody>
              {p.changes.map((c, i) => (
                <tr key={i}>
                  <td>{c.cell}</td><td>{c.column}</td><td>{showValue(c.old)}</td><td>{showValue(c.new)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {job.committed_as ? (
        <p className="muted">Imported already (job {job.committed_as}).</p>
      ) : kept ? (
        <p>
          <button type="button" onClick={() => onImportNow(job)} disabled={busy}>Import now</button>{" "}
          <span className="muted">— the same file, for real; it is not sent again</span>
        </p>
      ) : (
        <p className="muted">The file is no longer kept on the server: upload it again to import it.</p>
      )}
    </div>
  );
}
