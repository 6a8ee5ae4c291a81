"""The shadow section of a route's dashboard page (``/routes/{name}``), as static HTML.

``static/shadow.js`` fills it from ``GET /api/routes/{name}/shadow``: the window
selector, a trend chart, endpoints, signatures and fields (each a filter for the
samples), learned noise as a rule, paged samples, reset and export. Kept apart
from ``dashboard.py`` so the overview and the route page can change separately.
"""

from __future__ import annotations

SHADOW_SECTION = """
<section id="shadow"><h2>Shadow comparison</h2>
<div class="toolbar">
  <label>window <select id="window" aria-label="window">
    <option value="version">since the rules last changed</option>
    <option value="5m">last 5 minutes</option>
    <option value="all">all (since start or reset)</option>
  </select></label>
  <a id="shadow-export" class="button" href="#" download>Export mismatches (JSON fixtures)</a>
  <button id="shadow-reset" type="button" disabled title="needs the admin token">
    Reset results</button>
</div>
<p id="shadow-summary">waiting for data…</p>
<div id="trend" class="chart"></div>
<h3>Endpoints</h3>
<div class="scroll"><table id="endpoints" class="grid"><thead><tr><th>endpoint</th>
<th>compared</th><th>match</th><th>mismatch</th><th>error</th></tr></thead><tbody></tbody></table></div>
<h3>Mismatch signatures (fields that differ together)</h3>
<div class="scroll"><table id="signatures" class="grid"><thead><tr><th>fields</th>
<th>mismatches</th><th>share</th><th>example</th></tr></thead><tbody></tbody></table></div>
<h3>Mismatches by field</h3>
<div class="scroll"><table id="fields" class="grid"><thead><tr><th>field</th><th>mismatches</th>
<th>rate</th><th></th></tr></thead><tbody></tbody></table></div>
<p id="shadow-notes" class="readonly"></p>
<div id="suggested" hidden><h3>Learned noise, as a routes.yaml rule (under the route's
<code>shadow:</code>)</h3><pre class="body"></pre></div>
<h3>Samples</h3>
<div class="toolbar"><span id="sample-filter"></span>
  <span class="pager"><button id="samples-prev" type="button">&lsaquo; newer</button>
  <span id="samples-page"></span>
  <button id="samples-next" type="button">older &rsaquo;</button></span></div>
<div id="samples"></div>
</section>
<script src="/static/shadow.js"></script>"""
"""The route page's shadow section; ``static/shadow.js`` fills it (loaded before
``dashboard.js``, whose poll calls its ``renderShadow``)."""
