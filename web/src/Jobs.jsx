import { useEffect, useState } from "react";
import { cancelJob, explain, fetchJobs } from "./api.js";
import { ENDED, isKept, markedUpUrl, modeWords } from "./review.js";

const who = (owner) => (owner ?? "").replace(/^[a-z]+:/, "");
const when = (seconds) => new Date(seconds * 1000).toLocaleString("en", { dateStyle: "short", timeStyle: "medium" });

// The caller's recent imports and checks: what each did, cancel for the running ones, and the marked-up
// workbook while it is kept. Refreshed while any of them runs.
export default function Jobs({ changed }) {
  const [jobs, setJobs] = useState(null);
  const [problem, setProblem] = useState(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    fetchJobs(10)
      .then((found) => live && (setJobs(found), setProblem(null)))
      .catch((error) => live && setProblem(error.message));
    return () => {
      live = false;
    };
  }, [changed, tick]);

  const running = (jobs ?? []).some((j) => !ENDED.includes(j.state));
  useEffect(() => {
    if (!running) return undefined;
    const timer = setTimeout(() => setTick((n) => n + 1), 1000);
    return () => clearTimeout(timer);
  }, [running, jobs]);

  async function cancel(job) {
    const answer = await cancelJob(job.id);
    setProblem(answer.status === 202 ? null : explain(answer));
    setTick((n) => n + 1);
  }

  if (!jobs || jobs.length === 0) return problem ? <p className="error">{problem}</p> : null;
  return (
    <section aria-labelledby="jobs-title">
      <h2 id="jobs-title">Your recent imports</h2>
      {problem && <p role="alert" className="error">{problem}</p>}
      <div className="scroll">
        <table data-testid="jobs">
          <thead>
            <tr>
              <th scope="col">When</th><th scope="col">Table</th><th scope="col">What</th><th scope="col">Outcome</th>
              <th scope="col">Rows</th><th scope="col">Who</th><th scope="col"></th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((job) => {
              const ended = ENDED.includes(job.state);
              const marked = isKept(job) && ((job.errors?.length ?? 0) > 0 || (job.warnings?.length ?? 0) > 0);
              return (
                <tr key={job.id} data-testid={`job-${job.id}`}>
                  <td>{when(job.created_at)}</td>
                  <td>{job.table}</td>
                  <td>{job.dry_run ? "check" : "import"}: {modeWords(job.mode)}</td>
                  <td>
                    {job.phase}
                    {!ended && job.progress != null ? ` (${Math.round(100 * job.progress)}%)` : ""}
                  </td>
                  <td>
                    {job.rows_read.toLocaleString("en")} read
                    {job.state === "done" && !job.dry_run ? `, ${job.rows_inserted.toLocaleString("en")} written` : ""}
                  </td>
                  <td>{who(job.owner)}</td>
                  <td>
                    {!ended && (
                      <button type="button" className="small" onClick={() => cancel(job)}>Cancel</button>
                    )}
                    {marked && (
                      <a href={markedUpUrl(job.id)} download={`${job.table}-problems.xlsx`}>marked-up workbook</a>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
