"""The report's only stylesheet, inline: screen and print (A4, repeated table headers)."""

CSS = """
:root { --bad: #b00020; --warn: #8a5a00; --good: #1b5e20; --line: #ccc; }
* { box-sizing: border-box; }
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 24px auto; max-width: 1150px; color: #111; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 2px solid #333; padding-bottom: 2px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td.n, th.n { text-align: right; white-space: nowrap; }
table.kv th { width: 190px; }
.mono, code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 11.5px; }
.wrap { word-break: break-all; overflow-wrap: anywhere; }
.bad { color: var(--bad); font-weight: 700; }
tr.bad td { background: #fdecee; }
.good { color: var(--good); font-weight: 700; }
span.bad { color: var(--bad); font-weight: 700; }
span.warn, b.warn, p.warn { color: var(--warn); font-weight: 700; }
tr.warn td { background: #fff6e0; }
.banner { border: 2px solid var(--warn); background: #fff6e0; padding: 8px 12px; margin: 12px 0; }
.banner.bad { border-color: var(--bad); background: #fdecee; color: #111; font-weight: 400; }
.banner.ok { border-color: var(--good); background: #eef7ee; }
.banner ul { margin: 4px 0 0 18px; padding: 0; }
.muted { color: #555; }
.more { font-style: italic; color: #444; }
.nowrap { white-space: pre; }
.nb { white-space: nowrap; }
.words { overflow-wrap: anywhere; }
td.path { min-width: 16em; }
td.hashes { word-break: break-all; overflow-wrap: anywhere; min-width: 14em; }
td.hashes div { padding-left: 1.5em; text-indent: -1.5em; }
footer { margin-top: 32px; font-size: 11px; color: #555; border-top: 1px solid var(--line); }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { margin: 0; max-width: none; font-size: 9pt; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  .banner, tr.bad td, tr.warn td, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .mono, code { font-size: 7.5pt; }
  td.path { min-width: 38mm; }
  td.hashes { min-width: 30mm; }
  section.hits { break-before: page; page-break-before: always; }
}
"""
