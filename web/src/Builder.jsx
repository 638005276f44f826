import { useEffect, useState } from "react";

// The operators a person picks from, in words, with the grammar's name (docs/exports.md).
const OPERATORS = [
  ["eq", "is"],
  ["neq", "is not"],
  ["lt", "is less than"],
  ["lte", "is at most"],
  ["gt", "is more than"],
  ["gte", "is at least"],
  ["like", "matches (* for anything)"],
  ["is.null", "is empty"],
  ["not.is.null", "is not empty"],
];
const INPUT = { integer: "number", float: "number", numeric: "number", date: "date", timestamp: "datetime-local", time: "time" };

// The export's address for a choice: a plain link, so the choice can be shared, bookmarked and downloaded by the
// browser itself (streamed to disk, the session cookie signing it).
export function exportUrl({ table, columns, filters, order, descending, format }) {
  const query = new URLSearchParams();
  if (columns.length) query.set("select", columns.join(","));
  for (const f of filters) {
    if (!f.column) continue;
    if (f.op.endsWith("is.null")) query.append(f.column, f.op);
    else if (f.value !== "") query.append(f.column, `${f.op}.${f.value}`);
  }
  if (order) query.set("order", `${order}.${descending ? "desc" : "asc"}`);
  const text = query.toString();
  return `/exports/${encodeURIComponent(table.name)}.${format}${text ? `?${text}` : ""}`;
}

export default function Builder({ tables }) {
  const readable = tables.filter((t) => (t.permissions ?? []).includes("read"));
  const [name, setName] = useState(readable[0]?.name);
  const table = readable.find((t) => t.name === name) ?? readable[0];
  const [picked, setPicked] = useState({});
  const [filters, setFilters] = useState([]);
  const [order, setOrder] = useState("");
  const [descending, setDescending] = useState(false);
  const [format, setFormat] = useState("xlsx");
  if (!table) return null;
  const columns = table.columns.filter((c) => picked[`${table.name}.${c.name}`]).map((c) => c.name);
  const kind = (column) => table.columns.find((c) => c.name === column)?.kind;
  const url = exportUrl({ table, columns, filters, order, descending, format });
  const filtersOnly = exportUrl({ table, columns: [], filters, order: "", descending, format }).split("?")[1] ?? "";
  const [estimate, setEstimate] = useState(null);
  useEffect(() => {
    // The database's own estimate (no row is read): asked again a moment after the filters stop changing.
    let live = true;
    const timer = setTimeout(() => {
      fetch(`/tables/${encodeURIComponent(table.name)}/estimate?${filtersOnly}`)
        .then((r) => (r.ok ? r.json() : { rows: null }))
        .then((found) => live && setEstimate(found.rows))
        .catch(() => live && setEstimate(null));
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [table.name, filtersOnly]);
  const update = (i, change) => setFilters(filters.map((f, j) => (j === i ? { ...f, ...change } : f)));

  return (
    <section aria-labelledby="builder-title">
      <h2 id="builder-title">Build an export</h2>
      <div className="row">
        <label htmlFor="builder-table">From</label>
        <select id="builder-table" value={table.name} onChange={(e) => { setName(e.target.value); setFilters([]); setOrder(""); }}>
          {readable.map((t) => (
            <option key={t.name} value={t.name}>{t.name}{t.kind === "view" ? " (view)" : ""}</option>
          ))}
        </select>
        <label htmlFor="builder-format">as</label>
        <select id="builder-format" value={format} onChange={(e) => setFormat(e.target.value)}>
          <option value="xlsx">Excel workbook (.xlsx)</option>
          <option value="csv">CSV (.csv)</option>
        </select>
      </div>
      <fieldset>
        <legend>Columns <span className="muted">(none ticked: all of them)</span></legend>
        <div className="columns">
          {table.columns.map((c) => (
            <label key={c.name} className="choice">
              <input
                type="checkbox"
                checked={Boolean(picked[`${table.name}.${c.name}`])}
                onChange={(e) => setPicked({ ...picked, [`${table.name}.${c.name}`]: e.target.checked })}
              />
              {c.name}
            </label>
          ))}
        </div>
      </fieldset>
      <fieldset>
        <legend>Rows where</legend>
        {filters.map((f, i) => (
          <div className="row filter" key={i} data-testid={`filter-${i}`}>
            <select aria-label="column" value={f.column} onChange={(e) => update(i, { column: e.target.value, value: "" })}>
              {table.columns.map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
            </select>
            <select aria-label="operator" value={f.op} onChange={(e) => update(i, { op: e.target.value })}>
              {OPERATORS.map(([op, words]) => <option key={op} value={op}>{words}</option>)}
            </select>
            {!f.op.endsWith("is.null") && (kind(f.column) === "boolean" ? (
              <select aria-label="value" value={f.value} onChange={(e) => update(i, { value: e.target.value })}>
                <option value="">choose</option><option value="true">true</option><option value="false">false</option>
              </select>
            ) : (
              <input
                aria-label="value"
                type={INPUT[kind(f.column)] ?? "text"}
                step={kind(f.column) === "integer" ? "1" : "any"}
                value={f.value}
                onChange={(e) => update(i, { value: e.target.value })}
              />
            ))}
            <button type="button" className="small" onClick={() => setFilters(filters.filter((_, j) => j !== i))}>Remove</button>
          </div>
        ))}
        <button type="button" className="small" onClick={() => setFilters([...filters, { column: table.columns[0].name, op: "eq", value: "" }])}>
          Add a condition
        </button>
      </fieldset>
      <div className="row">
        <label htmlFor="builder-order">Sorted by</label>
        <select id="builder-order" value={order} onChange={(e) => setOrder(e.target.value)}>
          <option value="">the key (fastest: streams at once)</option>
          {table.columns.map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
        </select>
        {order && (
          <label className="choice">
            <input type="checkbox" checked={descending} onChange={(e) => setDescending(e.target.checked)} /> newest / largest first
          </label>
        )}
      </div>
      <p>
        <a className="button" href={url} download data-testid="built-export">Download this export</a>{" "}
        <code className="muted" data-testid="built-url">{url}</code>
      </p>
      {estimate !== null && estimate !== undefined && (
        <p className="muted" data-testid="estimate">About {estimate.toLocaleString("en")} rows (the database's estimate)</p>
      )}
    </section>
  );
}
