// The per-sample paired viewer of report.html (medsweep report --samples). Reads the JSON data block, filters
// it, and renders one page of item rows at a time, so that thousands of items stay quick. Every text of the
// data (model outputs, references, prompts) is untrusted: it is only ever set as textContent, never as HTML.
(function () {
  "use strict";
  const root = document.getElementById("samples");
  const source = document.getElementById("samples-data");
  if (!root || !source) return;
  const data = JSON.parse(source.textContent);
  const PAGE = 50;
  const VERDICTS = {
    better: "biomedical better",
    worse: "biomedical worse",
    tie: "tie",
    none: "no verdict",
  };
  const $ = (id) => document.getElementById(id);
  const controls = {
    pair: $("samples-pair"),
    task: $("samples-task"),
    verdict: $("samples-verdict"),
    failure: $("samples-failure"),
    search: $("samples-search"),
  };
  const list = $("samples-rows");
  const count = $("samples-count");
  const prev = $("samples-prev");
  const next = $("samples-next");
  let matching = data.rows;
  let page = 0;

  function haystack(row) {
    if (row.text === undefined) {
      const parts = [row.id, row.reference || ""];
      for (const side of row.sides) {
        parts.push(side.output || "", side.parsed || "", side.error || "", side.message || "");
      }
      row.text = parts.join("\n").toLowerCase();
    }
    return row.text;
  }

  function failureMatches(row, wanted) {
    if (wanted === "") return true;
    const errors = row.sides.filter((s) => s.state === "failed").map((s) => s.error);
    if (wanted === ":none") return errors.length === 0;
    if (wanted === ":any") return errors.length > 0;
    return errors.includes(wanted);
  }

  function filter() {
    const pair = controls.pair.value;
    const task = controls.task.value;
    const verdict = controls.verdict.value;
    const failure = controls.failure.value;
    const words = controls.search.value.toLowerCase().split(/\s+/).filter((w) => w !== "");
    matching = data.rows.filter(
      (row) =>
        (pair === "" || String(row.pair) === pair) &&
        (task === "" || row.unit === task) &&
        (verdict === "" || row.verdict === verdict) &&
        failureMatches(row, failure) &&
        words.every((w) => haystack(row).includes(w)),
    );
    page = 0;
    render();
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function number(value) {
    return typeof value === "number" ? value.toFixed(1) : "";
  }

  function sideBlock(side, role, model, metrics) {
    const box = el("div", "side " + role);
    box.append(el("h4", null, role + ": " + model));
    const facts = el("p", "facts");
    if (side.state === "failed") {
      facts.append(el("span", "failed", "failed: " + side.error + (side.message ? " — " + side.message : "")));
    } else if (side.state === "missing") {
      facts.append(el("span", "failed", "no result for this item"));
    } else if (side.state === "unscored") {
      facts.append(el("span", "failed", "not scored yet (run medsweep score)"));
    } else {
      const names = Object.keys(side.metrics);
      const basis = metrics.length > 1 ? "mean of " + metrics.join(", ") : metrics[0] || "no metric both have";
      const score = el("span", "score");
      score.append(el("b", null, "score " + number(side.value)), document.createTextNode(" (" + basis + ")"));
      facts.append(score);
      if (names.length > 1 || (names.length === 1 && names[0] !== metrics[0])) {
        const detail = names.map((name) => name + " " + number(side.metrics[name])).join(", ");
        facts.append(el("span", "metrics", detail));
      }
    }
    if (side.strict !== null) {
      facts.append(
        el("span", side.strict ? "valid" : "invalid", "strict parse: " + (side.strict ? "valid" : "invalid")),
      );
    }
    box.append(facts);
    if (side.reasoning !== null) box.append(traceBlock(side.reasoning));
    if (side.no_answer) box.append(el("p", "invalid", "no answer: the token budget ran out inside the reasoning trace"));
    if (side.output !== null) box.append(el("pre", "output", side.output));
    if (side.parsed !== null) {
      const parsed = el("p", "parsed", "parsed: ");
      parsed.append(el("code", null, side.parsed));
      box.append(parsed);
    }
    return box;
  }

  // A reasoning model's trace, folded beside the answer; like every model text it is set as textContent,
  // and only when opened (traces run to thousands of tokens).
  function traceBlock(trace) {
    const details = el("details", "trace");
    details.append(el("summary", null, "reasoning trace (" + trace.length + " characters)"));
    const body = el("pre", "trace-text");
    details.append(body);
    details.addEventListener("toggle", () => {
      if (details.open && !body.textContent) body.textContent = trace;
    });
    return details;
  }

  function promptBlock(index, label) {
    const details = el("details", "prompt");
    const entry = data.prompts[index];
    details.append(el("summary", null, label + (entry.text === undefined ? " (not shown)" : "")));
    const body = el("pre", entry.text === undefined ? "why" : "prompt-text");
    details.append(body);
    // Long prompts (few-shot blocks, patient documents) are put into the page only when opened.
    details.addEventListener("toggle", () => {
      if (details.open && !body.textContent) body.textContent = entry.text === undefined ? entry.why : entry.text;
    });
    return details;
  }

  function rowBlock(row) {
    const pair = data.pairs[row.pair];
    const node = el("article", "sample verdict-" + row.verdict);
    node.setAttribute("data-item-id", row.id);
    node.setAttribute("data-unit", row.unit);
    node.setAttribute("data-repeat", String(row.repeat));
    node.setAttribute("data-verdict", row.verdict);
    const head = el("header");
    head.append(el("b", "item", row.id));
    head.append(document.createTextNode(" · " + row.unit + (row.repeat ? " · repeat " + row.repeat : "") + " · "));
    head.append(el("span", "badge " + row.verdict, VERDICTS[row.verdict] || row.verdict));
    const variant = pair.variant === "paper" ? "" : " (" + pair.variant + ")";
    head.append(el("span", "pair", pair.biomedical + " vs " + pair.general + variant));
    node.append(head);
    const columns = el("div", "columns");
    columns.append(sideBlock(row.sides[0], "biomedical", pair.biomedical, row.metrics));
    columns.append(sideBlock(row.sides[1], "general", pair.general, row.metrics));
    const reference = el("div", "side reference");
    reference.append(el("h4", null, "reference"));
    reference.append(el("pre", "output", row.reference === null ? "(none)" : row.reference));
    columns.append(reference);
    node.append(columns);
    const [a, b] = row.sides.map((s) => s.prompt);
    if (a !== null && a === b) {
      node.append(promptBlock(a, "prompt (the same for both models)"));
    } else {
      if (a !== null) node.append(promptBlock(a, "prompt of " + pair.biomedical));
      if (b !== null) node.append(promptBlock(b, "prompt of " + pair.general));
    }
    return node;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(matching.length / PAGE));
    page = Math.min(page, pages - 1);
    const start = page * PAGE;
    const shown = matching.slice(start, start + PAGE);
    list.replaceChildren(...shown.map(rowBlock));
    count.textContent = matching.length
      ? `items ${start + 1}–${start + shown.length} of ${matching.length} matching (${data.rows.length} in all)`
      : `no item matches (${data.rows.length} in all)`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    root.setAttribute("data-state", "ready");
  }

  for (const control of Object.values(controls)) control.addEventListener("change", filter);
  controls.search.addEventListener("input", filter); // as one types
  prev.addEventListener("click", () => {
    page -= 1;
    render();
    root.scrollIntoView();
  });
  next.addEventListener("click", () => {
    page += 1;
    render();
    root.scrollIntoView();
  });
  filter();
})();
