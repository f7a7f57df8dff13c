// The chat page: pick a collection, upload files and watch the index job, ask and read the answer as it
// streams (EventSource on /v1/queries/{id}/stream), stop it (DELETE /v1/queries/{id}), rate it (POST
// /v1/queries/{id}/feedback: a click on the other thumb replaces the rating). Plain JS, no build.
// With API keys on (docs/security.md), a 401 asks for a key, kept in sessionStorage and sent as a Bearer header;
// the answer's EventSource opens the signed stream_url, so the key never goes into a URL.
"use strict";

const $ = (id) => document.getElementById(id);
const SNIPPET_CHARS = 280;
const KEY_STORAGE = "ragqueue.apiKey";
const POLL_MS = 500;
let current = null; // the answer being streamed: {jobId, source, turn}
// Finished turns of this conversation ({role, content}), sent as `history` so a follow-up ("and its cost?") is
// rewritten into a standalone question; a new collection starts a new conversation.
const HISTORY_TURNS = 10; // within the server's MAX_HISTORY_TURNS (20) and, trimmed below, MAX_HISTORY_CHARS
const HISTORY_CHARS = 8000;
let conversation = { collection: null, turns: [] };

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function askForKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  $("key-form").hidden = false;
  $("api-key").focus();
}

function useKey(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
  $("api-key").value = "";
  $("key-form").hidden = true;
  showError("");
  loadCollections();
}

function showError(message) {
  $("error").textContent = message || "";
}

async function api(method, url, body) {
  const options = { method, headers: {} };
  const key = apiKey();
  if (key) options.headers.Authorization = `Bearer ${key}`;
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error(`the API does not answer (${err.message})`);
  }
  const data = await response.json().catch(() => null);
  if (response.status === 401) askForKey();
  if (!response.ok) {
    const error = data && data.error;
    const err = new Error(error ? `${error.message} (${error.code})` : `HTTP ${response.status}`);
    err.code = error ? error.code : String(response.status);
    throw err;
  }
  return data;
}

function collectionName() {
  const input = $("collection");
  if (!input.checkValidity()) {
    input.focus();
    throw new Error("the collection name must be lower-case letters, digits, _ or - (at most 64)");
  }
  return input.value;
}

async function loadCollections() {
  try {
    const collections = await api("GET", "/v1/collections");
    const list = $("collections");
    list.replaceChildren(
      ...collections.map((c) => {
        const option = document.createElement("option");
        option.value = c.name;
        option.label = `${c.name} · ${c.documents} documents`;
        return option;
      }),
    );
    if (collections.length && !collections.some((c) => c.name === $("collection").value)) {
      $("collection").value = collections[0].name;
    }
  } catch (err) {
    showError(`Could not list the collections: ${err.message}`);
  }
}

// --- upload and index progress -------------------------------------------------------------

function describeProgress(job) {
  const p = job.progress;
  const docs = p.documents_total ? `${p.documents_done || 0}/${p.documents_total} documents` : "";
  const chunks = p.total ? `${p.done}/${p.total} chunks` : "";
  return [job.state, p.stage, docs, chunks].filter(Boolean).join(" · ");
}

function describeEnd(job) {
  const r = job.result || {};
  if (job.state !== "succeeded") {
    return `Indexing ${job.state}: ${job.error ? job.error.message : "no reason given"}`;
  }
  const failures = (r.failed || []).map((f) => `${f.source}: ${f.error}`).join("; ");
  return (
    `Indexed into ${r.collection}: ${r.documents_indexed} new, ${r.documents_unchanged} unchanged, ` +
    `${r.documents_failed} failed, ${r.chunks} chunks.` + (failures ? ` Failures: ${failures}` : "")
  );
}

function showJob(job) {
  const p = job.progress;
  const total = p.documents_total || p.total || 1;
  const done = p.documents_total ? p.documents_done || 0 : p.done;
  const bar = $("upload-progress");
  bar.max = total;
  bar.value = Math.min(done, total);
  $("upload-status").textContent = describeProgress(job);
}

function endJob(job) {
  showJob(job);
  if (job.state === "succeeded") $("upload-progress").value = $("upload-progress").max;
  $("upload-status").textContent = describeEnd(job);
  $("upload-form").dataset.state = job.state;
  return job;
}

// With a key, poll the job with fetch: an EventSource cannot send the Authorization header.
async function pollJob(jobId) {
  for (;;) {
    let job;
    try {
      job = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
    } catch (err) {
      $("upload-status").textContent = `Lost the job's progress: ${err.message}`;
      return null;
    }
    if (["succeeded", "failed", "cancelled"].includes(job.state)) return endJob(job);
    showJob(job);
    await new Promise((wake) => setTimeout(wake, POLL_MS));
  }
}

function followJob(jobId) {
  const status = $("upload-status");
  $("upload-progress").hidden = false;
  if (apiKey()) return pollJob(jobId);
  return new Promise((resolve) => {
    const source = new EventSource(`/v1/jobs/${encodeURIComponent(jobId)}/events`);
    source.addEventListener("progress", (e) => showJob(JSON.parse(e.data)));
    source.addEventListener("end", (e) => {
      source.close();
      resolve(endJob(JSON.parse(e.data)));
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        status.textContent = "Lost the connection to the job's progress.";
        resolve(null);
      }
    });
  });
}

async function upload(event) {
  event.preventDefault();
  showError("");
  const files = $("files").files;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const button = $("upload-button");
  button.disabled = true;
  $("upload-form").dataset.state = "uploading";
  $("upload-status").textContent = `Uploading ${files.length} file(s)…`;
  try {
    const collection = collectionName();
    const accepted = await api("POST", `/v1/collections/${encodeURIComponent(collection)}/documents`, form);
    await followJob(accepted.job_id);
    await loadCollections();
  } catch (err) {
    $("upload-form").dataset.state = "failed";
    $("upload-status").textContent = "";
    showError(`Upload refused: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

// --- asking, streaming and stopping ----------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function newTurn(question) {
  const turn = element("li", "turn");
  turn.dataset.state = "waiting";
  turn.append(element("p", "question", question));
  const answer = element("div", "answer");
  answer.setAttribute("aria-live", "polite");
  answer.setAttribute("aria-busy", "true");
  turn.append(answer, element("p", "ending"));
  $("conversation").append(turn);
  turn.scrollIntoView({ block: "end" });
  return turn;
}

function renderSources(turn, sources) {
  if (!sources.length) return;
  const details = element("details", "sources-box");
  details.open = true;
  details.append(element("summary", "", `Sources (${sources.length})`));
  const list = element("ol", "sources");
  for (const s of sources) {
    const item = element("li");
    const name = s.document.split(/[\\/]/).pop();
    item.append(element("span", "doc", name));
    if (s.location) item.append(" ", element("span", "location", `· ${s.location}`));
    item.append(" ", element("span", "score", `· score ${s.score}`));
    const text = s.text.length > SNIPPET_CHARS ? `${s.text.slice(0, SNIPPET_CHARS)}…` : s.text;
    item.append(element("blockquote", "", text));
    list.append(item);
  }
  details.append(list);
  turn.querySelector(".ending").before(details);
}

function finish(turn, state, message) {
  const { source } = current || {};
  if (source) source.close(); // a terminal event: left open, EventSource would reconnect
  current = null;
  turn.dataset.state = state;
  turn.classList.toggle("stopped", state !== "done");
  turn.querySelector(".answer").setAttribute("aria-busy", "false");
  turn.querySelector(".ending").textContent = message;
  $("stop-button").disabled = true;
  $("ask-button").disabled = false;
  $("question").focus();
}

async function ask(event) {
  event.preventDefault();
  if (current) return;
  showError("");
  const question = $("question").value.trim();
  if (!question) return;
  let collection;
  let accepted;
  try {
    collection = collectionName();
    if (conversation.collection !== collection) conversation = { collection, turns: [] };
    const history = conversation.turns.slice(-HISTORY_TURNS);
    while (history.reduce((n, turn) => n + turn.content.length, 0) > HISTORY_CHARS) history.splice(0, 2);
    accepted = await api("POST", "/v1/queries", { collection, question, history });
  } catch (err) {
    showError(err.message);
    return;
  }
  $("question").value = "";
  const turn = newTurn(question);
  const answer = turn.querySelector(".answer");
  const source = new EventSource(accepted.stream_url);
  current = { jobId: accepted.job_id, source, turn };
  $("ask-button").disabled = true;
  $("stop-button").disabled = false;
  source.addEventListener("sources", (e) => renderSources(turn, JSON.parse(e.data)));
  source.addEventListener("token", (e) => {
    turn.dataset.state = "streaming";
    answer.textContent += JSON.parse(e.data).text;
  });
  source.addEventListener("done", (e) => {
    const data = JSON.parse(e.data);
    conversation.turns.push({ role: "user", content: question }, { role: "assistant", content: answer.textContent });
    finish(turn, "done", `${data.tokens} pieces · ${data.answerer || ""}`);
    renderRating(turn, accepted.job_id);
  });
  source.addEventListener("error", (e) => {
    if (e.data) {
      const error = JSON.parse(e.data);
      const stopped = error.code === "cancelled";
      finish(turn, stopped ? "stopped" : "failed", stopped ? "Stopped." : `Error: ${error.message} (${error.code})`);
    } else if (source.readyState === EventSource.CLOSED) {
      finish(turn, "failed", "Lost the connection to the answer.");
    } // otherwise the browser reconnects by itself and the server resumes after Last-Event-ID
  });
}

const RATINGS = [
  { rating: "up", symbol: "👍", label: "Good answer" },
  { rating: "down", symbol: "👎", label: "Bad answer" },
];

// Thumbs under a finished answer; the server keeps one rating per answer, so a click on the other replaces it.
function renderRating(turn, jobId) {
  const group = element("div", "rating");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Rate this answer");
  const status = element("span", "rating-status");
  status.setAttribute("role", "status");
  const buttons = RATINGS.map(({ rating, symbol, label }) => {
    const button = element("button", "thumb", symbol);
    button.type = "button";
    button.dataset.rating = rating;
    button.title = label;
    button.setAttribute("aria-label", label);
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", async () => {
      buttons.forEach((b) => (b.disabled = true));
      try {
        const feedback = await api("POST", `/v1/queries/${encodeURIComponent(jobId)}/feedback`, { rating });
        buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.rating === feedback.rating)));
        turn.dataset.rating = feedback.rating;
        status.textContent = "Feedback recorded, thank you.";
      } catch (err) {
        status.textContent = `Feedback not recorded: ${err.message}`;
      } finally {
        buttons.forEach((b) => (b.disabled = false));
      }
    });
    return button;
  });
  group.append(...buttons, status);
  turn.append(group);
}

async function stop() {
  if (!current) return;
  const { jobId } = current;
  $("stop-button").disabled = true;
  try {
    await api("DELETE", `/v1/queries/${encodeURIComponent(jobId)}`);
  } catch (err) {
    if (err.code !== "job_finished") showError(`Could not stop: ${err.message}`);
  }
  // The stream itself ends with `error` code `cancelled`, which finishes the turn.
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", useKey);
  $("upload-form").addEventListener("submit", upload);
  $("ask-form").addEventListener("submit", ask);
  $("stop-button").addEventListener("click", stop);
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && current) stop();
  });
  loadCollections();
});
