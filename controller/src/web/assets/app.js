// airlock web pages: the live tail of a job page.
//
// Loaded with <script src defer> (the Content-Security-Policy allows no inline script). While
// the job is not terminal it polls /jobs/{id}/events?after=SEQ about once a second and shows
// what arrived: log text is appended as text nodes and every other value is set with
// textContent, never innerHTML, so nothing the build printed is ever parsed as HTML.
"use strict";

(function () {
  const job = document.getElementById("job");
  if (!job || job.dataset.terminal !== "false") {
    return;
  }
  const jobId = job.dataset.jobId;
  let seq = Number(job.dataset.seq || "0");
  const log = document.getElementById("log");
  const state = document.getElementById("job-state");
  const message = document.getElementById("job-message");
  const exitCode = document.getElementById("job-exit-code");
  const steps = document.getElementById("steps");
  const live = document.getElementById("live-status");

  function say(text) {
    if (live) {
      live.textContent = text;
    }
  }

  function stepItem(index) {
    for (const li of steps.children) {
      if (li.dataset.index === String(index)) {
        return li;
      }
    }
    const li = document.createElement("li");
    li.dataset.index = String(index);
    const name = document.createElement("span");
    name.className = "step-name";
    const status = document.createElement("span");
    status.className = "step-status";
    li.append(name, " ", status);
    // Keep the list in step order.
    let before = null;
    for (const other of steps.children) {
      if (Number(other.dataset.index) > index) {
        before = other;
        break;
      }
    }
    steps.insertBefore(li, before);
    return li;
  }

  function showStep(step) {
    const li = stepItem(step.index);
    li.dataset.step = step.name;
    li.className = "step step-" + step.status;
    li.querySelector(".step-name").textContent = step.name;
    let status = step.status;
    if (step.exit_code !== null && step.exit_code !== undefined) {
      status += " (exit " + step.exit_code + ")";
    }
    li.querySelector(".step-status").textContent = status;
    if (step.duration_ms !== null && step.duration_ms !== undefined) {
      let duration = li.querySelector(".step-duration");
      if (!duration) {
        duration = document.createElement("span");
        duration.className = "note step-duration";
        li.append(" ", duration);
      }
      duration.textContent =
        step.duration_ms < 1000 ? step.duration_ms + " ms" : (step.duration_ms / 1000).toFixed(1) + " s";
    }
  }

  function appendLog(text) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(document.createTextNode(text));
    if (atBottom) {
      log.scrollTop = log.scrollHeight;
    }
  }

  function ended() {
    const cancel = document.getElementById("cancel");
    if (cancel && cancel.form) {
      cancel.form.remove();
    }
    say("The job has ended. ");
    const reload = document.createElement("a");
    reload.href = window.location.pathname;
    reload.id = "reload";
    reload.textContent = "Reload for its outputs and provenance.";
    live.appendChild(reload);
  }

  async function poll() {
    let delay = 1000;
    try {
      const response = await fetch(
        "/jobs/" + encodeURIComponent(jobId) + "/events?after=" + seq,
        { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } },
      );
      if (response.status === 401) {
        say("Logged out: reload the page to log in again.");
        return;
      }
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      const update = await response.json();
      if (update.log) {
        appendLog(update.log);
      }
      for (const step of update.steps) {
        showStep(step);
      }
      state.textContent = update.state;
      state.className = "state state-" + update.state.toLowerCase().replace(/_/g, "-");
      message.textContent = update.message;
      exitCode.textContent = String(update.exit_code);
      seq = update.seq;
      if (update.more) {
        delay = 0;
      } else if (update.terminal) {
        ended();
        return;
      }
      say("Live: following the job.");
    } catch (e) {
      say("Live tail interrupted (" + e.message + "); retrying.");
      delay = 5000;
    }
    window.setTimeout(poll, delay);
  }

  window.setTimeout(poll, 1000);
})();
