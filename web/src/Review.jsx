import { isKept, markedUpUrl, showValue } from "./review.js";

// What an ended import has to say beyond its message: warnings (apart from problems), a dry run's preview
// with "Import now", and the workbook handed back with its problems marked.
export default function Review({ job, busy, onImportNow }) {
  if (!job || (job.state !== "done" && job.state !== "failed")) return null;
  const kept = isKept(job);
  const marked = kept && ((job.errors && job.errors.length > 0) || (job.warnings && job.warnings.length > 0));
  return (
    <>
      {job.warnings && job.warnings.length > 0 && <Warnings warnings={job.warnings} />}
      {job.state === "done" && job.dry_run && job.preview && (
        <Preview job={job} kept={kept} busy={busy} onImportNow={onImportNow} />
      )}
      {marked && (
        <p>
          <a href={markedUpUrl(job.id)} download={`${job.table}-problems.xlsx`} data-testid="marked-up">
            Download your workbook with the {job.errors && job.errors.length > 0 ? "problems" : "warnings"} marked
          </a>{" "}
          <span className="muted">— each cell highlighted with a comment saying what to fix, and a Problems sheet linking to them</span>
        </p>
      )}
    </>
  );
}

function Warnings({ warnings }) {
  return (
    <div className="warnings" data-testid="warnings">
      <h3>Warnings</h3>
      <ul>
        {warnings.map((w, i) => (
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
    ["inserted", "would be inserted"],
    ["updated", "would be updated"],
    ["unchanged", "would stay unchanged"],
    ...(job.mode === "replace" ? [["deleted", "would be deleted"]] : []),
  ];
  return (
    <div className="preview" data-testid="preview">
      <h3>Preview ({job.mode})</h3>
      <ul className="counts">
        {counts.map(([key, label]) => (
          <li key={key} data-testid={`preview-${key}`}>
            <strong>{p[key].toLocaleString("en")}</strong> {p[key] === 1 ? "row" : "rows"} {label}
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
