/**
 * The page's only stylesheet, inlined and allowed by its hash in the CSP (no 'unsafe-inline').
 * Elements therefore carry no `style` attributes; the chart uses SVG presentation attributes.
 */
export const STYLES = `
:root{--fg:#17202a;--muted:#56616d;--line:#d9dee4;--bg:#f4f6f8;--card:#fff;--accent:#1f56c7;
--accent-dark:#17429b;--ok:#17693b;--ok-bg:#e7f5ec;--warn:#8a4b00;--warn-bg:#fdf3e1;--bad:#a3231a;
--bad-bg:#fdecea;color-scheme:light}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
a{color:var(--accent)}
.wrap{max-width:980px;margin:0 auto;padding:0 20px}
.skip{position:absolute;left:-9999px}
.skip:focus{left:12px;top:12px;background:#fff;padding:6px 10px;z-index:1}
header.top{background:var(--card);border-bottom:1px solid var(--line)}
header.top .wrap{display:flex;align-items:center;justify-content:space-between;gap:8px 16px;min-height:60px;padding-top:10px;padding-bottom:10px;flex-wrap:wrap}
.brand{font-weight:700;font-size:17px;letter-spacing:.2px}
.brand span{color:var(--muted);font-weight:500}
.who{display:flex;align-items:center;gap:12px;color:var(--muted);font-size:14px}
main{padding:32px 0 48px}
h1{font-size:26px;line-height:1.25;margin:0 0 6px}
h2{font-size:19px;margin:0 0 14px}
h3{font-size:15px;margin:20px 0 8px}
.lead{color:var(--muted);margin:0 0 20px}
section.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:20px 22px;margin:0 0 20px}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin:0 0 16px;padding:0}
.stat{border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:0}
.stat dt{color:var(--muted);font-size:13px}
.stat dd{margin:2px 0 0;font-size:24px;font-weight:650;font-variant-numeric:tabular-nums}
.stat dd small{font-size:13px;font-weight:400;color:var(--muted)}
.stat.total{background:#f0f5ff;border-color:#c6d6f5}
.meta{margin:0 0 16px;color:var(--muted)}
.meta strong{color:var(--fg)}
.split{display:grid;grid-template-columns:minmax(0,1.4fr) minmax(0,1fr);gap:16px}
@media (max-width:720px){.split{grid-template-columns:1fr}}
fieldset{border:1px solid var(--line);border-radius:8px;padding:12px 16px 16px;margin:0}
legend{font-weight:650;padding:0 6px}
.check{display:flex;align-items:center;gap:8px;font-weight:600;margin:4px 0}
.check input{width:18px;height:18px;margin:0}
.hint{color:var(--muted);font-size:13px;margin:2px 0 10px}
label.field{display:block;font-weight:600;margin:10px 0 4px}
select,input[type=text],input[type=password],input[type=email],input[type=url]{font:inherit;padding:8px 10px;border:1px solid #aab3bd;border-radius:6px;background:#fff;color:var(--fg);min-width:0;width:100%;max-width:340px}
button{font:inherit;font-weight:600;border-radius:6px;padding:8px 14px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
button:hover{background:var(--accent-dark)}
button.secondary{background:#fff;color:var(--accent)}
button.secondary:hover{background:#eef3fd}
a.button{display:inline-block;font-weight:600;border-radius:6px;padding:8px 14px;border:1px solid var(--accent);background:var(--accent);color:#fff;text-decoration:none}
a.button:hover{background:var(--accent-dark)}
button.danger{background:#fff;color:var(--bad);border-color:#d9a19c;padding:4px 10px;font-size:13px}
.actions{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin-top:14px}
:focus-visible{outline:3px solid #f0b400;outline-offset:2px}
.notice{border-radius:8px;padding:10px 14px;margin:0 0 16px;border:1px solid}
.notice.ok{background:var(--ok-bg);border-color:#a9d8ba;color:var(--ok)}
.notice.warn{background:var(--warn-bg);border-color:#f0cf95;color:var(--warn)}
.notice.bad{background:var(--bad-bg);border-color:#f0b3ad;color:var(--bad)}
.notice p{margin:0}
.notice p+p{margin-top:4px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:7px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:13px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.table-scroll{overflow-x:auto}
.pill{display:inline-block;border-radius:999px;padding:0 8px;font-size:12px;font-weight:600;border:1px solid}
.pill.succeeded,.pill.active{color:var(--ok);background:var(--ok-bg);border-color:#a9d8ba}
.pill.pending{color:var(--warn);background:var(--warn-bg);border-color:#f0cf95}
.pill.failed,.pill.revoked{color:var(--bad);background:var(--bad-bg);border-color:#f0b3ad}
.muted{color:var(--muted)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.chart{width:100%;height:auto;display:block;margin:4px 0 8px}
.chart .bar{fill:#4f7fe0}
.chart .bar.unusual{fill:#d9822b}
.chart .axis{stroke:#aab3bd;stroke-width:1}
.chart .grid{stroke:#e6e9ed;stroke-width:1}
.chart text{fill:#56616d;font-size:12px}
details summary{cursor:pointer;color:var(--accent);font-weight:600;margin:4px 0}
.advice p{margin:0 0 8px}
.advice .headline{font-weight:650}
tr.current th,tr.current td{background:#f7f9fc}
.tag{font-size:12px;color:var(--muted);font-weight:500;margin-left:6px}
.new-key{display:flex;gap:8px;align-items:flex-end;flex-wrap:wrap}
.new-key label.field{margin-top:0}
.signin{max-width:440px;margin:48px auto}
.signin input{max-width:none}
.new-key-box label.field{color:var(--fg)}
textarea.secret{display:block;width:100%;font:14px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;padding:8px 10px;border:1px solid #7fb592;border-radius:6px;background:#fff;color:var(--fg);resize:none;overflow-wrap:anywhere;word-break:break-all}
.new-key-box .actions{margin-top:8px}
.inline-form{display:flex;gap:8px;align-items:flex-end;flex-wrap:wrap;margin:0 0 8px}
.inline-form label.field{margin-top:0}
.inline-form input{width:12em}
.webhook{border-top:1px solid var(--line);padding-top:6px;margin-top:12px}
.webhook h3{overflow-wrap:anywhere;margin-bottom:2px}
.webhook h3 code{font-size:15px}
.webhook p.muted{margin:0}
.webhook .actions{margin:6px 0 8px}
.webhook .actions button{padding:4px 10px;font-size:13px}
.webhook form{margin:0}
.new-webhook{margin-top:4px}
.new-webhook input[type=url]{max-width:520px}
.new-webhook fieldset{margin-top:10px;display:grid;grid-template-columns:repeat(auto-fill,minmax(15em,1fr));column-gap:16px}
.new-webhook .check{font-weight:500}
p.notice{margin:0 0 12px}
.why{color:var(--bad);font-size:13px}
#transactions td:first-child,#transactions td.num{white-space:nowrap}
.pkg{display:block;font-size:13px;white-space:nowrap}
.desc{display:block;font-size:13px;overflow-wrap:anywhere}
.row-link{font-size:13px;font-weight:600;white-space:nowrap}
.facts{display:grid;grid-template-columns:auto 1fr;gap:4px 16px;margin:0 0 16px}
.facts dt{color:var(--muted)}
.facts dd{margin:0;font-weight:600}
.chart-narrow{display:none}
@media (max-width:600px){
.wrap{padding:0 12px}
main{padding:20px 0 32px}
h1{font-size:22px}
section.card{padding:16px 14px}
.chart-wide{display:none}
.chart-narrow{display:block}
.stats{grid-template-columns:repeat(3,minmax(0,1fr));gap:8px}
.stat{padding:8px 10px}
.stat dd{font-size:19px}
.stat dd small{display:block}
.who{width:100%;justify-content:space-between}
.who span{overflow-wrap:anywhere}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
table.stack caption{display:block;text-align:left}
table.stack thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
table.stack tr{border:1px solid var(--line);border-radius:8px;padding:6px 10px;margin:0 0 10px}
table.stack td{border:0;padding:4px 0 4px 6.5em;position:relative;text-align:left;overflow-wrap:anywhere}
table.stack td::before{content:attr(data-label);position:absolute;left:0;top:5px;width:6em;color:var(--muted);font-size:13px;font-weight:600}
table.stack td.num{text-align:left}
table.stack td.action:empty{display:none}
.new-key{flex-direction:column;align-items:stretch}
.new-key select,.new-key input{max-width:none}
select{max-width:100%}
}
`;
