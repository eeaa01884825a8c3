// The playground: one streamed chat completion from this server's own API, the answer
// written as it arrives and the trace from the last chunk. The login cookie authenticates.
"use strict";
const form = document.getElementById("playground");
const answer = document.getElementById("answer");
const statusLine = document.getElementById("status");
const traceBody = document.querySelector("#trace tbody");
const decision = document.getElementById("decision");

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

function showTrace(trace) {
  traceBody.textContent = "";
  for (const call of trace.calls) {
    const row = document.createElement("tr");
    row.className = "call";
    cell(row, call.expert);
    cell(row, call.role);
    cell(row, `${call.tokens_in} / ${call.tokens_out}`);
    cell(row, `${call.latency_s.toFixed(2)} s`);
    cell(row, call.cost === null ? "unknown" : `$${call.cost.toFixed(6)}`);
    cell(row, call.error || "");
    traceBody.appendChild(row);
  }
  decision.textContent = JSON.stringify(
    { pipeline: trace.pipeline, cost: trace.cost, routing: trace.routing, aggregation: trace.aggregation },
    null,
    2,
  );
}

function handle(event) {
  if (event === "[DONE]") {
    statusLine.textContent = "done";
    return;
  }
  const data = JSON.parse(event);
  if (data.error) {
    statusLine.textContent = `error: ${data.error.message}`;
    return;
  }
  for (const choice of data.choices || []) {
    if (choice.delta && choice.delta.content) answer.textContent += choice.delta.content;
  }
  if (data.signoria) showTrace(data.signoria);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  answer.textContent = "";
  traceBody.textContent = "";
  decision.textContent = "";
  statusLine.textContent = "waiting for the first token…";
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      model: document.getElementById("model").value,
      messages: [{ role: "user", content: document.getElementById("prompt").value }],
      stream: true,
    }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    statusLine.textContent = `error ${response.status}: ${(body.error || {}).message || response.statusText}`;
    return;
  }
  statusLine.textContent = "streaming…";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) handle(line.slice(6));
      }
    }
  }
});
