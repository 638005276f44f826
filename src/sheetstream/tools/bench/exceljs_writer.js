// ExcelJS's streaming writer (stream.xlsx.WorkbookWriter) for `sheetstream bench export`.
// Usage: node exceljs_writer.js OUT.xlsx < rows.ndjson
// stdin: the header (a JSON array) on the first line, then one JSON array per row; dates come as
// {"d": "YYYY-MM-DD"} and timestamps as {"t": "YYYY-MM-DDTHH:MM:SS"} (read as UTC, as ExcelJS writes serials).
// stdout: {"rows": N, "first_write_epoch_ms": T} when the file is closed.
"use strict";
const fs = require("fs");
const readline = require("readline");
const ExcelJS = require("exceljs");

async function main() {
  const out = process.argv[2];
  const stream = fs.createWriteStream(out);
  let firstWrite = null;
  const write = stream.write.bind(stream);
  stream.write = (chunk, ...rest) => {
    if (firstWrite === null && chunk && chunk.length) firstWrite = Date.now();
    return write(chunk, ...rest);
  };
  const workbook = new ExcelJS.stream.xlsx.WorkbookWriter({ stream, useStyles: true, useSharedStrings: false });
  const sheet = workbook.addWorksheet("orders");
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let header = null;
  let rows = 0;
  for await (const line of lines) {
    if (!line) continue;
    const values = JSON.parse(line);
    if (header === null) {
      header = values;
      sheet.columns = header.map((name) => ({ header: name, key: name }));
      continue;
    }
    const row = sheet.addRow(values.map(cell));
    values.forEach((v, i) => {
      if (v && v.d) row.getCell(i + 1).numFmt = "yyyy-mm-dd";
      else if (v && v.t) row.getCell(i + 1).numFmt = "yyyy-mm-dd hh:mm:ss";
    });
    row.commit();
    rows += 1;
  }
  sheet.commit();
  await workbook.commit();
  process.stdout.write(JSON.stringify({ rows, first_write_epoch_ms: firstWrite }) + "\n");
}

function cell(v) {
  if (v && typeof v === "object") {
    if (v.d) return new Date(v.d + "T00:00:00Z");
    if (v.t) return new Date(v.t + "Z");
  }
  return v;
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
