"""The fleet page: one self-contained HTML document (inline CSS and vanilla JS, no build step,
no external resource, so it works on a fleet network with no internet).

The server embeds the current /fleet.json report in the page, so the first paint needs no
request; the script then re-fetches /fleet.json every few seconds, keeping the user's sort and
filter (kept in the URL's #fragment, so a filtered view can be bookmarked). Every value from the
broker is untrusted and reaches the DOM only as ``textContent`` or as numbers in SVG
attributes, never as markup.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["REFRESH_S", "render_page"]

REFRESH_S = 5

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0}header span{opacity:.75}
main{padding:16px 20px}
.bar{display:flex;gap:12px;margin-bottom:12px;align-items:center}
input,select{font:inherit;padding:4px 8px}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}
th,td{padding:6px 8px;border-bottom:1px solid #e3e6ea;text-align:left;white-space:nowrap}
th{cursor:pointer;user-select:none;background:#eef0f3;font-weight:600}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.err{max-width:260px;overflow:hidden;text-overflow:ellipsis;color:#a33}
.st{padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff}
.ONLINE{background:#1f8a4c}.OFFLINE{background:#6b7280}.STALE{background:#c98a06}
.UNSIGNED{background:#b42318}.KEY{background:#b42318;outline:2px solid #fda29b}
#alerts{background:#fee4e2;border:2px solid #b42318;color:#7a271a;padding:8px 12px;
 margin-bottom:12px;display:none;font-weight:600}
svg polyline{fill:none;stroke:#2563eb;stroke-width:1.5}
.sum{margin-left:auto;opacity:.8}
"""

_JS = """
const COLS=[["gateway_id","Gateway"],["state","State"],["readings_per_s","Readings/s",1],
["spool_pending","Backlog",1],["batches_sealed","Sealed",1],["batches_durable","Durable",1],
["proof_failures","Proof failures",1],["spent","Spent (FIL)",1],["clock_synced","Clock"],
["last_error","Last error"],["age_s","Seen",1],["history","Last hour"]];
let data=JSON.parse(document.getElementById("initial").textContent);
let sortKey="gateway_id",sortDir=1;
const $=id=>document.getElementById(id);
const hash=new URLSearchParams(location.hash.slice(1));
if(hash.get("sort")){const s=hash.get("sort");sortDir=s[0]==="-"?-1:1;sortKey=s.replace(/^-/,"");}
$("filter").value=hash.get("q")||"";$("state").value=hash.get("state")||"";
function save(){const p=new URLSearchParams();p.set("sort",(sortDir<0?"-":"")+sortKey);
 if($("filter").value)p.set("q",$("filter").value);if($("state").value)p.set("state",$("state").value);
 history.replaceState(null,"","#"+p);}
function val(r,k){if(k==="spent")return r.spent_attofil==null?null:Number(r.spent_attofil)/1e18;
 if(k==="history")return r.history.length;return r[k]==null?null:r[k];}
function text(r,k){const v=val(r,k);if(v==null)return "-";
 if(k==="clock_synced")return v?"synced":"NOT SYNCED";
 if(k==="spent")return v.toFixed(6);if(k==="age_s")return Math.round(v)+"s ago";
 if(k==="state"&&r.reason)return v;return String(v);}
function spark(series){const ns="http://www.w3.org/2000/svg",w=120,h=24;
 const svg=document.createElementNS(ns,"svg");svg.setAttribute("width",w);
 svg.setAttribute("height",h);svg.setAttribute("viewBox","0 0 "+w+" "+h);
 if(series.length>1){const max=Math.max(1e-9,...series.map(p=>p[1]));
  const span=Math.max(60,series[0][0]);svg.appendChild(document.createElementNS(ns,"title"))
   .textContent="max "+max+" readings/s over "+Math.round(span/60)+" min";
  const pts=series.map(p=>((span-p[0])/span*(w-2)+1).toFixed(1)+","+
   (h-1-p[1]/max*(h-2)).toFixed(1)).join(" ");
  const line=document.createElementNS(ns,"polyline");line.setAttribute("points",pts);
  svg.appendChild(line);}
 return svg;}
function head(){const tr=$("head");tr.textContent="";for(const [k,label] of COLS){
 const th=document.createElement("th");th.textContent=label;th.dataset.key=k;
 if(k===sortKey)th.className=sortDir>0?"asc":"desc";
 th.onclick=()=>{sortDir=(k===sortKey)?-sortDir:1;sortKey=k;draw();};tr.appendChild(th);}}
function shown(r){const q=$("filter").value.toLowerCase(),s=$("state").value;
 if(s&&r.state!==s)return false;if(!q)return true;
 return [r.gateway_id,r.state,r.last_error||"",r.reason||""].join(" ").toLowerCase().includes(q);}
function cmp(a,b){const x=val(a,sortKey),y=val(b,sortKey);if(x===y)return 0;
 if(x==null)return 1;if(y==null)return -1;return (x<y?-1:1)*sortDir;}
function draw(){save();head();const body=$("rows");body.textContent="";
 const rows=data.gateways.filter(shown).sort(cmp);
 for(const r of rows){const tr=document.createElement("tr");tr.dataset.gateway=r.gateway_id;
  tr.dataset.state=r.state;
  for(const [k,,num] of COLS){const td=document.createElement("td");
   if(k==="history"){td.appendChild(spark(r.history));}
   else if(k==="state"){const b=document.createElement("span");
    b.className="st "+r.state.split(" ")[0];b.textContent=r.state;td.appendChild(b);
    if(r.reason)td.title=r.reason;}
   else{td.textContent=text(r,k);if(num)td.className="num";
    if(k==="last_error")td.className="err",td.title=r.last_error||"";}
   tr.appendChild(td);}
  body.appendChild(tr);}
 const n=s=>data.gateways.filter(r=>r.state===s).length;
 $("summary").textContent=data.gateways.length+" gateways: "+n("ONLINE")+" online, "+
  n("OFFLINE")+" offline, "+n("STALE")+" stale, "+(n("UNSIGNED")+n("KEY CHANGED"))+
  " untrusted - showing "+rows.length;
 const a=$("alerts");a.textContent="";a.style.display=data.key_changes.length?"block":"none";
 for(const k of data.key_changes){const d=document.createElement("div");
  d.textContent="KEY CHANGED: "+k.gateway_id+" signed by "+k.public_key+" (pinned "+
   k.pinned_key+"), last seen "+new Date(k.last_seen*1000).toLocaleString();a.appendChild(d);}
 $("updated").textContent="updated "+new Date(data.generated_at*1000).toLocaleTimeString();}
async function refresh(){try{const r=await fetch("fleet.json",{cache:"no-store"});
 if(r.ok){data=await r.json();draw();}}catch(e){$("updated").textContent="refresh failed";}}
$("filter").oninput=draw;$("state").onchange=draw;draw();setInterval(refresh,REFRESH_MS);
"""


def render_page(report: dict[str, Any]) -> bytes:
    # "<" escaped so no broker-supplied string can close the data <script> element
    initial = json.dumps(report).replace("<", "\\u003c")
    states = "".join(
        f'<option value="{s}">{s}</option>'
        for s in ("ONLINE", "OFFLINE", "STALE", "UNSIGNED", "KEY CHANGED")
    )
    script = _JS.replace("REFRESH_MS", str(REFRESH_S * 1000))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>depin-gateway fleet</title><style>{_CSS}</style></head>
<body><header><h1>depin-gateway fleet</h1><span>broker {_attr(report["broker"])}</span>
<span>keys: {_attr(report["pinning"])}</span><span id="updated"></span></header>
<main><div id="alerts"></div>
<div class="bar"><input id="filter" placeholder="filter: id, state, error" size="30">
<select id="state"><option value="">all states</option>{states}</select>
<span class="sum" id="summary"></span></div>
<table><thead><tr id="head"></tr></thead><tbody id="rows"></tbody></table></main>
<script type="application/json" id="initial">{initial}</script>
<script>{script}</script></body></html>
""".encode()


def _attr(text: object) -> str:
    return html.escape(str(text), quote=True)
